"""The layer sweep: one simplex lens per cached layer, scored on validation and test.

The first question a lens team asks about a new model is which layer reads a simplex best. Every
layer of the activation cache gets the same lens (the ``train`` params, its first seed, the
balanced rows of the ``balance`` stage), trained and early-stopped on validation exactly as the
train stage does; the best layer of a simplex is the one with the highest VALIDATION macro-F1
(ties: the shallower layer, which is cheaper to reach). Test scores are reported beside it for
the record and never choose anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from accelerate import Accelerator

from lensforge.activations import cache
from lensforge.core.params import TrainParams
from lensforge.lenses import training

COLUMNS = [
    "layer",
    "simplex",
    "seed",
    "val_macro_f1",
    "test_macro_f1",
    "val_neutral_f1",
    "test_neutral_f1",
    "best_epoch",
]


def _scores(lens, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Macro-F1 and neutral F1 of ``lens`` on features ``x`` (n, d_model) and labels ``y``, as
    the trainer scores its validation rows (``training.validation_scores``)."""
    scores = training.validation_scores(lens, x, y)
    return scores["val/macro_f1"], scores["val/f1_neutral"]


def sweep(
    act_dir: Path,
    rows: pd.DataFrame,
    index: pd.DataFrame,
    *,
    layers: Sequence[int],
    config: TrainParams,
    accelerator: Accelerator,
    on_layer=None,
) -> pd.DataFrame:
    """One row per (layer, simplex): validation and test macro-F1 and neutral F1 of a lens
    trained at that layer with ``config``'s first seed (``COLUMNS``). ``index`` is the activation
    index as ``overlap.labelled_rows`` returns it; ``rows`` the balanced train rows."""
    seed = config.seeds[0]
    records = []
    with training.single_thread():
        for layer in layers:
            layer_config = dataclasses.replace(config, layer=layer, seeds=(seed,))
            for simplex in pd.unique(rows["simplex"]):
                inputs = training.fit_inputs(act_dir, rows, index, simplex, layer=layer)
                result = training.fit(
                    **inputs, config=layer_config, seed=seed, accelerator=accelerator
                )
                test = index[(index["simplex"] == simplex) & (index["split"] == "test")]
                test_x = cache.read_vectors(act_dir, test, layer=layer)  # (n_test, d_model)
                test_y = torch.as_tensor(test["label"].to_numpy(copy=True))
                val_macro, val_neutral = _scores(result.lens, inputs["val_x"], inputs["val_y"])
                test_macro, test_neutral = _scores(result.lens, test_x, test_y)
                records.append(
                    (layer, simplex, seed, val_macro, test_macro, val_neutral, test_neutral,
                     result.best_epoch)
                )  # fmt: skip
            if on_layer is not None:
                on_layer(layer)
    return pd.DataFrame(records, columns=COLUMNS)


def best_layers(table: pd.DataFrame) -> dict[str, object]:
    """Per simplex the layer of the highest validation macro-F1 (ties: the shallower), with its
    validation and test macro-F1, as flat keys for ``metrics/layer_sweep.json``."""
    out: dict[str, object] = {"layers": sorted(int(x) for x in table["layer"].unique())}
    for simplex, part in table.groupby("simplex", sort=True):
        best = part.sort_values(["val_macro_f1", "layer"], ascending=[False, True]).iloc[0]
        out[f"{simplex}/best_layer"] = int(best["layer"])
        out[f"{simplex}/best_val_macro_f1"] = float(best["val_macro_f1"])
        out[f"{simplex}/best_layer_test_macro_f1"] = float(best["test_macro_f1"])
    return out
