"""finetune stage (``accelerate launch -m lensforge.cli finetune``): adjudicated items -> classifier.

Encoder from params, one head per task, the imbalance toolkit and task weighting of
``finetuning``; early stopping on validation macro-F1. Only the main process writes: the model
folder (config, tokenizer, safetensors, card), ``metrics/finetune.json`` and dvclive curves.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd
import torch
from accelerate.utils import set_seed

from lensforge.adjudication import encoders, finetune_loop
from lensforge.adjudication.tasks import ADJUDICATION_TASKS
from lensforge.core import artifacts, paths, runtime
from lensforge.core.params import Params

log = logging.getLogger(__name__)

PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def _split(table: pd.DataFrame, name: str, tokenizer, max_length: int):
    rows = table[table["split"] == name]
    labels = {task: rows[task].tolist() for task in ADJUDICATION_TASKS}
    return finetune_loop.encode_split(
        rows["text"].tolist(), labels, tokenizer, max_length=max_length
    )


def _live(root: Path, enabled: bool):
    if not enabled:
        return None
    from dvclive import Live

    return Live(
        dir=str(paths.under(root, paths.FINETUNE_LIVE_DIR)),
        dvcyaml=False,
        save_dvc_exp=False,
        report=None,
    )


def _card(config, *, location: str, items_path: Path, summary: dict) -> dict:
    """What evaluation needs to rebuild the model from the artifact alone, and its provenance."""
    return {
        "task_classes": {t: list(c) for t, c in ADJUDICATION_TASKS.items()},
        "pooling": config.encoder.pooling,
        "head": dataclasses.asdict(config.head),
        "max_length": config.encoder.max_length,
        "encoder": {"source": config.encoder.source, "location": location},
        "trained_on_sha256": artifacts.file_sha256(items_path),
        "finetune_params": dataclasses.asdict(config),
        "training": summary,
    }


def run(params: Params, *, root: Path) -> None:
    config = params.finetune
    accelerator = runtime.make_accelerator(
        gradient_accumulation_steps=config.grad_accumulation,
        mixed_precision=PRECISION[config.mixed_precision],
    )
    set_seed(config.seed)
    items_path = paths.under(root, paths.ADJUDICATED_ITEMS)
    table = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    location = encoders.encoder_location(config.encoder.source, config.encoder.name_or_path)
    encoder, tokenizer = encoders.load_pretrained(location)
    train_split = _split(table, "train", tokenizer, config.encoder.max_length)
    val_split = _split(table, "validation", tokenizer, config.encoder.max_length)

    torch.manual_seed(config.seed)  # the heads' initialisation
    classifier = encoders.MultiTaskClassifier(
        encoder,
        task_classes=ADJUDICATION_TASKS,
        pooling=config.encoder.pooling,
        **dataclasses.asdict(config.head),
    )
    objective = finetune_loop.build_objective(config, train_split.labels)
    live = _live(root, accelerator.is_main_process)

    def on_epoch(epoch: int, record: dict) -> None:
        if live is not None:
            for name, value in record.items():
                live.log_metric(name, value)
            live.next_step()

    result = finetune_loop.train(
        classifier,
        objective,
        train_split,
        val_split,
        config=config,
        accelerator=accelerator,
        pad_id=tokenizer.pad_token_id,
        weights=finetune_loop.sample_weights(config, train_split.labels),
        on_epoch=on_epoch,
    )
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    if live is not None:
        live.end()
    classifier.load_state_dict(result.best_state)
    summary = {
        "best_epoch": result.best_epoch,
        "n_epochs": len(result.history),
        "n_processes": accelerator.num_processes,
        "n_train": len(train_split),
        "class_weights": {t: objective.configs[t]["class_weights"] for t in ADJUDICATION_TASKS},
        "best": result.history[result.best_epoch - 1],
        "last": result.history[-1],
    }
    card = _card(config, location=location, items_path=items_path, summary=summary)
    with artifacts.atomic_dir(paths.under(root, paths.ADJUDICATOR_DIR)) as out_dir:
        encoders.save_adjudicator(out_dir, classifier, tokenizer, card=card)
    artifacts.write_json(paths.under(root, paths.FINETUNE_METRICS), summary)
    log.info(
        "finetuned on %d rows with %d process(es): best epoch %d of %d, validation macro-F1 %.3f",
        len(train_split),
        accelerator.num_processes,
        result.best_epoch,
        len(result.history),
        result.best_score,
    )
