"""Classification and calibration metrics for every branch: labels and probabilities in, numbers out.

Pure numpy (no torch, no files): every function takes integer labels ``y_true`` (n,) in
``0..n_classes-1`` and/or probabilities ``probs`` (n, n_classes) whose rows sum to 1, and returns
Python floats, ints, lists or dicts, so results go straight into ``metrics/evaluate.json``.

Definitions (the ones ``tests/core/test_metrics.py`` pins against scikit-learn or by hand):
- per-class precision / recall / F1 / support, macro-F1 and accuracy as in scikit-learn, with
  ``zero_division=0`` (a class never predicted has precision 0, hence F1 0);
- confusion matrix rows = actual class, columns = predicted class;
- margin of a row = p(true class) - max p(other class) (the balancing experiment's "margins"), averaged per
  true class;
- ECE = sum over bins of (bin count / n) * |accuracy - mean confidence| with confidence = max prob
  and the prediction = argmax; ``uniform`` bins split [0, 1] into equal-width intervals
  (lo, hi], the first one [0, hi]; ``equal_mass`` bins split the rows sorted by confidence (stable
  sort) into ``n_bins`` groups whose sizes differ by at most one; empty bins contribute nothing;
- multi-class Brier = mean over rows of sum over classes (p - onehot)^2, in [0, 2];
- spread over seeds = sample standard deviation (``STD_DDOF = 1``), ``None`` for a single run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

STD_DDOF = 1  # sample std over seeds: an estimate of run-to-run spread from a handful of runs
BINNINGS = ("uniform", "equal_mass")
FAIL_TIER = "F"


def _labels(y: Sequence[int] | np.ndarray, *, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {sorted(set(y.tolist()))}")
    return y.astype(np.int64)


def check_probabilities(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)  # (n, n_classes)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (n, n_classes), got shape {probs.shape}")
    y = _labels(y_true, n_classes=probs.shape[1])
    if len(y) != len(probs) or len(y) == 0:
        raise ValueError(f"need as many labels as probability rows (> 0): {len(y)}, {len(probs)}")
    return y, probs


def per_class_scores(y_true, y_pred, *, n_classes: int) -> dict[str, list]:
    """Precision, recall, F1 (floats) and support (ints) per class, scikit-learn's definitions."""
    y_true = _labels(y_true, n_classes=n_classes)
    y_pred = _labels(y_pred, n_classes=n_classes)
    matrix = np.asarray(confusion_matrix(y_true, y_pred, n_classes=n_classes))  # (actual, pred)
    true_pos = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(true_pos, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros(n_classes), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n_classes), where=denom > 0)
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": [int(s) for s in support],
    }


def macro_f1_score(y_true, y_pred, *, n_classes: int) -> float:
    """Unweighted mean of the per-class F1 over all ``n_classes`` (absent classes count as 0)."""
    return float(np.mean(per_class_scores(y_true, y_pred, n_classes=n_classes)["f1"]))


def accuracy_score(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty label arrays: {y_true.shape}, {y_pred.shape}")
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, *, n_classes: int) -> list[list[int]]:
    """Counts with rows = actual class and columns = predicted class."""
    y_true = _labels(y_true, n_classes=n_classes)
    y_pred = _labels(y_pred, n_classes=n_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"label arrays differ in length: {len(y_true)} vs {len(y_pred)}")
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).tolist()


def margins(y_true, probs) -> np.ndarray:
    """Per row p(true class) - max p(other class), shape (n,); negative where the row is wrong."""
    y, probs = check_probabilities(y_true, probs)
    rows = np.arange(len(y))
    p_true = probs[rows, y]  # (n,)
    others = probs.copy()
    others[rows, y] = -np.inf
    return p_true - others.max(axis=1)


def mean_margin_by_class(y_true, probs) -> list[float]:
    """Mean margin over the rows of each true class; raises if a class has no rows."""
    y, probs = check_probabilities(y_true, probs)
    row_margins = margins(y, probs)
    means = []
    for label in range(probs.shape[1]):
        if not np.any(y == label):
            raise ValueError(f"class {label} has no rows: its mean margin is undefined")
        means.append(float(row_margins[y == label].mean()))
    return means


