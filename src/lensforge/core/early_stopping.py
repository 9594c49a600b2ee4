"""Early stopping on a validation score (higher is better), shared by every trainer."""

from __future__ import annotations

import math


class EarlyStopping:
    """Tracks the best epoch of a validation score and says when ``patience`` epochs passed
    without a strictly higher score.

    >>> stop = EarlyStopping(patience=2)
    >>> [stop.update(epoch, score) for epoch, score in enumerate([0.5, 0.6, 0.6, 0.55], 1)]
    [True, True, False, False]
    >>> stop.best_epoch, stop.should_stop
    (2, True)
    """

    def __init__(self, patience: int):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = patience
        self.best_score = -math.inf
        self.best_epoch = 0
        self._last_epoch = 0

    def update(self, epoch: int, score: float) -> bool:
        """Record ``score`` for ``epoch``; True when it is a new best (keep this epoch's state)."""
        self._last_epoch = epoch
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            return True
        return False

    @property
    def should_stop(self) -> bool:
        return self._last_epoch - self.best_epoch >= self.patience
