"""The expansion rule on hand-made closes, with every intermediate value computed by hand.

Returns alternate so that the std of two consecutive returns is half their difference:
``std(x, y) = |x - y| / 2`` (ddof 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from lensforge.spans import labels

NAN = np.nan
# r_1..r_14; r_0 is undefined.
RETURNS = [1, -1, 1, -1, 1, -1, 3, -3, 3, -3, 1, -1, 1, -1]
RULE = {"horizon": 2, "multiple": 1.5, "trailing_bars": 3, "smoothing": 2}


def _closes(returns) -> np.ndarray:
    return 100.0 * np.exp(np.cumsum([0.0, *returns]))


def test_log_returns_undo_the_cumulative_sum():
    np.testing.assert_allclose(labels.log_returns(_closes(RETURNS))[1:], RETURNS, atol=1e-12)
    assert np.isnan(labels.log_returns(_closes(RETURNS))[0])


def test_every_term_of_the_rule_matches_the_hand_computed_values():
    table = labels.expansion_labels(_closes(RETURNS), min_length=3, **RULE)
    # back_vol_t = |r_t - r_{t-1}| / 2 from t = 2.
    back = [NAN, NAN, 1, 1, 1, 1, 1, 2, 3, 3, 3, 2, 1, 1, 1]
    # fwd_vol_t = back_vol_{t+2}; the last two bars have no future.
    fwd = [1, 1, 1, 1, 1, 2, 3, 3, 3, 2, 1, 1, 1, NAN, NAN]
    # median of back_vol over t-2..t, defined from t = 4.
    median = [NAN] * 4 + [1, 1, 1, 1, 2, 3, 3, 3, 2, 1, 1]
    # fwd / median = 1, 2, 3, 3, 1.5, 2/3, 1/3, 1/3, 1/2 for t = 4..12; mean of two consecutive.
    ratio = [NAN] * 5 + [1.5, 2.5, 3.0, 2.25, (1.5 + 2 / 3) / 2, 0.5, 1 / 3, 5 / 12, NAN, NAN]
    np.testing.assert_allclose(table["back_vol"], back, atol=1e-12)
    np.testing.assert_allclose(table["fwd_vol"], fwd, atol=1e-12)
    np.testing.assert_allclose(table["median_back_vol"], median, atol=1e-12)
    np.testing.assert_allclose(table["ratio"], ratio, atol=1e-12)
    # 1.5 at t = 5 is not above m = 1.5: the rule is strict.
    assert np.flatnonzero(table["expanding"]).tolist() == [6, 7, 8]
    assert table["span_id"].tolist() == [-1] * 6 + [0, 0, 0] + [-1] * 6


def test_a_run_shorter_than_min_length_is_no_span():
    table = labels.expansion_labels(_closes(RETURNS), min_length=4, **RULE)
    assert table["expanding"].sum() == 3
    assert (table["span_id"] == labels.NO_SPAN).all()


def test_spans_are_maximal_runs_numbered_in_time_order():
    expanding = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    assert labels.spans_of(expanding, min_length=2).tolist() == [-1, 0, 0, -1, 1, 1, 1, -1, 2, 2]
    assert labels.spans_of(expanding, min_length=3).tolist() == [-1, -1, -1, -1, 0, 0, 0] + [-1] * 3


def test_a_zero_median_makes_the_ratio_undefined_not_infinite():
    flat_then_moving = [0.0] * 6 + [1, -1, 1]
    table = labels.expansion_labels(_closes(flat_then_moving), min_length=1, **RULE)
    assert not np.isinf(table["ratio"]).any()
    assert not table["expanding"][:7].any()


@pytest.mark.parametrize("t", [20, 60, 100])
def test_the_label_of_bar_t_reads_no_close_after_t_plus_horizon(t):
    rng = np.random.default_rng(1)
    close = _closes(rng.normal(0, 0.01, 150))
    rule = {"horizon": 5, "multiple": 1.2, "trailing_bars": 10, "smoothing": 3}
    before = labels.expansion_labels(close, min_length=2, **rule)
    changed = close.copy()
    changed[t + rule["horizon"] + 1 :] *= np.exp(rng.normal(0, 0.05, len(close) - t - 6))
    after = labels.expansion_labels(changed, min_length=2, **rule)
    np.testing.assert_array_equal(after["ratio"][: t + 1], before["ratio"][: t + 1])
    assert not np.allclose(after["ratio"][t + 1 :], before["ratio"][t + 1 :], equal_nan=True)


def test_label_lookahead_counts_the_horizon_and_the_run_length():
    assert labels.label_lookahead(horizon=10, min_length=3) == 12
