"""Span metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from lensforge.spans import metrics


def _mask(length: int, *spans: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(length, dtype=np.float32)
    for start, end in spans:
        mask[start : end + 1] = 1
    return mask


def test_spans_from_mask_finds_maximal_runs_including_both_edges():
    mask = [1, 1, 0, 0, 1, 0, 1, 1, 1]
    assert metrics.spans_from_mask(mask) == [(0, 1), (4, 4), (6, 8)]
    assert metrics.spans_from_mask([0, 0, 0]) == []
    assert metrics.spans_from_mask([1, 1]) == [(0, 1)]


def test_spans_from_probs_keeps_bars_at_or_above_the_threshold():
    assert metrics.spans_from_probs([0.2, 0.5, 0.7, 0.49, 0.5], threshold=0.5) == [(1, 2), (4, 4)]


def test_iou_of_overlapping_inclusive_spans_is_shared_over_union_bars():
    assert metrics.span_iou((10, 20), (12, 22)) == pytest.approx(9 / 13)
    assert metrics.span_iou((10, 20), (10, 20)) == 1.0
    assert metrics.span_iou((0, 4), (5, 9)) == 0.0
    assert metrics.span_iou((3, 3), (3, 3)) == 1.0
    assert metrics.span_iou((0, 9), (5, 5)) == pytest.approx(1 / 10)


def test_iou_just_below_the_threshold_does_not_match():
    # [0, 9] and [5, 14]: 5 shared bars of 15 -> 1/3; [0, 9] and [3, 12]: 7 of 13 -> 0.538
    assert metrics.match_spans([(5, 14)], [(0, 9)], iou=0.5) == []
    assert metrics.match_spans([(3, 12)], [(0, 9)], iou=0.5) == [(0, 0)]
    # [0, 9] and [0, 19]: 10 of 20 = exactly 0.5 matches; [0, 9] and [0, 20]: 10/21 does not
    assert metrics.match_spans([(0, 19)], [(0, 9)], iou=0.5) == [(0, 0)]
    assert metrics.match_spans([(0, 20)], [(0, 9)], iou=0.5) == []


def test_two_predictions_on_one_true_span_give_one_tp_and_one_fp():
    counts = metrics.span_counts([(10, 18), (10, 20)], [(10, 20)], iou=0.5)
    assert counts == {"tp": 1, "fp": 1, "fn": 0}
    # the higher-IoU prediction wins the pair
    assert metrics.match_spans([(10, 18), (10, 20)], [(10, 20)], iou=0.5) == [(1, 0)]


def test_greedy_matching_pairs_the_best_overlaps_first_and_uses_each_span_once():
    predicted = [(0, 10), (12, 20)]
    true = [(0, 9), (11, 20), (30, 35)]
    # IoUs: p0-t0 10/11, p1-t1 9/10, p0-t1 0; t2 unmatched
    assert metrics.match_spans(predicted, true, iou=0.5) == [(0, 0), (1, 1)]
    assert metrics.span_counts(predicted, true, iou=0.5) == {"tp": 2, "fp": 0, "fn": 1}


def test_span_scores_sum_counts_over_windows_before_dividing():
    true = np.stack([_mask(30, (10, 20)), _mask(30, (2, 5), (20, 25)), _mask(30)])
    predicted = np.stack([_mask(30, (12, 22)), _mask(30, (2, 5)), _mask(30, (0, 1))])
    scores = metrics.span_scores(predicted, true, iou=0.5)
    # window 0: TP (IoU 9/13); window 1: TP, FN; window 2: FP -> TP 2, FP 1, FN 1
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 1, 1)
    assert scores["span_precision"] == pytest.approx(2 / 3)
    assert scores["span_recall"] == pytest.approx(2 / 3)
    assert scores["span_f1"] == pytest.approx(2 / 3)
    assert (scores["n_true"], scores["n_predicted"]) == (3, 3)


def test_nothing_predicted_gives_f1_zero_and_nothing_at_all_gives_zeros():
    true = np.stack([_mask(12, (3, 6))])
    nothing = np.zeros_like(true)
    scores = metrics.span_scores(nothing, true, iou=0.5)
    assert scores["span_f1"] == 0.0 and scores["span_precision"] == 0.0
    assert scores["span_recall"] == 0.0 and scores["fn"] == 1
    empty = metrics.span_scores(nothing, nothing, iou=0.5)
    assert (empty["span_precision"], empty["span_recall"], empty["span_f1"]) == (0.0, 0.0, 0.0)
    assert (empty["n_true"], empty["n_predicted"]) == (0, 0)


def test_pointer_mae_uses_argmax_and_only_windows_with_a_true_start():
    length = 10
    start_probs = np.full((3, length), 0.01)
    end_probs = np.full((3, length), 0.01)
    start_probs[0, 4], end_probs[0, 8] = 0.9, 0.9  # true 2..9: errors 2 and 1
    start_probs[1, 1], end_probs[1, 1] = 0.9, 0.9  # true 1..5: errors 0 and 4
    start_probs[2, 0], end_probs[2, 0] = 0.9, 0.9  # no true start: left out
    errors = metrics.pointer_errors(start_probs, end_probs, [2, 1, -1], [9, 5, -1])
    assert errors["start_mae_bars"] == pytest.approx(1.0)
    assert errors["end_mae_bars"] == pytest.approx(2.5)
    assert errors["n_pointer_windows"] == 2
    none = metrics.pointer_errors(start_probs, end_probs, [-1, -1, -1], [-1, -1, -1])
    assert none["start_mae_bars"] is None and none["n_pointer_windows"] == 0


def test_separation_is_mean_in_span_minus_mean_out_of_span():
    membership = np.array([[1, 1, 0, 0], [0, 1, 0, 0]])
    probs = np.array([[0.9, 0.6, 0.2, 0.1], [0.3, 0.6, 0.0, 0.2]])
    result = metrics.separation(membership, probs)
    assert result["p_in"] == pytest.approx(0.7)
    assert result["p_out"] == pytest.approx(0.16)
    assert result["separation"] == pytest.approx(0.54)
    one_side = metrics.separation(np.zeros((1, 3)), np.full((1, 3), 0.4))
    assert one_side["p_in"] is None and one_side["separation"] is None


def test_bar_auroc_counts_ranked_pairs_and_is_none_with_one_class():
    membership = np.array([[1, 0, 1, 0]])
    # positives 0.8, 0.3; negatives 0.4, 0.1: 3 of 4 pairs ranked right
    assert metrics.bar_auroc(membership, np.array([[0.8, 0.4, 0.3, 0.1]])) == pytest.approx(0.75)
    assert metrics.bar_auroc(np.zeros((2, 3)), np.random.rand(2, 3)) is None


def test_window_class_macro_f1_of_argmax_classes():
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
    # true 0, 1, 2, 2: class F1s 1, 2/3, 2/3
    assert metrics.window_class_macro_f1([0, 1, 2, 2], probs) == pytest.approx((1 + 4 / 3) / 3)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="non-empty"):
        metrics.span_scores(np.zeros((2, 3)), np.zeros((2, 4)), iou=0.5)
    with pytest.raises(ValueError, match="start <= end"):
        metrics.span_iou((5, 3), (1, 2))


def test_choose_threshold_takes_the_best_span_f1_and_the_lowest_on_a_tie():
    membership = np.stack([_mask(10, (2, 5))])
    # bars 2-5 at 0.6, bar 8 at 0.35, the rest 0.1: 0.2 and 0.3 add a false span, 0.4-0.6 are
    # perfect, 0.7 finds nothing
    scores = np.full((1, 10), 0.1)
    scores[0, 2:6], scores[0, 8] = 0.6, 0.35
    threshold, f1 = metrics.choose_threshold(
        scores, membership, thresholds=[0.7, 0.5, 0.3, 0.4, 0.6, 0.2], iou=0.5
    )
    assert threshold == 0.4
    assert f1 == {
        "0.2": pytest.approx(2 / 3),
        "0.3": pytest.approx(2 / 3),
        "0.4": 1.0,
        "0.5": 1.0,
        "0.6": 1.0,
        "0.7": 0.0,
    }
    assert list(f1) == ["0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]


def test_membership_scores_threshold_spans_and_rank_bars():
    membership = np.stack([_mask(6, (1, 3))])
    scores = np.array([[0.2, 0.9, 0.8, 0.25, 0.3, 0.1]])
    result = metrics.membership_scores(scores, membership, threshold=0.5, iou=0.5)
    # predicted span [1, 2] vs true [1, 3]: IoU 2/3, a match; AUROC: of the 9 (in, out) pairs
    # only (0.25, 0.3) is ranked wrong
    assert (result["tp"], result["fp"], result["fn"]) == (1, 0, 0)
    assert result["span_f1"] == 1.0
    assert result["bar_auroc"] == pytest.approx(8 / 9)
