"""Builders of tiny adjudication-branch inputs shared by tests (no model needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from lensforge.adjudication import finetune_loop
from lensforge.adjudication.tasks import NO_LABEL
from lensforge.core import params


def random_split(n_rows: int, *, seed: int) -> finetune_loop.EncodedSplit:
    """Random token ids (lengths 4..12) with a learnable signal: the first token decides."""
    rng = np.random.default_rng(seed)
    ids, sentiment, polarization = [], [], []
    for i in range(n_rows):
        label = i % 3
        body = rng.integers(10, 60, size=rng.integers(3, 12)).tolist()
        ids.append([2, 5 + label, *body, 3])
        sentiment.append(label if i % 4 else NO_LABEL)
        polarization.append((label + 1) % 3 if i % 4 == 0 else NO_LABEL)
    labels = {"sentiment": np.array(sentiment), "polarization": np.array(polarization)}
    return finetune_loop.EncodedSplit(input_ids=ids, labels=labels)


CLASSES = {
    "sentiment": ("negative", "neutral", "positive"),
    "polarization": ("non_polarized", "objective", "partisan"),
}  # the tasks of ``random_split`` (the bundled tasks of the default params)


def tiny_finetune_config(project_root: Path) -> params.FinetuneParams:
    config = params.load(project_root / "params.yaml").finetune
    losses = dict(config.losses)
    losses["sentiment"] = dataclasses.replace(losses["sentiment"], class_weights=True)
    return dataclasses.replace(
        config,
        head=dataclasses.replace(config.head, hidden_size=16, dropout=0.0),
        losses=losses,
        batch_size=8,
        max_epochs=2,
        patience=2,
        optimizer=dataclasses.replace(config.optimizer, lr=1e-3),
    )
