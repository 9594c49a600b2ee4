"""evaluate_adjudications stage: the saved classifier on validation and test -> metrics and plots.

Loads the weights ``finetune`` saved (missing, mismatched, or trained on other items: a hard
error, never an untrained model), scores each task untuned and with per-class logit offsets tuned
on validation, and adds cross-tables across tasks and plain-language diagnostics.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lensforge.adjudication import encoders, evaluation, finetune_loop
from lensforge.adjudication.tasks import ADJUDICATION_TASKS
from lensforge.core import artifacts, paths
from lensforge.core.errors import ArtifactError
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def _predict(model, tokenizer, rows: pd.DataFrame, *, max_length: int, batch_size: int):
    """(task -> logits (n, k) numpy, task -> label ids (n,)) for ``rows``."""
    ids = encoders.tokenize(tokenizer, rows["text"].tolist(), max_length=max_length)
    logits = encoders.predict_logits(
        model, ids, batch_size=batch_size, pad_id=tokenizer.pad_token_id
    )
    labels = {
        t: finetune_loop.label_ids(rows[t].tolist(), c) for t, c in ADJUDICATION_TASKS.items()
    }
    return {t: v.numpy() for t, v in logits.items()}, labels


def _loss_components(card: dict) -> dict[str, float]:
    """The last training epoch's weighted loss terms (what made up the optimised total)."""
    last = card["training"]["last"]
    kept = [k for k in last if k.endswith("/weighted")] + ["train/uncertainty_reg", "train/rdrop"]
    return {k.removeprefix("train/"): last[k] for k in kept if k.startswith("train/")}


def run(params: Params, *, root: Path) -> None:
    config = params.evaluate_adjudications
    items_path = paths.under(root, paths.ADJUDICATED_ITEMS)
    model, tokenizer, card = encoders.load_adjudicator(paths.under(root, paths.ADJUDICATOR_DIR))
    if card["trained_on_sha256"] != artifacts.file_sha256(items_path):
        raise ArtifactError(
            "the model was trained on other adjudicated items: rerun finetune",
            path=items_path,
            rule="trained on these items",
        )
    table = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    kwargs = {"max_length": card["max_length"], "batch_size": config.batch_size}
    validation = _predict(model, tokenizer, table[table["split"] == "validation"], **kwargs)
    test = _predict(model, tokenizer, table[table["split"] == "test"], **kwargs)

    offsets = config.offsets
    report, confusion, calibration = evaluation.evaluate_all(
        validation,
        test,
        _loss_components(card),
        task_classes=ADJUDICATION_TASKS,
        n_bins=config.ece_bins,
        grid=evaluation.offset_grid(
            grid_min=offsets.grid_min, grid_max=offsets.grid_max, grid_step=offsets.grid_step
        ),
        n_rounds=offsets.n_rounds,
        catastrophic_f1=config.catastrophic_f1,
        dominant_loss_fraction=config.dominant_loss_fraction,
        collapse_separation=config.collapse_separation,
    )
    report["weights_sha256"] = card["weights_sha256"]

    for task, pairs in confusion.items():
        frame = pd.DataFrame(pairs, columns=["actual", "predicted"])
        artifacts.write_csv(paths.under(root, paths.EVALUATE_ADJUDICATIONS_CONFUSION[task]), frame)
    artifacts.write_csv(
        paths.under(root, paths.EVALUATE_ADJUDICATIONS_CALIBRATION), pd.DataFrame(calibration)
    )
    artifacts.write_json(paths.under(root, paths.EVALUATE_ADJUDICATIONS_METRICS), report)
    for message in report["diagnostics"]:
        log.warning("%s", message)
    log.info(
        "test macro-F1 %s; with offsets tuned on validation %s",
        ", ".join(f"{t} {report[t]['macro_f1']:.3f}" for t in ADJUDICATION_TASKS),
        ", ".join(f"{t} {report[t]['tuned']['macro_f1']:.3f}" for t in ADJUDICATION_TASKS),
    )
