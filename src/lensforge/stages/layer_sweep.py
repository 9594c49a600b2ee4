"""layer_sweep stage: the simplex lens trained on every cached layer -> F1 by layer and simplex.

Reads the balanced rows, the activation index (labelled by ``prompts.overlap``) and every layer
of the cache; writes ``metrics/layer_sweep.csv`` (the table), ``metrics/layer_sweep/<simplex>.csv``
(DVC plots, ``x: layer``) and
``metrics/layer_sweep.json`` (the best layer per simplex, chosen on validation). One seed (the
first of ``train.seeds``), the ``train`` params and the default balancing: a scan, not the
lenses the pipeline ships (those are the ``train`` stage's, at ``train.layer``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from lensforge.activations import cache
from lensforge.core import artifacts, paths, runtime
from lensforge.core.params import Params
from lensforge.lenses import balancing, overlap, sweep

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    act_dir = paths.under(root, paths.ACTIVATIONS_DIR)
    rows = balancing.read_rows(paths.under(root, paths.BALANCED_ROWS))
    index = overlap.labelled_rows(
        cache.read_index(act_dir),
        mode=params.prompts.overlap,
        primary=params.prompts.overlap_primary,
    )
    layers = cache.read_manifest(act_dir)["layers"]
    accelerator = runtime.make_accelerator()
    with tqdm(total=len(layers), desc="layer sweep", unit="layer") as bar:
        table = sweep.sweep(
            act_dir, rows, index, layers=layers, config=params.train,
            accelerator=accelerator, on_layer=lambda _: bar.update(1),
        )  # fmt: skip
    summary = sweep.best_layers(table)
    artifacts.write_csv(paths.under(root, paths.LAYER_SWEEP_PLOT), table)
    with artifacts.atomic_dir(paths.under(root, paths.LAYER_SWEEP_PLOTS_DIR)) as plots_dir:
        for simplex, part in table.groupby("simplex", sort=True):
            part.drop(columns="simplex").to_csv(
                plots_dir / f"{paths.simplex_slug(simplex)}.csv", index=False
            )
    artifacts.write_json(paths.under(root, paths.LAYER_SWEEP_METRICS), summary)
    for simplex in sorted(table["simplex"].unique()):
        log.info(
            "layer sweep %s: best layer %d (validation macro-F1 %.3f, test %.3f)",
            simplex,
            summary[f"{simplex}/best_layer"],
            summary[f"{simplex}/best_val_macro_f1"],
            summary[f"{simplex}/best_layer_test_macro_f1"],
        )
