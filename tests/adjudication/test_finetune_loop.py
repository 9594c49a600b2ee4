"""The fine-tuning loop on one process: epoch order and global batches, prediction, best state.

The 2-process equality for any row count is tests/integration/test_finetune_any_rows.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from lensforge.adjudication import encoders, finetune_loop
from lensforge.adjudication.tasks import NO_LABEL
from lensforge.core import runtime
from tests.helpers import tiny_encoder
from tests.helpers.finetune_data import CLASSES, random_split, tiny_finetune_config

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


def test_67_rows_in_global_batches_of_8_give_8_full_batches_and_one_of_3():
    order = finetune_loop.epoch_order(67, weights=None, seed=0, epoch=0)
    batches = finetune_loop.global_batches(order, batch_size=8)
    assert [len(b) for b in batches] == [8] * 8 + [3]
    assert sorted(np.concatenate(batches).tolist()) == list(range(67))
    for batch in batches:  # two processes' shares partition each batch: no row twice, none lost
        shares = [runtime.rank_share(batch, rank=r, world_size=2) for r in range(2)]
        assert sorted(np.concatenate(shares).tolist()) == sorted(batch.tolist())
    assert finetune_loop.n_optimizer_steps(67, batch_size=8, grad_accumulation=2) == 5
    assert finetune_loop.n_optimizer_steps(64, batch_size=8, grad_accumulation=2) == 4


def test_epoch_order_is_the_same_for_a_seed_and_epoch_and_new_each_epoch():
    first = finetune_loop.epoch_order(40, weights=None, seed=3, epoch=0)
    assert np.array_equal(first, finetune_loop.epoch_order(40, weights=None, seed=3, epoch=0))
    assert not np.array_equal(first, finetune_loop.epoch_order(40, weights=None, seed=3, epoch=1))


def test_oversampling_epochs_draw_rare_joint_labels_more_often(project_root):
    config = tiny_finetune_config(project_root)
    config = dataclasses.replace(
        config, oversample=dataclasses.replace(config.oversample, enabled=True)
    )
    split = random_split(48, seed=0)
    weights = finetune_loop.sample_weights(config, split.labels, classes=CLASSES)
    epochs = [
        finetune_loop.epoch_order(len(split), weights=weights, seed=0, epoch=e) for e in range(5)
    ]
    assert not np.array_equal(epochs[0], epochs[1]) and len(epochs[0]) == 48
    rare = split.labels["polarization"] != NO_LABEL  # a quarter of the rows; expected share 0.39
    drawn = np.mean([rare[i] for epoch in epochs for i in epoch])
    assert drawn > 0.32


def _classifier(encoder_dir, config):
    encoder, _ = encoders.load_pretrained(str(encoder_dir))
    return finetune_loop.build_classifier(encoder, config, classes=CLASSES, seed=0)


def test_predict_returns_every_row_once_in_row_order(tiny_encoder_dir, project_root):
    config = tiny_finetune_config(project_root)
    classifier = _classifier(tiny_encoder_dir, config).eval()
    split = random_split(21, seed=1)
    logits = finetune_loop.predict(
        classifier, split, batch_size=4, pad_id=0, accelerator=Accelerator(cpu=True)
    )
    expected = encoders.predict_logits(classifier, split.input_ids, batch_size=21, pad_id=0)
    for task, values in logits.items():
        assert values.shape == (21, 3)
        np.testing.assert_allclose(values, expected[task].numpy(), atol=1e-5, rtol=0)


def test_train_returns_the_best_epochs_weights_not_the_last(tiny_encoder_dir, project_root):
    """Validation macro-F1 is made to peak at epoch 1 of 3 (the callback rewrites the score the
    loop reads, before it decides); the weights keep changing after it."""
    config = dataclasses.replace(tiny_finetune_config(project_root), max_epochs=3, patience=3)
    classifier = _classifier(tiny_encoder_dir, config)
    train_split, val_split = random_split(32, seed=0), random_split(12, seed=1)
    states, scores = {}, {1: 0.9, 2: 0.5, 3: 0.7}

    def on_epoch(epoch: int, record: dict) -> None:
        states[epoch] = {k: v.detach().clone() for k, v in classifier.state_dict().items()}
        record["val/macro_f1"] = scores[epoch]

    result = finetune_loop.train(
        classifier,
        finetune_loop.build_objective(config, train_split.labels, classes=CLASSES),
        train_split,
        val_split,
        config=config,
        accelerator=Accelerator(cpu=True),
        pad_id=0,
        weights=None,
        seed=0,
        on_epoch=on_epoch,
    )
    assert (result.best_epoch, result.best_score, len(result.history)) == (1, 0.9, 3)
    assert [record["epoch"] for record in result.history] == [1, 2, 3]
    assert result.best_state.keys() == states[1].keys()
    for name, tensor in result.best_state.items():
        assert torch.equal(tensor, states[1][name]), name
    changed = [n for n, t in result.best_state.items() if not torch.equal(t, states[3][n])]
    assert "heads.sentiment.1.weight" in changed  # the last epoch's weights are not returned


def test_train_stops_after_patience_epochs_without_gain(tiny_encoder_dir, project_root):
    config = dataclasses.replace(tiny_finetune_config(project_root), max_epochs=5, patience=2)
    classifier = _classifier(tiny_encoder_dir, config)
    split = random_split(16, seed=0)
    scores = {1: 0.4, 2: 0.6, 3: 0.6, 4: 0.5, 5: 0.9}

    def on_epoch(epoch: int, record: dict) -> None:
        record["val/macro_f1"] = scores[epoch]

    result = finetune_loop.train(
        classifier,
        finetune_loop.build_objective(config, split.labels, classes=CLASSES),
        split,
        random_split(8, seed=1),
        config=config,
        accelerator=Accelerator(cpu=True),
        pad_id=0,
        weights=None,
        seed=0,
        on_epoch=on_epoch,
    )
    assert (result.best_epoch, len(result.history)) == (2, 4)


def test_train_refuses_an_accelerator_that_accumulates_itself(tiny_encoder_dir, project_root):
    config = tiny_finetune_config(project_root)
    split = random_split(8, seed=0)
    with pytest.raises(ValueError, match="accumulates gradients itself"):
        finetune_loop.train(
            _classifier(tiny_encoder_dir, config),
            finetune_loop.build_objective(config, split.labels, classes=CLASSES),
            split,
            split,
            config=config,
            accelerator=Accelerator(cpu=True, gradient_accumulation_steps=2),
            pad_id=0,
            weights=None,
            seed=0,
            on_epoch=lambda epoch, record: None,
        )
