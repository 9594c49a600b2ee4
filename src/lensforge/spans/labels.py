"""The expansion rule: which bars are "expanding", and the spans they form.

Labels come from this rule, not from people. With ``r_t = ln(C_t / C_{t-1})``:

- ``back_vol_t = std(r_{t-k+1..t})`` (population std, ddof 0): realised volatility of the last
  k returns; ``fwd_vol_t = std(r_{t+1..t+k})``: of the next k returns.
- ``med_t = median(back_vol_{t-T+1..t})``: the trailing median, past bars only.
- ``ratio_t = mean(fwd_vol_j / med_j for j in t-s+1..t)``: the forward / median ratio smoothed by
  a rolling mean over the s bars ending at t.
- ``expanding_t = ratio_t > m``. A span is a maximal run of expanding bars at least
  ``min_length`` long; its start is its first bar and its end its last bar (inclusive).

k = ``horizon``, T = ``trailing``, s = ``smoothing``, m = ``multiple``. Where any term is
undefined (the first ``k + T + s - 2`` bars, the last ``k`` bars, a zero median) the ratio is NaN,
the bar is not expanding, and the windows never contain it. The label of bar t reads closes up to
``t + k``, and whether t belongs to a span up to ``t + k + min_length - 1``: that is the purge the
time splits need.

Every rolling statistic here is computed over an explicit window of the array (no running sums),
so a value at t depends on exactly the bars its formula names.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

NO_SPAN = -1  # span_id of a bar outside every span


def log_returns(close: np.ndarray) -> np.ndarray:
    """``r_t = ln(C_t / C_{t-1})``; ``r_0`` is NaN."""
    close = np.asarray(close, dtype=np.float64)
    returns = np.full(close.shape, np.nan)
    returns[1:] = np.log(close[1:] / close[:-1])
    return returns


def trailing(
    values: np.ndarray, n: int, statistic: Callable[..., np.ndarray] = np.mean
) -> np.ndarray:
    """``statistic`` over the ``n`` values ending at each position (``values[t-n+1..t]``).

    NaN for the first ``n - 1`` positions and wherever the window holds a NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    if len(values) >= n:
        windows = np.lib.stride_tricks.sliding_window_view(values, n)  # (len - n + 1, n)
        out[n - 1 :] = statistic(windows, axis=-1)
    return out


def _shifted_std(windows: np.ndarray, axis: int) -> np.ndarray:
    # Centred on each window's first value: a constant window gives exactly 0, not rounding noise.
    return np.std(windows - windows[..., :1], axis=axis)


def trailing_std(values: np.ndarray, n: int) -> np.ndarray:
    """Population standard deviation (ddof 0) over the ``n`` values ending at each position
    (exactly 0 over a constant window)."""
    return trailing(values, n, _shifted_std)


def back_volatility(close: np.ndarray, horizon: int) -> np.ndarray:
    """``back_vol_t = std(r_{t-k+1..t})``, k = ``horizon``; defined from t = k."""
    return trailing_std(log_returns(close), horizon)


def divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is zero or NaN (undefined)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def spans_of(expanding: np.ndarray, *, min_length: int) -> np.ndarray:
    """``span_id`` per bar: maximal runs of True at least ``min_length`` long, numbered 0, 1, ...
    in time order; ``NO_SPAN`` elsewhere."""
    expanding = np.asarray(expanding, dtype=bool)
    span_id = np.full(len(expanding), NO_SPAN, dtype=np.int64)
    padded = np.concatenate([[False], expanding, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stop exclusive
    number = 0
    for start, stop in zip(starts, stops, strict=True):
        if stop - start >= min_length:
            span_id[start:stop] = number
            number += 1
    return span_id


def expansion_labels(
    close: np.ndarray,
    *,
    horizon: int,
    multiple: float,
    trailing_bars: int,
    smoothing: int,
    min_length: int,
) -> pd.DataFrame:
    """The rule of the module docstring over one instrument's closes.

    Returns one row per bar: ``back_vol``, ``fwd_vol``, ``median_back_vol``, ``ratio`` (NaN where
    undefined), ``expanding`` (bool; False where the ratio is NaN) and ``span_id``.
    """
    back_vol = back_volatility(close, horizon)
    fwd_vol = np.full(back_vol.shape, np.nan)
    fwd_vol[:-horizon] = back_vol[horizon:]  # std(r_{t+1..t+k}) is back_vol_{t+k}
    median = trailing(back_vol, trailing_bars, np.median)
    ratio = trailing(divide(fwd_vol, median), smoothing)
    expanding = np.nan_to_num(ratio, nan=-np.inf) > multiple
    return pd.DataFrame(
        {
            "back_vol": back_vol,
            "fwd_vol": fwd_vol,
            "median_back_vol": median,
            "ratio": ratio,
            "expanding": expanding,
            "span_id": spans_of(expanding, min_length=min_length),
        }
    )


def label_lookahead(*, horizon: int, min_length: int) -> int:
    """Bars after t that bar t's span membership can read (module docstring)."""
    return horizon + min_length - 1
