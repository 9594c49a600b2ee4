"""Test metrics of the span models (one per seed), the baselines beside them, and diagnostics.

Per seed: the saved model predicts the validation windows; the membership threshold is the value
of ``evaluate_spans.thresholds`` with the highest validation span F1 (``metrics.choose_threshold``;
the lowest on a tie); the test windows (and the held-out instrument's, when there are any) are
then predicted and scored ONCE at that threshold: span precision / recall / F1 at IoU
``evaluate_spans.iou``, per-bar AUROC, probability separation, pointer MAE in bars (when the
pointer head was trained) and window-class macro-F1 (when the class head was trained). Over seeds:
mean and sample standard deviation of every number (``core.metrics.mean_std``).

Diagnostics in words: the collapse diagnostic (``core.diagnostics.collapse_diagnostics``) on the
test bars' membership, the probabilities taken as two columns [1 - p, p], with
``evaluate_spans.collapse_separation``; the dominant-loss diagnostic
(``core.diagnostics.dominant_loss_diagnostic``) on the best epoch's weighted loss components
(``train/<task>/weighted`` of ``runs.seed_<s>.best`` in ``metrics/train_spans.json``) with
``evaluate_spans.dominant_loss_fraction``. ``countdown_share`` is the countdown's share of the
sum of those components (``None`` when the countdown head was not trained).

Provenance: a model is scored only on the windows it was trained on (the card's
``windows_sha256`` and ``feature_names``; anything else is an ``ArtifactError``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lensforge.core import artifacts
from lensforge.core.diagnostics import collapse_diagnostics, dominant_loss_diagnostic
from lensforge.core.errors import ArtifactError, DataError
from lensforge.core.metrics import mean_std
from lensforge.core.params import SPAN_TASKS, EvaluateSpansParams
from lensforge.spans import baselines, metrics, training

SCORED_SPLITS = ("test", "holdout")  # scored once, at the threshold chosen on validation
MEMBERSHIP_CLASSES = ("out of span", "in span")  # collapse diagnostic's two columns [1 - p, p]


RETURN_FEATURE = "return_z"  # the scaled log return: what the in-window forward rule reads


def baseline_feature_index(features: Mapping, name: str | None = None) -> int:
    """Column of feature ``name`` (default: ``features.json``'s ``baseline_feature``) in the
    feature tensor; ``ArtifactError`` when the windows have no such feature."""
    names = list(features.get("features", []))
    name = features.get("baseline_feature") if name is None else name
    if name not in names:
        raise ArtifactError(
            f"baseline feature {name!r} is not one of the window features {names}",
            rule="baseline feature is a window feature",
        )
    return names.index(name)


def best_record(training: Mapping, seed: int, *, path: Path) -> dict[str, float]:
    """The best epoch's record of ``seed`` in ``training`` (``metrics/train_spans.json``, read
    from ``path``)."""
    run = training.get("runs", {}).get(f"seed_{seed}")
    if not run or "best" not in run:
        raise ArtifactError(
            f"train_spans metrics have no best record for seed {seed}: run `dvc repro train_spans`",
            path=path,
            rule="every scored model has its training record",
        )
    return run["best"]


def read_loss_curves(live_dir: Path, *, tasks: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each task's ``train/<task>/weighted`` curve (step, value) from one seed's training curves."""
    curves = {}
    for task in tasks:
        path = Path(live_dir) / "plots" / "metrics" / "train" / task / "weighted.tsv"
        if not path.is_file():
            raise ArtifactError(
                f"training curve of {task!r} missing: run `dvc repro train_spans`",
                path=path,
                rule="file exists",
            )
        curves[task] = pd.read_csv(path, sep="\t")
    return curves


def split_rows(index: pd.DataFrame, name: str) -> np.ndarray:
    """Tensor rows (= ``window_id``) of the windows of split ``name``, in id order."""
    return np.sort(index.loc[index["split"] == name, "window_id"].to_numpy(dtype=np.int64))


def check_trained_on(card: Mapping, *, windows_path: Path, feature_names: Sequence[str]) -> None:
    """Refuse a model trained on other windows or other features than the current ones."""
    artifacts.check_sha256(
        windows_path,
        str(card.get("windows_sha256")),
        what="span windows",
        source=f"the model card of seed {card.get('seed')}",
        rule="model scored on the windows it was trained on",
    )
    if list(card.get("feature_names", [])) != list(feature_names):
        raise ArtifactError(
            f"the model of seed {card.get('seed')} was trained on features "
            f"{card.get('feature_names')}, the windows have {list(feature_names)}",
            path=windows_path,
            rule="model scored on the features it was trained on",
        )


