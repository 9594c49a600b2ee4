"""``training.fit`` on small random tensors: early stopping, best weights, determinism."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from accelerate import Accelerator

from lensforge.core import runtime
from lensforge.core.params import LensParams, LossParams, OptimizerParams, TrainParams
from lensforge.lenses import models, training

CONFIG = TrainParams(
    layer=6,
    seeds=(0,),
    lens=LensParams(kind="tripole", hidden=16, dropout=0.0),
    loss=LossParams(margin_weight=0.5, ortho_weight=1e-4, margin_target=0.5, margin_floor=0.05),
    optimizer=OptimizerParams(lr=0.01, weight_decay=0.0),
    batch_size=16,
    max_epochs=30,
    patience=5,
    standardize=True,
)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def blobs(n_per_pole: int, *, d_model: int = 8, spread: float = 1.0, seed: int = 0):
    """Three Gaussian clusters (fixed centres), one per pole: (3n, d_model) features, (3n,) labels.

    ``seed`` draws the noise, so different seeds give different rows of the same clusters.
    """
    centres = torch.randn(3, d_model, generator=torch.Generator().manual_seed(100)) * 2
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(n_per_pole)  # (3n,)
    x = centres[y] + spread * torch.randn(len(y), d_model, generator=generator)  # (3n, d_model)
    return x, y


def _fit(config=CONFIG, *, seed=0):
    x, y = blobs(20)
    val_x, val_y = blobs(10, seed=1)
    return training.fit(
        x,
        y,
        val_x,
        val_y,
        weights=torch.ones(len(y)),
        config=config,
        seed=seed,
        accelerator=Accelerator(cpu=True),
    )


def test_snapshot_is_a_deep_copy_that_later_updates_cannot_touch():
    lens = models.build_lens("tripole", d_model=4)
    deep = training.snapshot(lens)
    shallow = lens.state_dict().copy()  # HatCat's "best state": references to the live tensors
    with torch.no_grad():
        lens.poles.weight.add_(1.0)  # what optimizer.step() does, in place
    assert torch.equal(shallow["poles.weight"], lens.poles.weight)  # the shallow copy moved
    assert torch.equal(deep["poles.weight"] + 1.0, lens.poles.weight)  # the snapshot did not


def test_returned_weights_are_the_best_epochs_not_the_last():
    # Overlapping clusters and a large step size make validation macro-F1 wander, so the best
    # epoch is an early one and the last epoch's weights score lower.
    x, y = blobs(20, spread=3.0)
    val_x, val_y = blobs(10, spread=3.0, seed=1)
    config = dataclasses.replace(
        CONFIG, max_epochs=25, patience=25, optimizer=OptimizerParams(lr=0.3, weight_decay=0.0)
    )

    result = training.fit(
        x,
        y,
        val_x,
        val_y,
        weights=torch.ones(len(y)),
        config=config,
        seed=0,
        accelerator=Accelerator(cpu=True),
    )

    best = result.best["val/macro_f1"]
    assert result.epochs_run == 25 and result.best_epoch < 25
    assert result.history[-1]["val/macro_f1"] < best  # so a shallow copy would be caught
    assert best == max(r["val/macro_f1"] for r in result.history)
    rescored = training.validation_scores(result.lens, val_x, val_y)
    assert rescored == {k: v for k, v in result.best.items() if k.startswith("val/")}


def test_training_stops_after_patience_epochs_without_gain():
    result = _fit(dataclasses.replace(CONFIG, max_epochs=100, patience=3))
    assert result.epochs_run == result.best_epoch + 3 < 100
    scores = [r["val/macro_f1"] for r in result.history]
    assert all(s <= scores[result.best_epoch - 1] for s in scores[result.best_epoch :])


def test_same_seed_gives_identical_weights_and_history():
    first, second = _fit(seed=3), _fit(seed=3)
    other = _fit(seed=4)
    assert first.history == second.history
    for name, tensor in first.lens.state_dict().items():
        assert torch.equal(tensor, second.lens.state_dict()[name])
    assert not torch.equal(first.lens.poles.weight, other.lens.poles.weight)


@pytest.mark.parametrize("kind", ["tripole", "two_head", "mlp"])
def test_every_lens_kind_learns_separable_poles(kind):
    x, y = blobs(20, spread=0.3)
    val_x, val_y = blobs(10, spread=0.3, seed=1)
    config = dataclasses.replace(CONFIG, lens=LensParams(kind=kind, hidden=16, dropout=0.0))
    result = training.fit(
        x,
        y,
        val_x,
        val_y,
        weights=torch.ones(len(y)),
        config=config,
        seed=0,
        accelerator=Accelerator(cpu=True),
    )
    assert result.best["val/macro_f1"] == 1.0
    assert all(result.best[f"val/margin_{p}"] > 0 for p in ("negative", "neutral", "positive"))
    kinds = {"tripole": models.TripoleLens, "two_head": models.TwoHeadLens, "mlp": models.MLPLens}
    assert isinstance(result.lens, kinds[kind])


def test_history_logs_every_loss_component_and_validation_score_per_epoch():
    result = _fit(dataclasses.replace(CONFIG, max_epochs=3, patience=3))
    expected = {"epoch", "train/ce", "train/margin", "train/ortho", "train/total", "val/macro_f1"}
    for pole in ("negative", "neutral", "positive"):
        expected |= {f"val/f1_{pole}", f"val/margin_{pole}"}
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    for record in result.history:
        assert set(record) == expected
        parts = record["train/ce"] + record["train/margin"] + record["train/ortho"]
        assert record["train/total"] == pytest.approx(parts, rel=1e-5)


def test_standardisation_stats_are_the_train_rows_mean_and_std():
    x, _ = blobs(20)
    result = _fit()
    assert torch.allclose(result.lens.feature_mean, x.mean(dim=0))
    assert torch.allclose(result.lens.feature_std, x.std(dim=0))


def test_class_weights_shift_predictions_towards_the_up_weighted_pole():
    # Overlapping clusters: with neutral rows weighted 5x the lens predicts neutral more often.
    x, y = blobs(30, spread=3.0)
    val_x, val_y = blobs(30, spread=3.0, seed=1)
    config = dataclasses.replace(CONFIG, max_epochs=10, patience=10)
    neutral_heavy = torch.where(y == 1, 5.0, 1.0)

    def neutral_share(weights):
        result = training.fit(
            x,
            y,
            val_x,
            val_y,
            weights=weights,
            config=config,
            seed=0,
            accelerator=Accelerator(cpu=True),
        )
        return (models.pole_probabilities(result.lens, val_x).argmax(1) == 1).float().mean()

    assert neutral_share(neutral_heavy) > neutral_share(torch.ones(len(y)))


def test_process_shares_of_a_global_batch_add_up_to_its_mean_loss():
    x, y = blobs(3)  # 9 rows: shares of 3 processes are 3 / 3 / 3, of 4 processes 3 / 2 / 2 / 2
    lens = models.build_lens("tripole", d_model=x.shape[1])
    weights = torch.linspace(0.5, 1.5, len(y))
    whole = models.lens_loss(lens(x), y, lens.directions(), weights=weights, loss=CONFIG.loss)
    for world in (2, 3, 4, 10):  # 10 processes: one share is empty
        shares = [
            models.lens_loss(
                lens(x[take]),
                y[take],
                lens.directions(),
                weights=weights[take],
                loss=CONFIG.loss,
                n_rows=len(y),
            )
            for take in (
                runtime.rank_share(torch.arange(len(y)), rank=r, world_size=world)
                for r in range(world)
            )
        ]
        for name in ("ce", "margin"):
            total = sum(share[name] for share in shares)
            assert torch.allclose(total, whole[name], atol=1e-6), (world, name)


def test_a_pole_missing_from_validation_is_refused():
    x, y = blobs(5)
    with pytest.raises(ValueError, match=r"validation rows lack pole\(s\) \['positive'\]"):
        training.fit(x, y, x[y < 2], y[y < 2], weights=torch.ones(len(y)), config=CONFIG, seed=0)
