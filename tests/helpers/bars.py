"""A synthetic OHLCV series with calm and volatile regimes, written as a user bar CSV.

Volatility switches between a calm level and a volatile one (several times larger) in regimes of
random length, so the expansion rule finds spans; volume rises in volatile regimes. Deterministic
for a given seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CALM_VOL, VOLATILE_VOL = 0.004, 0.02  # per-bar return standard deviation of each regime
CALM_BARS, VOLATILE_BARS = (80, 300), (12, 40)  # regime length ranges, in bars


def synthetic_bars(n_bars: int, *, seed: int = 0, start: str = "2001-01-01") -> pd.DataFrame:
    """``n_bars`` daily bars (time, open, high, low, close, volume) from a regime-switching walk."""
    rng = np.random.default_rng(seed)
    vol = np.empty(n_bars)
    position, volatile = 0, False
    while position < n_bars:
        low, high = VOLATILE_BARS if volatile else CALM_BARS
        length = int(rng.integers(low, high + 1))
        vol[position : position + length] = VOLATILE_VOL if volatile else CALM_VOL
        position += length
        volatile = not volatile
    returns = rng.normal(0.0, vol)
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, vol / 4))
    wick = np.abs(rng.normal(0.0, vol / 2, size=(2, n_bars)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = np.round(rng.lognormal(12.0, 0.3, n_bars) * vol / CALM_VOL)
    times = pd.date_range(start, periods=n_bars, freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame(
        {"time": times, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )


def write_synthetic_bars(path: Path, n_bars: int = 2000, *, seed: int = 0) -> Path:
    """Write ``synthetic_bars`` to ``path`` (a CSV ``windows.instruments`` accepts); returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_bars(n_bars, seed=seed).to_csv(path, index=False)
    return path
