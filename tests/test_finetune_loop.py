"""The Accelerate fine-tuning loop: 2 processes really run and match 1 process on the same data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from accelerate.state import AcceleratorState

from lensforge import finetune_loop, params
from lensforge.finetuning import IGNORE
from tests import tiny_encoder

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir


def _split(n_rows: int, *, seed: int) -> finetune_loop.EncodedSplit:
    """Random token ids (lengths 4..12) with a learnable signal: the first token decides."""
    rng = np.random.default_rng(seed)
    ids, sentiment, polarization = [], [], []
    for i in range(n_rows):
        label = i % 3
        body = rng.integers(10, 60, size=rng.integers(3, 12)).tolist()
        ids.append([2, 5 + label, *body, 3])
        sentiment.append(label if i % 4 else IGNORE)
        polarization.append((label + 1) % 3 if i % 4 == 0 else IGNORE)
    labels = {"sentiment": np.array(sentiment), "polarization": np.array(polarization)}
    return finetune_loop.EncodedSplit(input_ids=ids, labels=labels)


def _config(project_root: Path) -> params.FinetuneParams:
    config = params.load(project_root / "params.yaml").finetune
    return dataclasses.replace(
        config,
        head=dataclasses.replace(config.head, hidden_size=16, dropout=0.0),
        sentiment=dataclasses.replace(config.sentiment, class_weights=True),
        batch_size=8,
        max_epochs=2,
        patience=2,
        optimizer=dataclasses.replace(config.optimizer, lr=1e-3),
    )


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


def test_global_batch_must_divide_among_processes():
    assert finetune_loop.per_process_batch(32, 4) == 8
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        finetune_loop.per_process_batch(32, 3)


def test_label_names_map_to_ids_and_missing_labels_to_ignore():
    ids = finetune_loop.label_ids(["neutral", "", "positive"], ("negative", "neutral", "positive"))
    assert ids.tolist() == [1, IGNORE, 2]
    with pytest.raises(ValueError, match="unknown class"):
        finetune_loop.label_ids(["happy"], ("negative", "neutral", "positive"))


def test_oversampling_epochs_draw_rare_joint_labels_more_often(project_root):
    config = _config(project_root)
    config = dataclasses.replace(
        config, oversample=dataclasses.replace(config.oversample, enabled=True)
    )
    split = _split(48, seed=0)
    weights = finetune_loop.sample_weights(config, split.labels)
    sampler = finetune_loop.EpochSampler(len(split), weights=weights, seed=0)
    epochs = [list(sampler) for _ in range(5)]
    assert epochs[0] != epochs[1] and len(epochs[0]) == 48
    rare = split.labels["polarization"] != IGNORE  # a quarter of the rows; expected share 0.39
    drawn = np.mean([rare[i] for epoch in epochs for i in epoch])
    assert drawn > 0.32
