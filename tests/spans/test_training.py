"""The span model's training loop on synthetic windows (one process; tests/integration has the
two-process equality)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lensforge.core import multitask, params, runtime
from lensforge.core.errors import DataError
from lensforge.spans import model as span_model
from lensforge.spans import training
from tests.helpers.span_windows import synthetic_windows


def _config(**overrides):
    config = params.load().train_spans
    small = {"max_epochs": 8, "patience": 8, "batch_size": 32, "lr": 5e-3}
    encoder = dataclasses.replace(config.encoder, hidden=16, n_layers=2, kernel=3)
    return dataclasses.replace(config, encoder=encoder, **{**small, **overrides})


def _splits(n_train=192, n_val=64):
    windows = synthetic_windows(n_train + n_val, seed=3)
    split = np.array(["train"] * n_train + ["validation"] * n_val)
    return windows, split


def test_targets_mask_pointers_without_a_start_and_scale_the_countdown():
    windows = synthetic_windows(40, seed=1)
    raw = training.make_split(windows, np.arange(40), _config(countdown_scale="raw"))
    unit = training.make_split(windows, np.arange(40), _config(countdown_scale="unit"))
    no_start = windows["start"] < 0
    assert (raw.targets["pointers"][no_start] == multitask.NO_LABEL).all()
    assert (raw.targets["pointers"][~no_start, 0] == windows["start"][~no_start]).all()
    assert np.isnan(raw.targets["countdown"][no_start]).all()
    i = int(np.flatnonzero(~no_start)[0])
    expected = np.clip(windows["start"][i] - np.arange(16), -20, 20)
    np.testing.assert_allclose(raw.targets["countdown"][i], expected)
    np.testing.assert_allclose(unit.targets["countdown"][i], (expected + 20) / 40)
    span_only = training.make_split(windows, np.arange(40), _config(tasks=("span",)))
    assert list(span_only.targets) == ["span"]


def test_countdown_scaling_round_trips_through_the_model_units():
    bars = np.array([-50.0, -20.0, -3.0, 0.0, 7.0, 20.0, 33.0])
    for scale in ("raw", "unit"):
        scaled = span_model.scale_countdown(bars, scale=scale, clip=20.0)
        back = span_model.unscale_countdown(scaled, scale=scale, clip=20.0)
        np.testing.assert_allclose(back, np.clip(bars, -20, 20), atol=1e-5)
    assert span_model.scale_countdown(bars, scale="unit", clip=20.0).min() == 0.0


def test_the_model_learns_planted_spans_and_logs_every_component():
    windows, split = _splits()
    accelerator = runtime.make_accelerator()
    result = training.fit(
        windows, split, config=_config(), seed=0, iou=0.5, accelerator=accelerator
    )
    best = result.history[result.best_epoch - 1]
    assert best["val/span_f1"] > 0.6
    assert best["val/p_in"] - best["val/p_out"] > 0.3
    for task in ("class", "pointers", "span", "countdown"):
        for part in ("loss", "weighted", "weight", "log_var"):
            assert np.isfinite(best[f"train/{task}/{part}"]), (task, part)
        assert f"task_weight/{task}" in best and f"val/{task}/loss" in best
    assert best["grad_norm"] > 0
    shares = training.loss_shares(
        best, tasks=("class", "pointers", "span", "countdown"), key="weighted"
    )
    assert sum(shares.values()) == pytest.approx(1.0)


def test_switched_off_heads_are_not_trained_and_seeds_repeat():
    windows, split = _splits(96, 32)
    accelerator = runtime.make_accelerator()
    config = _config(tasks=("span",), max_epochs=2)
    first = training.fit(windows, split, config=config, seed=1, iou=0.5, accelerator=accelerator)
    again = training.fit(windows, split, config=config, seed=1, iou=0.5, accelerator=accelerator)
    assert not any("countdown" in key for key in first.history[-1])
    for a, b in zip(
        first.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b)
    assert first.history == again.history


def test_a_validation_split_without_span_bars_is_a_data_error():
    windows, split = _splits(64, 16)
    windows["membership"][64:] = 0
    with pytest.raises(DataError, match="validation split"):
        training.fit(
            windows,
            split,
            config=_config(),
            seed=0,
            iou=0.5,
            accelerator=runtime.make_accelerator(),
        )
