"""train stage: balanced rows + cached activations -> one lens per simplex and seed, with curves.

Runs under ``accelerate launch -m lensforge.cli train`` (one process on a laptop, N on GPUs):
every process fits every lens on its share of each global batch (``training.fit``); only the main
process writes, after ``wait_for_everyone``. Outputs: ``models/lenses/<simplex>/seed_<seed>/``
(weights + card), curves under ``metrics/train/<simplex>/seed_<seed>/`` and, last, a summary in
``metrics/train.json``. Validation rows drive early stopping; test rows are never read here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.activations import cache
from lensforge.core import artifacts, curves, paths, runtime
from lensforge.core.params import Params
from lensforge.lenses import balancing, models, overlap, training

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    accelerator = runtime.make_accelerator()
    act_dir = paths.under(root, paths.ACTIVATIONS_DIR)
    rows_path = paths.under(root, paths.BALANCED_ROWS)
    rows = balancing.read_rows(rows_path)
    index = overlap.labelled_rows(
        cache.read_index(act_dir),
        mode=params.prompts.overlap,
        primary=params.prompts.overlap_primary,
    )
    balance = artifacts.read_json(
        paths.under(root, paths.BALANCE_METRICS), what="balance metrics (run the balance stage)"
    )
    manifest = cache.read_manifest(act_dir)
    cache.check_layer(manifest, params.train.layer, key="train.layer")
    provenance = {
        "layer": params.train.layer,
        "pooling": manifest["pooling"],
        "cache_key": manifest["cache_key"],
        "model_card_sha256": manifest["model_card_sha256"],
        "balance_strategy": balance["strategy"],
        "balanced_rows_sha256": artifacts.file_sha256(rows_path),
        "activation_manifest_sha256": artifacts.file_sha256(
            act_dir / paths.ACTIVATION_MANIFEST_NAME
        ),
    }

    results, seconds = training.fit_all(
        act_dir, rows, index, config=params.train, accelerator=accelerator
    )

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        lenses_root = paths.under(root, paths.LENSES_DIR)
        live_root = paths.under(root, paths.TRAIN_LIVE_DIR)
        with artifacts.atomic_dir(lenses_root) as lens_tmp:
            for (simplex, seed), result in results.items():
                card = {**training.lens_card(result, simplex, seed, params.train), **provenance}
                lens_dir = paths.lens_dir(root, simplex, seed).relative_to(lenses_root)
                models.save_lens(result.lens, lens_tmp / lens_dir, card=card)
        with artifacts.atomic_dir(live_root) as live_tmp:
            for (simplex, seed), result in results.items():
                live_dir = paths.train_live_dir(root, simplex, seed).relative_to(live_root)
                curves.write_curve_files(result.history, live_tmp / live_dir, step_key="epoch")
        summary = {**training.summarize(results, seconds), "n_processes": accelerator.num_processes}
        artifacts.write_json(paths.under(root, paths.TRAIN_METRICS), summary)
        log.info("trained %d lenses with %d process(es)", len(results), accelerator.num_processes)
    accelerator.wait_for_everyone()
