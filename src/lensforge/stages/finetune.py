"""finetune stage (``accelerate launch -m lensforge.cli finetune``): adjudicated items -> classifiers.

One model per seed of ``finetune.seeds`` (head init, dropout, batch order): encoder from params,
one head per task of ``data/adjudicated/tasks.json``, the imbalance toolkit and task weighting of
``adjudication.multitask``, early stopping on validation macro-F1 (``adjudication.finetune_loop``;
any number of processes gives the result of one). Only the main process writes: per seed a model
folder (config, tokenizer, safetensors, card) under ``models/adjudicator/seed_<seed>`` and its
per-epoch curves under ``metrics/finetune/seed_<seed>``, then ``metrics/finetune.json`` last
(per seed, and the mean and sample standard deviation of validation macro-F1 over seeds).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import pandas as pd

from lensforge.adjudication import encoders, finetune_loop, tasks
from lensforge.core import artifacts, curves, metrics, paths, runtime
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def _spread(values: list[float]) -> dict[str, object]:
    """Mean and sample standard deviation (``None`` for one seed) over seeds."""
    mean, std = metrics.mean_std(values)
    return {"mean": mean, "std": std, "n": len(values)}


def run(params: Params, *, root: Path) -> None:
    config = params.finetune
    classes = tasks.read_task_classes(paths.under(root, paths.ADJUDICATED_TASKS))
    tasks.check_finetune_params(config, classes)
    location = encoders.encoder_location(
        config.encoder.source, config.encoder.name_or_path, root=root
    )
    accelerator = runtime.make_accelerator(
        mixed_precision=finetune_loop.PRECISION[config.mixed_precision]
    )
    items_path = paths.under(root, paths.ADJUDICATED_ITEMS)
    table = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    items_sha256 = artifacts.file_sha256(items_path)
    main = accelerator.is_main_process
    runs = {}
    with contextlib.ExitStack() as stack:
        if main:
            models_dir = stack.enter_context(
                artifacts.atomic_dir(paths.under(root, paths.ADJUDICATOR_DIR))
            )
            curves_dir = stack.enter_context(
                artifacts.atomic_dir(paths.under(root, paths.FINETUNE_LIVE_DIR))
            )
        for seed in config.seeds:
            started = time.perf_counter()
            done = finetune_loop.finetune(
                table, location, config=config, classes=classes, seed=seed, accelerator=accelerator
            )
            # Wall-clock time goes to the metrics only: the model folder must not depend on it.
            summary = {**done.summary, "train_seconds": time.perf_counter() - started}
            runs[f"seed_{seed}"] = summary
            if main:
                card = encoders.adjudicator_card(
                    config, task_classes=classes, items_sha256=items_sha256, summary=done.summary
                )
                folder = paths.adjudicator_dir(root, seed).name
                encoders.save_adjudicator(
                    models_dir / folder, done.classifier, done.tokenizer, card=card
                )
                curves.write_curve_files(done.history, curves_dir / folder, step_key="epoch")
            log.info(
                "seed %d: best epoch %d of %d, validation macro-F1 %.3f (%.0f s, %d process(es))",
                seed,
                summary["best_epoch"],
                summary["n_epochs"],
                summary["best"]["val/macro_f1"],
                summary["train_seconds"],
                summary["n_processes"],
            )
        accelerator.wait_for_everyone()
    if not main:
        return
    best = [r["best"]["val/macro_f1"] for r in runs.values()]
    seconds = [r["train_seconds"] for r in runs.values()]
    summary = {
        "seeds": list(config.seeds),
        "val_macro_f1": _spread(best),
        "train_seconds": _spread(seconds),
        "runs": runs,
    }
    artifacts.write_json(paths.under(root, paths.FINETUNE_METRICS), summary)
    log.info(
        "finetuned %d seed(s): validation macro-F1 mean %.3f, sample std %s",
        len(best),
        summary["val_macro_f1"]["mean"],
        summary["val_macro_f1"]["std"],
    )
