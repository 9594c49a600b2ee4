"""Window maths on hand-made spans, time splits with a purge gap, and the held-out instrument."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lensforge.core.errors import DataError, ParamsError
from lensforge.core.params import SpanLabelParams, SpanSplitParams, WindowsParams
from lensforge.spans import features, sources, windows
from tests.helpers.bars import synthetic_bars

NAN = np.nan


def _params(**changes) -> WindowsParams:
    base = WindowsParams(
        instruments=("a",),
        holdout="b",
        window=40,
        stride=3,
        label=SpanLabelParams(horizon=5, multiple=1.5, trailing=60, smoothing=2, min_length=3),
        split=SpanSplitParams(validation=0.2, test=0.2, purge=8),
    )
    return dataclasses.replace(base, **changes)


def _instrument(name: str, n_bars: int = 1200, seed: int = 0) -> sources.Instrument:
    bars = synthetic_bars(n_bars, seed=seed)
    bars["time"] = bars["time"].astype("datetime64[us]")
    return sources.Instrument(name, bars, f"synthetic {name}", "0" * 64, True)


@pytest.fixture(scope="module")
def built():
    params = _params()
    tables, window_set, dropped = windows.build(
        [_instrument("a"), _instrument("b", seed=1)], params
    )
    return params, tables, window_set, dropped


def test_window_targets_match_hand_computed_pointers_membership_and_countdown():
    #            bar: 0   1   2  3  4  5   6   7  8  9 10 11
    span_id = np.array([-1, -1, 0, 0, 0, -1, -1, 1, 1, 1, 1, 1])
    first_bars = np.array([0, 3, 5, 6])
    targets = windows.window_targets(span_id, first_bars, window=4)
    np.testing.assert_array_equal(
        targets["membership"],
        [[0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 1, 1]],
    )
    # window 0: span 0 starts at position 2, ends at bar 4 -> clipped to 3;
    # window 1: span 0 started before the window -> inside, no pointers;
    # window 2 (bars 5..8): span 1 starts at bar 7 = position 2, ends at bar 11 -> clipped to 3;
    # window 3 (bars 6..9): span 1 starts at position 1.
    assert targets["window_class"].tolist() == [1, 2, 1, 1]
    assert targets["start"].tolist() == [2, -1, 2, 1]
    assert targets["end"].tolist() == [3, -1, 3, 3]
    np.testing.assert_array_equal(
        targets["countdown"],
        [[2, 1, 0, -1], [NAN] * 4, [2, 1, 0, -1], [1, 0, -1, -2]],
    )


def test_the_end_pointer_is_the_spans_last_bar_when_it_ends_inside_and_none_is_class_0():
    span_id = np.array([-1, 0, 0, -1, -1, -1, -1, -1, 1, 1])
    targets = windows.window_targets(span_id, np.array([0, 3]), window=5)
    assert targets["window_class"].tolist() == [1, 0]
    assert targets["start"].tolist() == [1, -1] and targets["end"].tolist() == [2, -1]
    # A second span starting in the same window: the pointers follow the first one.
    targets = windows.window_targets(span_id, np.array([1]), window=9)
    assert (targets["start"][0], targets["end"][0]) == (0, 1)
    assert targets["membership"][0].tolist() == [1, 1, 0, 0, 0, 0, 0, 1, 1]


def test_split_bars_puts_the_purge_after_each_boundary():
    usable = np.ones(100, dtype=bool)
    usable[:10] = False  # warm-up: 90 usable bars, boundaries at 54 and 72 of them
    split = windows.split_bars(usable, validation=0.2, test=0.2, purge=5, holdout=False)
    expected = (
        ["unused"] * 10 + ["train"] * 54 + ["purge"] * 5 + ["validation"] * 13 + ["purge"] * 5
    )
    expected += ["test"] * 13
    assert split.tolist() == expected
    holdout = windows.split_bars(usable, validation=0.2, test=0.2, purge=5, holdout=True)
    assert set(holdout[10:]) == {"holdout"} and set(holdout[:10]) == {"unused"}


def test_window_starts_keep_windows_of_one_split_on_the_stride_grid():
    split = np.array(["unused"] * 2 + ["train"] * 10 + ["purge"] * 2 + ["test"] * 6, dtype=object)
    first_bars, n_dropped = windows.window_starts(split, window=4, stride=2)
    # grid 2, 4, ..., 16; windows 10..13, 12..15 touch the purge; 14..17, 16..19 are test.
    assert first_bars.tolist() == [2, 4, 6, 8, 14, 16]
    assert n_dropped == 2


def test_no_bar_sits_in_two_splits_and_the_gap_is_at_least_the_purge(built):
    params, tables, window_set, _ = built
    index = window_set.index
    for name in ("a", "b"):
        rows = index[index["instrument"] == name]
        ranges = {}
        for split, group in rows.groupby("split"):
            bars = np.concatenate([np.arange(f, f + params.window) for f in group["first_bar"]])
            ranges[split] = (bars.min(), bars.max())
            # every bar of a window of this split lies in the split's range of bars
            assert set(tables[name]["split"].to_numpy()[bars]) == {split}
        if name == "a":
            assert set(ranges) == set(windows.SPLITS)
            assert ranges["train"][1] + params.split.purge < ranges["validation"][0]
            assert ranges["validation"][1] + params.split.purge < ranges["test"][0]
        else:
            assert set(ranges) == {windows.HOLDOUT}
    summary = windows.summary(tables, window_set, built[3], params)
    assert summary["bars_in_two_splits"] == 0
    assert summary["min_split_gap_bars"] >= params.split.purge


def test_windows_carry_the_bars_features_and_consistent_targets(built):
    params, tables, window_set, _ = built
    n = len(window_set.index)
    assert window_set.features.shape == (n, params.window, len(features.FEATURE_NAMES))
    assert np.isfinite(window_set.features).all()
    row = window_set.index.iloc[7]
    table = tables[row["instrument"]]
    expected = table[list(features.FEATURE_NAMES)].to_numpy(np.float32)
    first = row["first_bar"]
    np.testing.assert_array_equal(window_set.features[7], expected[first : first + params.window])
    no_start = window_set.start == -1
    assert np.isnan(window_set.countdown[no_start]).all()
    with_start = ~no_start
    positions = np.arange(params.window)
    np.testing.assert_array_equal(
        window_set.countdown[with_start], window_set.start[with_start, None] - positions
    )
    assert (window_set.end[with_start] >= window_set.start[with_start]).all()
    in_span_at_start = window_set.membership[with_start, window_set.start[with_start]]
    assert (in_span_at_start == 1).all()
    assert set(np.unique(window_set.window_class)) == {0, 1, 2}


def test_a_purge_shorter_than_the_label_look_ahead_is_refused():
    with pytest.raises(ParamsError, match="horizon \\+ min_length - 1"):
        windows.check_purge(_params(split=SpanSplitParams(validation=0.2, test=0.2, purge=6)))
    windows.check_purge(_params(split=SpanSplitParams(validation=0.2, test=0.2, purge=7)))


def test_an_instrument_too_short_for_its_splits_is_a_data_error_naming_it():
    with pytest.raises(DataError) as error:
        windows.build([_instrument("a", n_bars=300), _instrument("b", seed=1)], _params())
    assert error.value.path == "synthetic a"
    assert "validation" in error.value.message
