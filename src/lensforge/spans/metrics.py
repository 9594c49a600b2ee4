"""Span metrics: per-bar membership and span pointers in, Python numbers out.

Pure numpy (plus scikit-learn's AUROC); no torch, no files. Definitions (pinned by hand-computed
cases in ``tests/spans/test_metrics.py``):

- a span is an inclusive pair ``(start, end)`` of bar indices; the spans of a 0/1 sequence are
  its maximal runs of ones (``spans_from_mask``); a probability sequence becomes 0/1 by
  ``p >= threshold``;
- IoU of two spans = shared bars / bars in either (inclusive ends: ``[10, 20]`` and ``[12, 22]``
  share 9 bars of 13);
- matching: predicted and true spans of one window are paired one-to-one, greedily by IoU
  (the highest-IoU pair first; ties go to the earlier predicted, then the earlier true span),
  each span used at most once, only pairs with IoU >= ``iou``. A pair is a true positive; an
  unpaired predicted span a false positive; an unpaired true span a false negative;
- span precision / recall / F1 over a set of windows: TP, FP and FN are summed over the windows
  first. Every zero division gives 0, as in ``lensforge.core.metrics`` (scikit-learn's
  ``zero_division=0``): nothing predicted gives precision 0, so F1 0 when something is true;
  and when neither side has any span, precision, recall and F1 are all 0 (the counts
  ``n_true`` / ``n_predicted``, reported beside them, show that case);
- pointer MAE in bars: over the windows that have a true start pointer (``start >= 0``), the
  predicted start (end) = argmax of the start (end) probabilities, MAE = mean |predicted - true|;
  ``None`` when no window has a start;
- per-bar AUROC: scikit-learn's ``roc_auc_score`` on the flattened membership and scores;
  ``None`` when the bars hold one class only;
- probability separation: mean p on in-span bars minus mean p on out-of-span bars (the note's
  "separation"); ``None`` when either side has no bar;
- a membership threshold is chosen on one split (pass validation windows only) as the grid value
  with the highest span F1, the lowest such value on a tie (``choose_threshold``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lensforge.core import metrics as core_metrics

Span = tuple[int, int]
N_CLASSES = 3  # window classes: none, start, inside (spans.windows.CLASSES, id order)


def spans_from_mask(mask) -> list[Span]:
    """The maximal runs of truthy values of a 1-D sequence as inclusive ``(start, end)`` pairs."""
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 1:
        raise ValueError(f"a membership mask must be 1-D, got shape {mask.shape}")
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)  # +1 where a run starts, -1 one bar after it ends
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def spans_from_probs(probs, *, threshold: float) -> list[Span]:
    """Spans of the bars whose probability is at least ``threshold``."""
    return spans_from_mask(np.asarray(probs) >= threshold)


def span_iou(a: Span, b: Span) -> float:
    """Intersection over union of two inclusive bar spans."""
    for span in (a, b):
        if span[1] < span[0]:
            raise ValueError(f"a span must have start <= end, got {span}")
    shared = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if shared <= 0:
        return 0.0
    either = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - shared
    return shared / either


def match_spans(
    predicted: Sequence[Span], true: Sequence[Span], *, iou: float
) -> list[tuple[int, int]]:
    """One-to-one pairs ``(predicted index, true index)`` with IoU >= ``iou`` (module doc)."""
    candidates = [
        (span_iou(p, t), i, j)
        for i, p in enumerate(predicted)
        for j, t in enumerate(true)
        if span_iou(p, t) >= iou
    ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_predicted, used_true, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_predicted and j not in used_true:
            used_predicted.add(i)
            used_true.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def span_counts(predicted: Sequence[Span], true: Sequence[Span], *, iou: float) -> dict[str, int]:
    """True positives, false positives and false negatives of one window's spans."""
    n_matched = len(match_spans(predicted, true, iou=iou))
    return {"tp": n_matched, "fp": len(predicted) - n_matched, "fn": len(true) - n_matched}


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else 0.0


def span_scores(predicted_masks, true_masks, *, iou: float) -> dict[str, float | int]:
    """Span precision, recall and F1 over windows (counts summed first; module doc).

    ``predicted_masks`` and ``true_masks`` are 0/1 (or boolean) arrays (n_windows, L).
    """
    predicted_masks, true_masks = _same_shape_2d(predicted_masks, true_masks)
    totals = {"tp": 0, "fp": 0, "fn": 0}
    for predicted_row, true_row in zip(predicted_masks, true_masks, strict=True):
        counts = span_counts(spans_from_mask(predicted_row), spans_from_mask(true_row), iou=iou)
        for key, value in counts.items():
            totals[key] += value
    precision = _ratio(totals["tp"], totals["tp"] + totals["fp"])
    recall = _ratio(totals["tp"], totals["tp"] + totals["fn"])
    return {
        "span_precision": precision,
        "span_recall": recall,
        "span_f1": _ratio(2 * precision * recall, precision + recall),
        "n_true": totals["tp"] + totals["fn"],
        "n_predicted": totals["tp"] + totals["fp"],
        **totals,
    }