def score_predictions(
    predictions: Mapping[str, np.ndarray],
    windows: Mapping[str, np.ndarray],
    rows: np.ndarray,
    *,
    threshold: float,
    iou: float,
    tasks: Sequence[str],
) -> dict:
    """Every test metric of one model's predictions on windows ``rows`` (module doc)."""
    membership = windows["membership"][rows]
    span_probs = predictions["span_probs"]
    scores = {
        "n_windows": int(len(rows)),
        **metrics.membership_scores(span_probs, membership, threshold=threshold, iou=iou),
        **metrics.separation(membership, span_probs),
    }
    if "pointers" in tasks:
        scores.update(
            metrics.pointer_errors(
                predictions["start_probs"],
                predictions["end_probs"],
                windows["start"][rows],
                windows["end"][rows],
            )
        )
    if "class" in tasks:
        scores["class_macro_f1"] = metrics.window_class_macro_f1(
            windows["window_class"][rows], predictions["class_probs"]
        )
    return scores


def collapse_messages(membership: np.ndarray, span_probs: np.ndarray, *, separation: float):
    """The collapse diagnostic on per-bar membership, probabilities as columns [1 - p, p]."""
    p = np.asarray(span_probs, dtype=np.float64).ravel()
    return collapse_diagnostics(
        np.asarray(membership).ravel().astype(np.int64),
        np.stack([1.0 - p, p], axis=1),
        class_names=MEMBERSHIP_CLASSES,
        separation=separation,
    )


def loss_diagnostics(
    best: Mapping[str, float], *, tasks: Sequence[str], fraction: float
) -> tuple[dict[str, float], float | None, str | None]:
    """Loss shares at the best epoch (``training.loss_shares``, the definition train_spans
    logs), the countdown's share and the dominant-loss message."""
    keys = {task: f"train/{task}/weighted" for task in tasks}
    missing = [key for key in keys.values() if key not in best]
    if missing:
        raise ArtifactError(
            f"train_spans' best record lacks {missing}: run `dvc repro train_spans`",
            rule="train_spans metrics hold every task's weighted loss",
        )
    shares = training.loss_shares(best, tasks=tasks, key="weighted")
    components = {task: float(best[key]) for task, key in keys.items()}
    message = dominant_loss_diagnostic(components, fraction=fraction)
    return shares, shares.get("countdown"), message


def evaluate_model(
    loaded,
    windows: Mapping[str, np.ndarray],
    index: pd.DataFrame,
    *,
    config: EvaluateSpansParams,
    best: Mapping[str, float],
) -> tuple[dict, dict[str, np.ndarray]]:
    """One seed's report (threshold, validation F1 per threshold, scores per scored split, loss
    shares, diagnostics) and its test predictions. ``loaded`` is a ``LoadedSpanModel``;
    ``best`` the best epoch's record from ``metrics/train_spans.json``."""
    tasks = list(loaded.card["tasks"])
    validation = split_rows(index, "validation")
    if len(validation) == 0 or not windows["membership"][validation].any():
        raise DataError(
            "the validation windows hold no span bar: the membership threshold cannot be chosen",
            row="split validation",
            rule="validation windows contain spans",
        )
    val_probs = loaded.predict(windows["features"][validation])["span_probs"]
    threshold, f1_by_threshold = metrics.choose_threshold(
        val_probs, windows["membership"][validation], thresholds=config.thresholds, iou=config.iou
    )
    report: dict = {
        "threshold": threshold,
        "validation_span_f1": f1_by_threshold[repr(threshold)],
        "validation_span_f1_by_threshold": f1_by_threshold,
    }
    test_predictions: dict[str, np.ndarray] = {}
    for name in SCORED_SPLITS:
        rows = split_rows(index, name)
        if len(rows) == 0:
            continue
        predictions = loaded.predict(windows["features"][rows])
        report[name] = score_predictions(
            predictions, windows, rows, threshold=threshold, iou=config.iou, tasks=tasks
        )
        if name == "test":
            test_predictions = predictions
    if not test_predictions:
        raise DataError("no test windows to score", row="split test", rule="test windows exist")
    shares, countdown_share, dominant = loss_diagnostics(
        best, tasks=tasks, fraction=config.dominant_loss_fraction
    )
    report["loss_share"] = shares
    report["countdown_share"] = countdown_share
    test_rows = split_rows(index, "test")
    diagnostics = collapse_messages(
        windows["membership"][test_rows],
        test_predictions["span_probs"],
        separation=config.collapse_separation,
    )
    report["diagnostics"] = diagnostics + ([dominant] if dominant else [])
    return report, test_predictions


def summarize_seeds(runs: Mapping[str, Mapping]) -> dict:
    """Per scored split, every number's mean and sample std over seeds (``<metric>_std``); a
    metric that is ``None`` for some seed stays ``None``. Also the countdown share."""
    summary: dict = {}
    for name in SCORED_SPLITS:
        reports = [run[name] for run in runs.values() if name in run]
        if not reports:
            continue
        summary[name] = {}
        for key in reports[0]:
            values = [report[key] for report in reports]
            if any(value is None for value in values):
                summary[name][key], summary[name][f"{key}_std"] = None, None
            else:
                summary[name][key], summary[name][f"{key}_std"] = mean_std(values)
    shares = [run["countdown_share"] for run in runs.values()]
    if all(share is not None for share in shares):
        summary["countdown_share"], summary["countdown_share_std"] = mean_std(shares)
    else:
        summary["countdown_share"], summary["countdown_share_std"] = None, None
    return summary


