"""finetune stage (``accelerate launch -m lensforge.cli finetune``): adjudicated items -> classifier.

Encoder from params, one head per task, the imbalance toolkit and task weighting of
``adjudication.multitask``, early stopping on validation macro-F1 (``adjudication.finetune_loop``;
any number of processes gives the result of one). Only the main process writes: the model folder
(config, tokenizer, safetensors, card), the per-epoch curves, and ``metrics/finetune.json`` last.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lensforge.adjudication import encoders, finetune_loop, tasks
from lensforge.core import artifacts, curves, paths, runtime
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    config = params.finetune
    tasks.check_finetune_params(config)
    accelerator = runtime.make_accelerator(
        mixed_precision=finetune_loop.PRECISION[config.mixed_precision]
    )
    items_path = paths.under(root, paths.ADJUDICATED_ITEMS)
    table = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    location = encoders.encoder_location(config.encoder.source, config.encoder.name_or_path)
    done = finetune_loop.finetune(table, location, config=config, accelerator=accelerator)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return

    card = encoders.adjudicator_card(
        config,
        task_classes=tasks.ADJUDICATION_TASKS,
        items_sha256=artifacts.file_sha256(items_path),
        summary=done.summary,
    )
    with artifacts.atomic_dir(paths.under(root, paths.ADJUDICATOR_DIR)) as out_dir:
        encoders.save_adjudicator(out_dir, done.classifier, done.tokenizer, card=card)
    curves.write_curves(done.history, paths.under(root, paths.FINETUNE_LIVE_DIR), step_key="epoch")
    artifacts.write_json(paths.under(root, paths.FINETUNE_METRICS), done.summary)
    summary = done.summary
    log.info(
        "finetuned on %d rows with %d process(es): best epoch %d of %d, validation macro-F1 %.3f",
        summary["n_train"],
        summary["n_processes"],
        summary["best_epoch"],
        summary["n_epochs"],
        summary["best"]["val/macro_f1"],
    )
