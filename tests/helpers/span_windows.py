"""Synthetic span windows in the windows stage's format (``data/spans/windows.safetensors``
tensors), with spans that a model can learn: feature 0 is high on span bars."""

from __future__ import annotations

import numpy as np


def synthetic_windows(n: int, *, length: int = 16, n_features: int = 3, seed: int = 0) -> dict:
    """``n`` windows: about half hold one span (class 1 when it starts inside the window, 2 when
    it runs in from before), the rest none (class 0)."""
    rng = np.random.default_rng(seed)
    membership = np.zeros((n, length), np.float32)
    window_class = np.zeros(n, np.int64)
    start = np.full(n, -1, np.int64)
    end = np.full(n, -1, np.int64)
    countdown = np.full((n, length), np.nan, np.float32)
    for i in range(n):
        kind = rng.integers(0, 4)
        if kind == 0:
            continue
        if kind == 3:  # a span running in from before the window
            last = int(rng.integers(1, length // 2))
            membership[i, : last + 1] = 1
            window_class[i] = 2
            continue
        first = int(rng.integers(1, length - 4))
        last = min(length - 1, first + int(rng.integers(2, 6)))
        membership[i, first : last + 1] = 1
        window_class[i], start[i], end[i] = 1, first, last
        countdown[i] = first - np.arange(length)
    features = rng.normal(size=(n, length, n_features)).astype(np.float32)
    features[..., 0] += 2.5 * membership
    return {
        "features": features,
        "membership": membership,
        "countdown": countdown,
        "window_class": window_class,
        "start": start,
        "end": end,
    }
