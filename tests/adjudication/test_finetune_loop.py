"""The Accelerate fine-tuning loop: 2 processes really run and match 1 process on the same data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from accelerate.state import AcceleratorState

from lensforge.adjudication import finetune_loop
from lensforge.adjudication.multitask import IGNORE
from tests.helpers import tiny_encoder
from tests.helpers.finetune_data import random_split, tiny_finetune_config

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir


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
    config = tiny_finetune_config(project_root)
    config = dataclasses.replace(
        config, oversample=dataclasses.replace(config.oversample, enabled=True)
    )
    split = random_split(48, seed=0)
    weights = finetune_loop.sample_weights(config, split.labels)
    sampler = finetune_loop.EpochSampler(len(split), weights=weights, seed=0)
    epochs = [list(sampler) for _ in range(5)]
    assert epochs[0] != epochs[1] and len(epochs[0]) == 48
    rare = split.labels["polarization"] != IGNORE  # a quarter of the rows; expected share 0.39
    drawn = np.mean([rare[i] for epoch in epochs for i in epoch])
    assert drawn > 0.32