def pointer_errors(start_probs, end_probs, true_start, true_end) -> dict[str, float | int | None]:
    """Mean absolute start and end pointer errors in bars over windows with a true start."""
    start_probs, end_probs = _same_shape_2d(start_probs, end_probs)
    true_start = np.asarray(true_start, dtype=np.int64)
    true_end = np.asarray(true_end, dtype=np.int64)
    if true_start.shape != (len(start_probs),) or true_end.shape != true_start.shape:
        raise ValueError(
            f"need one start and end per window: {true_start.shape}, {true_end.shape} "
            f"for {len(start_probs)} windows"
        )
    has_start = true_start >= 0
    if not has_start.any():
        return {"start_mae_bars": None, "end_mae_bars": None, "n_pointer_windows": 0}
    start_error = np.abs(start_probs[has_start].argmax(axis=1) - true_start[has_start])
    end_error = np.abs(end_probs[has_start].argmax(axis=1) - true_end[has_start])
    return {
        "start_mae_bars": float(start_error.mean()),
        "end_mae_bars": float(end_error.mean()),
        "n_pointer_windows": int(has_start.sum()),
    }


def bar_auroc(membership, scores) -> float | None:
    """Per-bar AUROC of ``scores`` for membership (both flattened); ``None`` with one class."""
    from sklearn.metrics import roc_auc_score

    membership, scores = _same_shape_2d(membership, scores)
    y = membership.ravel().astype(np.int64)
    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, scores.ravel().astype(np.float64)))


def separation(membership, probs) -> dict[str, float | None]:
    """Mean probability on in-span bars (``p_in``), out-of-span bars (``p_out``), and their
    difference (``separation``); ``None`` where a side has no bar."""
    membership, probs = _same_shape_2d(membership, probs)
    inside = membership.astype(bool)
    p_in = float(probs[inside].mean()) if inside.any() else None
    p_out = float(probs[~inside].mean()) if (~inside).any() else None
    gap = p_in - p_out if p_in is not None and p_out is not None else None
    return {"p_in": p_in, "p_out": p_out, "separation": gap}


def window_class_macro_f1(true_class, class_probs) -> float:
    """Macro-F1 over the three window classes of the argmax class (``core.metrics``)."""
    class_probs = np.asarray(class_probs, dtype=np.float64)  # (n, 3)
    if class_probs.ndim != 2 or class_probs.shape[1] != N_CLASSES:
        raise ValueError(f"class probabilities must be (n, 3), got shape {class_probs.shape}")
    return core_metrics.macro_f1_score(true_class, class_probs.argmax(axis=1), n_classes=N_CLASSES)


def choose_threshold(
    scores, membership, *, thresholds: Sequence[float], iou: float
) -> tuple[float, dict[str, float]]:
    """The grid value of ``thresholds`` whose membership ``scores >= threshold`` has the highest
    span F1 on these windows (the lowest on a tie), and the F1 of every grid value (keyed by
    the value as text, for JSON)."""
    if len(thresholds) == 0:
        raise ValueError("choose_threshold needs at least one threshold")
    scores, membership = _same_shape_2d(scores, membership)
    f1_by_threshold = {
        repr(float(t)): span_scores(scores >= t, membership, iou=iou)["span_f1"]
        for t in sorted(float(t) for t in thresholds)
    }
    best = max(f1_by_threshold.items(), key=lambda item: (item[1], -float(item[0])))[0]
    return float(best), f1_by_threshold


def membership_scores(
    scores, membership, *, threshold: float, iou: float
) -> dict[str, float | int | None]:
    """Span precision / recall / F1 of ``scores >= threshold`` and the per-bar AUROC of the
    scores themselves, on the same windows."""
    scores, membership = _same_shape_2d(scores, membership)
    return {
        **span_scores(scores >= threshold, membership, iou=iou),
        "bar_auroc": bar_auroc(membership, scores),
    }


def _same_shape_2d(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(
            f"need two equal, non-empty (n_windows, L) arrays, got {a.shape}, {b.shape}"
        )
    return a, b
