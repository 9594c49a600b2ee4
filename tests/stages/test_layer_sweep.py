"""The layer sweep and the layer params on a hand-made cache with a learnable layer and a noise layer."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from lensforge.core import paths
from lensforge.core.errors import ParamsError
from lensforge.lenses.sweep import COLUMNS
from lensforge.stages import balance, layer_sweep, train
from tests.helpers.lens_data import LAYER, project_params, write_tiny_cache

NOISE = 2
SIMPLEXES = ("taste_development", "social_evaluation")


def _params(project_root, **train_changes):
    params = project_params(project_root, strategy="median_target")
    fast = dataclasses.replace(
        params.train,
        seeds=(0, 1),
        max_epochs=40,
        patience=40,
        optimizer=dataclasses.replace(params.train.optimizer, lr=0.05),
        **train_changes,
    )
    return dataclasses.replace(params, train=fast)


@pytest.fixture
def balanced(tmp_path, project_root):
    write_tiny_cache(
        tmp_path / paths.ACTIVATIONS_DIR, simplexes=SIMPLEXES, d_model=8, noise_layers=(NOISE,)
    )
    balance.run(_params(project_root), root=tmp_path)
    return tmp_path


def test_the_sweep_scores_every_cached_layer_and_picks_the_learnable_one_on_validation(
    balanced, project_root
):
    layer_sweep.run(_params(project_root), root=balanced)

    table = pd.read_csv(balanced / paths.LAYER_SWEEP_PLOT)
    assert list(table.columns) == COLUMNS
    assert sorted(zip(table["layer"], table["simplex"], strict=True)) == sorted(
        (layer, simplex) for layer in (NOISE, LAYER) for simplex in SIMPLEXES
    )
    assert set(table["seed"]) == {0}  # one seed: the first of train.seeds
    signal = table[table["layer"] == LAYER]
    noise = table[table["layer"] == NOISE]
    assert (signal["val_macro_f1"] > 0.9).all() and (noise["val_macro_f1"] < 0.7).all()
    summary = json.loads((balanced / paths.LAYER_SWEEP_METRICS).read_text())
    assert summary["layers"] == [NOISE, LAYER]
    for simplex in SIMPLEXES:
        assert summary[f"{simplex}/best_layer"] == LAYER
        plot = pd.read_csv(balanced / paths.LAYER_SWEEP_PLOTS_DIR / f"{simplex}.csv")
        assert plot["layer"].tolist() == [NOISE, LAYER]


def test_train_refuses_a_layer_the_cache_does_not_hold(balanced, project_root):
    with pytest.raises(ParamsError, match=r"train.layer is 9.*holds layers \[2, 6\]"):
        train.run(_params(project_root, layer=9), root=balanced)
    assert not (balanced / paths.LENSES_DIR).exists()


def test_train_at_another_cached_layer_records_it_in_the_card(balanced, project_root):
    train.run(_params(project_root, layer=NOISE), root=balanced)
    card = json.loads((paths.lens_dir(balanced, SIMPLEXES[0], 0) / "card.json").read_text())
    assert card["layer"] == NOISE and card["pooling"] == "last"