def bar_keys(index: pd.DataFrame, rows: np.ndarray, *, length: int) -> np.ndarray:
    """(n, L) id of the series bar under each position of windows ``rows``: equal ids are the
    same bar of the same instrument (windows overlap)."""
    chosen = index.set_index("window_id").loc[rows]
    codes = pd.factorize(chosen["instrument"])[0].astype(np.int64)  # (n,)
    first = chosen["first_bar"].to_numpy(dtype=np.int64)  # (n,)
    span = int(first.max()) + length + 1
    return codes[:, None] * span + first[:, None] + np.arange(length)[None, :]


def baseline_report(
    windows: Mapping[str, np.ndarray],
    index: pd.DataFrame,
    *,
    feature_index: int,
    return_index: int,
    horizon: int,
    config: EvaluateSpansParams,
) -> dict:
    """The baselines (``spans.baselines``) fitted / chosen on train and validation windows and
    scored on the test (and holdout) windows the models are scored on: the past-only volatility
    rule (feature ``feature_index``), the in-window forward rule (the return feature
    ``return_index`` over the next ``horizon`` bars) and the logistic regression."""
    names = ["train", "validation", *SCORED_SPLITS]
    rows = {name: split_rows(index, name) for name in names}
    rows = {name: r for name, r in rows.items() if len(r)}
    features = {name: windows["features"][r] for name, r in rows.items()}
    membership = {name: windows["membership"][r] for name, r in rows.items()}
    rule = baselines.volatility_rule(
        {name: f[..., feature_index] for name, f in features.items()}, membership, iou=config.iou
    )
    logistic = baselines.logistic(
        features,
        membership,
        thresholds=config.thresholds,
        c=config.logistic_c,
        iou=config.iou,
        train_keys=bar_keys(index, rows["train"], length=windows["membership"].shape[1]),
    )
    window_rule = baselines.volatility_rule(
        {
            name: baselines.forward_volatility(f[..., return_index], horizon=horizon)
            for name, f in features.items()
        },
        membership,
        iou=config.iou,
    )
    return {"volatility_rule": rule, "window_rule": window_rule, "logistic": logistic}


def plot_window_rows(index: pd.DataFrame, windows: Mapping[str, np.ndarray], *, n: int):
    """Up to ``n`` test windows to draw: evenly spread over the test windows in which a span
    starts (topped up from the other test windows when fewer start one), in id order."""
    rows = split_rows(index, "test")
    starts = rows[windows["start"][rows] >= 0]
    chosen = np.zeros(0, dtype=np.int64)
    if len(starts) and n:
        spread = np.unique(np.linspace(0, len(starts) - 1, n).round().astype(np.int64))
        chosen = starts[spread]
    rest = np.setdiff1d(rows, chosen)
    return np.sort(np.concatenate([chosen, rest[: n - len(chosen)]]))


def windows_plot_frame(
    index: pd.DataFrame,
    windows: Mapping[str, np.ndarray],
    test_probs: np.ndarray,
    *,
    n: int,
    threshold: float,
) -> pd.DataFrame:
    """Plot rows of the chosen test windows, drawn end to end: window id, ``position`` (bars
    numbered across the drawn windows: the plot's x), bar in its window, ``in_span`` 0/1 (the
    rule's label), probability, predicted 0/1. ``test_probs`` are one model's span probabilities
    on the test windows (id order)."""
    test_rows = split_rows(index, "test")
    position = {int(row): i for i, row in enumerate(test_rows)}
    frames, offset = [], 0
    for row in plot_window_rows(index, windows, n=n):
        probs = test_probs[position[int(row)]]
        frames.append(
            pd.DataFrame(
                {
                    "window": int(row),
                    "position": offset + np.arange(len(probs)),
                    "bar": np.arange(len(probs)),
                    "in_span": windows["membership"][row].astype(np.int64),
                    "predicted_probability": probs.astype(np.float64),
                    "predicted": (probs >= threshold).astype(np.int64),
                }
            )
        )
        offset += len(probs)
    columns = ["window", "position", "bar", "in_span", "predicted_probability", "predicted"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def loss_share_frame(curves: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per epoch (a row), each task's share of the summed weighted training loss (a column per
    task of ``SPAN_TASKS``: a switched-off task's share is 0, so the plot's columns never change;
    ``training.loss_shares`` of each epoch). ``curves`` maps task -> its ``train/<task>/weighted``
    curve (columns ``step`` = epoch and the value); epochs missing from a curve are left out."""
    per_task = [
        frame.set_index("step").iloc[:, 0].rename(f"train/{task}/weighted")
        for task, frame in curves.items()
    ]
    table = pd.concat(per_task, axis=1, join="inner").sort_index()  # (epochs, tasks)
    rows = []
    for epoch, record in zip(table.index, table.to_dict("records"), strict=True):
        shares = training.loss_shares(record, tasks=list(curves), key="weighted")
        rows.append({"epoch": int(epoch), **{t: shares.get(t, 0.0) for t in SPAN_TASKS}})
    return pd.DataFrame(rows, columns=["epoch", *SPAN_TASKS])
