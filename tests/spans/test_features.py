"""The twelve features: hand-computed values on a regular series, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lensforge.spans import features
from tests.helpers.bars import synthetic_bars

A, B = 0.01, 0.002  # return size and wick of the regular series


def _regular_bars(n: int, volume=None) -> pd.DataFrame:
    """Closes alternate up and down by A (log); open = previous close; wicks of B each side."""
    returns = np.where(np.arange(n) % 2 == 1, A, -A)
    returns[0] = 0.0
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]])
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(B),
            "low": np.minimum(open_, close) * np.exp(-B),
            "close": close,
            "volume": np.full(n, 1000.0) if volume is None else volume,
        }
    )


def test_there_are_twelve_named_features_and_the_baseline_is_one_of_them():
    assert len(features.FEATURE_NAMES) == 12 == len(set(features.FEATURE_NAMES))
    assert features.BASELINE_FEATURE in features.FEATURE_NAMES


def test_features_of_an_alternating_series_match_hand_computed_values():
    table = features.compute_features(_regular_bars(300), horizon=10, trailing_bars=20)
    last = table.iloc[-1]  # bar 299: an up bar (odd index)
    # s_t = std of 100 returns of +-A, half each = A.
    assert last["return_z"] == pytest.approx(1.0)
    assert last["body_z"] == pytest.approx(1.0)
    assert last["range_z"] == pytest.approx((A + 2 * B) / A)  # ln(H/L) = |r| + 2B
    assert last["atr_5_z"] == pytest.approx((A + 2 * B) / A)  # open = previous close: tr = range
    assert last["atr_20_z"] == pytest.approx((A + 2 * B) / A)
    assert last["atr_ratio"] == pytest.approx(1.0)
    # Five alternating returns +A, -A, +A, -A, +A: mean A/5, std A * sqrt(24/25).
    assert last["vol_5_z"] == pytest.approx(np.sqrt(24 / 25))
    assert last["vol_20_z"] == pytest.approx(1.0)
    assert last["vol_ratio"] == pytest.approx(np.sqrt(24 / 25))
    assert last["back_vol_ratio"] == pytest.approx(1.0)  # ten alternating returns: std A
    # Closes alternate between c and c e^A: 20-bar low c e^-B, high c e^(A+B); close c e^A.
    expected = (np.exp(A) - np.exp(-B)) / (np.exp(A + B) - np.exp(-B))
    assert last["range_position"] == pytest.approx(expected)
    assert last["volume_z"] == 0.0  # constant volume carries no information
    assert table.iloc[-2]["return_z"] == pytest.approx(-1.0)


def test_volume_z_is_the_z_score_of_log_volume_against_the_last_twenty_bars():
    volume = np.full(300, np.e**2 - 1)  # ln(1 + V) = 2
    volume[-1] = np.e**4 - 1  # ln(1 + V) = 4 at the last bar
    table = features.compute_features(_regular_bars(300, volume), horizon=10, trailing_bars=20)
    logged = np.array([2.0] * 19 + [4.0])
    assert table["volume_z"].iloc[-1] == pytest.approx((4.0 - logged.mean()) / logged.std())


def test_warm_up_bars_are_undefined_and_later_bars_all_finite():
    table = features.compute_features(_regular_bars(300), horizon=10, trailing_bars=20)
    assert table.iloc[: features.SCALE_BARS].isna().any(axis=1).all()  # s_t needs 100 returns
    assert np.isfinite(table.iloc[features.SCALE_BARS :].to_numpy()).all()


@pytest.mark.parametrize("t", [180, 260, 399])
def test_no_feature_at_or_before_t_reads_a_bar_after_t(t):
    """Every bar after t is changed (prices, ranges, volume); nothing at <= t may move."""
    bars = synthetic_bars(400, seed=3)[["open", "high", "low", "close", "volume"]]
    before = features.compute_features(bars, horizon=10, trailing_bars=50)
    rng = np.random.default_rng(t)
    changed = bars.copy()
    after_t = slice(t + 1, None)
    n_after = len(bars) - t - 1
    for column in ("open", "high", "low", "close"):
        changed.loc[changed.index[after_t], column] *= np.exp(rng.normal(0, 0.05, n_after))
    changed.loc[changed.index[after_t], "volume"] *= rng.uniform(0.1, 10.0, n_after)
    after = features.compute_features(changed, horizon=10, trailing_bars=50)
    for name in features.FEATURE_NAMES:
        assert np.isfinite(before[name].iloc[t]), name  # a defined value is what is compared
        np.testing.assert_array_equal(
            after[name].to_numpy()[: t + 1], before[name].to_numpy()[: t + 1], err_msg=name
        )
        if n_after:
            assert not np.allclose(after[name].iloc[t + 1 :], before[name].iloc[t + 1 :]), name


def test_truncating_the_series_after_t_leaves_every_feature_up_to_t_identical():
    bars = synthetic_bars(400, seed=4)
    full = features.compute_features(bars, horizon=10, trailing_bars=50)
    cut = features.compute_features(bars.iloc[:250], horizon=10, trailing_bars=50)
    pd.testing.assert_frame_equal(cut, full.iloc[:250])
