"""Twelve causal features per bar: each value at bar t reads bars 0..t only.

With ``r_t = ln(C_t / C_{t-1})``, the true log range ``tr_t = ln(max(H_t, C_{t-1}) /
min(L_t, C_{t-1}))`` and ``s_t = std(r_{t-99..t})`` (the return scale over the last
``SCALE_BARS`` bars, ddof 0), in tensor order:

=====================  ==========================================================================
``return_z``           ``r_t / s_t``: the bar's log return in units of the recent return scale
``range_z``            ``ln(H_t / L_t) / s_t``: the bar's high-low range
``body_z``             ``ln(C_t / O_t) / s_t``: open to close
``range_position``     ``(C_t - min L) / (max H - min L)`` over the last 20 bars (0 bottom, 1 top)
``atr_5_z``            ``mean(tr over 5 bars) / s_t``: short average true range
``atr_20_z``           ``mean(tr over 20 bars) / s_t``: long average true range
``atr_ratio``          ``atr_5 / atr_20``: range expanding (> 1) or contracting (< 1)
``vol_5_z``            ``std(r over 5 bars) / s_t``
``vol_20_z``           ``std(r over 20 bars) / s_t``
``vol_ratio``          ``vol_5 / vol_20``
``back_vol_ratio``     ``back_vol_t / median(back_vol over the trailing T bars)`` with
                       ``back_vol_t = std(r over the last k bars)``: the label rule's ratio read
                       backward (k, T from ``windows.label``); the threshold baseline's feature
``volume_z``           z-score of ``ln(1 + V_t)`` against the last 20 bars (0 when volume is
                       constant over them, e.g. a CSV without volume)
=====================  ==========================================================================

Dividing by ``s_t`` makes daily index bars and hourly currency bars comparable. A ratio with a
zero denominator is undefined (NaN), like the warm-up bars (the first ``max(SCALE_BARS, k + T - 1)``
bars); the windows never contain a NaN feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensforge.spans.labels import back_volatility, divide, log_returns, trailing, trailing_std

SCALE_BARS = 100  # bars of the return scale s_t
SHORT_BARS, LONG_BARS = 5, 20  # lookbacks of the short and long ATR / volatility / range features

FEATURE_NAMES = (
    "return_z",
    "range_z",
    "body_z",
    "range_position",
    "atr_5_z",
    "atr_20_z",
    "atr_ratio",
    "vol_5_z",
    "vol_20_z",
    "vol_ratio",
    "back_vol_ratio",
    "volume_z",
)
BASELINE_FEATURE = "back_vol_ratio"


def true_log_range(bars: pd.DataFrame) -> np.ndarray:
    """``tr_t = ln(max(H_t, C_{t-1}) / min(L_t, C_{t-1}))``; bar 0 uses its own high and low."""
    high, low, close = (bars[c].to_numpy(np.float64) for c in ("high", "low", "close"))
    previous = np.concatenate([[np.nan], close[:-1]])
    top = np.fmax(high, previous)  # fmax ignores the NaN of bar 0
    bottom = np.fmin(low, previous)
    return np.log(top / bottom)


def _range_position(bars: pd.DataFrame, n: int) -> np.ndarray:
    lowest = trailing(bars["low"].to_numpy(np.float64), n, np.min)
    highest = trailing(bars["high"].to_numpy(np.float64), n, np.max)
    return divide(bars["close"].to_numpy(np.float64) - lowest, highest - lowest)


def _volume_z(volume: np.ndarray, n: int) -> np.ndarray:
    logged = np.log1p(np.asarray(volume, dtype=np.float64))
    spread = trailing_std(logged, n)
    z = divide(logged - trailing(logged, n), spread)
    return np.where(spread == 0, 0.0, z)  # constant volume carries no information


def compute_features(bars: pd.DataFrame, *, horizon: int, trailing_bars: int) -> pd.DataFrame:
    """The ``FEATURE_NAMES`` columns (module docstring) for ``bars`` (open, high, low, close,
    volume; one row per bar in time order). ``horizon`` and ``trailing_bars`` are the label
    rule's k and T, used by ``back_vol_ratio`` only. NaN where a feature is undefined."""
    open_, high, low, close = (
        bars[c].to_numpy(np.float64) for c in ("open", "high", "low", "close")
    )
    returns = log_returns(close)
    scale = trailing_std(returns, SCALE_BARS)
    true_range = true_log_range(bars)
    atr_short, atr_long = trailing(true_range, SHORT_BARS), trailing(true_range, LONG_BARS)
    vol_short, vol_long = trailing_std(returns, SHORT_BARS), trailing_std(returns, LONG_BARS)
    back_vol = back_volatility(close, horizon)
    columns = {
        "return_z": divide(returns, scale),
        "range_z": divide(np.log(high / low), scale),
        "body_z": divide(np.log(close / open_), scale),
        "range_position": _range_position(bars, LONG_BARS),
        "atr_5_z": divide(atr_short, scale),
        "atr_20_z": divide(atr_long, scale),
        "atr_ratio": divide(atr_short, atr_long),
        "vol_5_z": divide(vol_short, scale),
        "vol_20_z": divide(vol_long, scale),
        "vol_ratio": divide(vol_short, vol_long),
        BASELINE_FEATURE: divide(back_vol, trailing(back_vol, trailing_bars, np.median)),
        "volume_z": _volume_z(bars["volume"].to_numpy(np.float64), LONG_BARS),
    }
    return pd.DataFrame(columns, index=bars.index)[list(FEATURE_NAMES)]