def bin_ids(confidence: np.ndarray, *, n_bins: int, binning: str) -> np.ndarray:
    """Bin index (n,) of each confidence for ``uniform`` or ``equal_mass`` binning (module doc)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if binning == "uniform":
        inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        return np.searchsorted(inner_edges, confidence, side="left")
    if binning == "equal_mass":
        order = np.argsort(confidence, kind="stable")
        ids = np.empty(len(confidence), dtype=np.int64)
        for b, chunk in enumerate(np.array_split(order, n_bins)):
            ids[chunk] = b
        return ids
    raise ValueError(f"unknown binning {binning!r}; expected one of {BINNINGS}")


def reliability_curve(y_true, probs, *, n_bins: int, binning: str) -> list[dict[str, float]]:
    """One row per non-empty bin: mean ``confidence``, ``accuracy`` and ``count`` of its rows."""
    y, probs = check_probabilities(y_true, probs)
    confidence = probs.max(axis=1)  # (n,)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)  # (n,)
    ids = bin_ids(confidence, n_bins=n_bins, binning=binning)
    rows = []
    for b in range(n_bins):
        in_bin = ids == b
        if in_bin.any():
            rows.append(
                {
                    "confidence": float(confidence[in_bin].mean()),
                    "accuracy": float(correct[in_bin].mean()),
                    "count": int(in_bin.sum()),
                }
            )
    return rows


def expected_calibration_error(y_true, probs, *, n_bins: int, binning: str) -> float:
    """Count-weighted mean |accuracy - confidence| over bins (0 = perfectly calibrated)."""
    curve = reliability_curve(y_true, probs, n_bins=n_bins, binning=binning)
    n_rows = sum(row["count"] for row in curve)
    return float(
        sum(row["count"] * abs(row["accuracy"] - row["confidence"]) for row in curve) / n_rows
    )


def brier_loss(y_true, probs) -> float:
    """Multi-class Brier score: mean over rows of sum over classes (p - onehot)^2, in [0, 2]."""
    y, probs = check_probabilities(y_true, probs)
    onehot = np.eye(probs.shape[1])[y]  # (n, n_classes)
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1) over runs; std is ``None`` for a single run."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(values.std(ddof=STD_DDOF)) if values.size > STD_DDOF else None
    return float(values.mean()), std


def is_catastrophic(f1_per_class: Sequence[float], *, threshold: float) -> bool:
    """A run is catastrophic when any class's F1 is at or below ``threshold`` (the balancing experiment counted F1 = 0)."""
    return bool(min(f1_per_class) <= threshold)


def graduation_tier(macro_f1: float, *, tiers: Mapping[str, float]) -> str:
    """The best tier (highest threshold) whose threshold ``macro_f1`` meets; ``"F"`` if none."""
    for name, threshold in sorted(tiers.items(), key=lambda item: item[1], reverse=True):
        if macro_f1 >= threshold:
            return name
    return FAIL_TIER


def score_run(y_true, probs, *, class_names: Sequence[str], n_bins: int) -> dict[str, float]:
    """Every per-run test metric of one lens as a flat dict: floats (``macro_f1``, ``accuracy``,
    ``ece_uniform``, ``ece_equal_mass``, ``brier``, ``<class>/precision|recall|f1``,
    ``margin_<class>``) and ints (``<class>/support``, ``confusion/<actual>/<predicted>``)."""
    y, probs = check_probabilities(y_true, probs)
    n_classes = probs.shape[1]
    if len(class_names) != n_classes:
        raise ValueError(f"{len(class_names)} class names for {n_classes} probability columns")
    y_pred = probs.argmax(axis=1)  # (n,)
    per_class = per_class_scores(y, y_pred, n_classes=n_classes)
    scores: dict[str, float] = {
        "macro_f1": float(np.mean(per_class["f1"])),
        "accuracy": accuracy_score(y, y_pred),
        "ece_uniform": expected_calibration_error(y, probs, n_bins=n_bins, binning="uniform"),
        "ece_equal_mass": expected_calibration_error(y, probs, n_bins=n_bins, binning="equal_mass"),
        "brier": brier_loss(y, probs),
    }
    class_margins = mean_margin_by_class(y, probs)
    for label, name in enumerate(class_names):
        for metric in ("precision", "recall", "f1", "support"):
            scores[f"{name}/{metric}"] = per_class[metric][label]
        scores[f"margin_{name}"] = class_margins[label]
    matrix = confusion_matrix(y, y_pred, n_classes=n_classes)
    for actual, actual_name in enumerate(class_names):
        for predicted, predicted_name in enumerate(class_names):
            scores[f"confusion/{actual_name}/{predicted_name}"] = matrix[actual][predicted]
    return scores
