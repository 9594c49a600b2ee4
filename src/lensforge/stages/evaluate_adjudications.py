"""evaluate_adjudications stage: every seed's saved classifier on validation and test -> metrics.

Loads each model ``finetune`` saved under ``models/adjudicator/seed_<seed>`` (missing,
mismatched, or trained on other items: a hard error, never an untrained model), scores each task
untuned and with per-class logit offsets tuned on validation, per domain, with cross-tables and
plain-language diagnostics (``adjudication.evaluation``); then the mean and sample standard
deviation over seeds, and the baselines (TF-IDF + logistic regression, majority class,
domain-only) fitted and scored on the same train and test rows. Writes the plots' tables first
and the metrics last.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lensforge.adjudication import encoders, evaluation, tasks
from lensforge.core import artifacts, paths
from lensforge.core.errors import ArtifactError
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def _seed_dirs(root: Path) -> list[Path]:
    models_dir = paths.under(root, paths.ADJUDICATOR_DIR)
    found = sorted(models_dir.glob("seed_*"), key=lambda p: int(p.name.removeprefix("seed_")))
    if not found:
        raise ArtifactError(
            "trained weights not found: run the finetune stage first (refusing to score an "
            "untrained model)",
            path=models_dir,
            rule="trained weights exist",
        )
    return found


def run(params: Params, *, root: Path) -> None:
    config = params.evaluate_adjudications
    items_path = paths.under(root, paths.ADJUDICATED_ITEMS)
    classes = tasks.read_task_classes(paths.under(root, paths.ADJUDICATED_TASKS))
    table = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    runs, calibration_rows = {}, []
    confusion_rows: dict[str, list[dict]] = {task: [] for task in classes}
    for seed_dir in _seed_dirs(root):
        model, tokenizer, card = encoders.load_adjudicator(seed_dir)
        encoders.check_trained_on(card, items_path)
        encoders.check_task_classes(card, classes, model_dir=seed_dir)
        report, confusion, calibration = evaluation.evaluate_adjudicator(
            model, tokenizer, table, card=card, config=config
        )
        runs[seed_dir.name] = report
        for task, pairs in confusion.items():
            confusion_rows[task] += [
                {"seed": seed_dir.name, "actual": a, "predicted": p} for a, p in pairs
            ]
        calibration_rows += [{"seed": seed_dir.name, **row} for row in calibration]

    summary = evaluation.summarize_seeds(
        runs, task_classes=classes, catastrophic_f1=config.catastrophic_f1
    )
    compared, messages = evaluation.compare_baselines(
        table, summary, task_classes=classes, config=config
    )
    for task in classes:
        summary[task]["baselines"] = compared[task]
    diagnostics = messages + [f"{seed}: {m}" for seed, r in runs.items() for m in r["diagnostics"]]
    report = {
        "seeds": list(runs),
        "macro_f1": sum(summary[t]["macro_f1"] for t in classes) / len(classes),
        **summary,
        "diagnostics": diagnostics,
        "runs": runs,
    }
    with artifacts.atomic_dir(paths.under(root, paths.EVALUATE_ADJUDICATIONS_CONFUSION_DIR)) as out:
        for task, rows in confusion_rows.items():
            pd.DataFrame(rows).to_csv(
                out / paths.adjudication_confusion_path(root, task).name, index=False
            )
    artifacts.write_csv(
        paths.under(root, paths.EVALUATE_ADJUDICATIONS_CALIBRATION), pd.DataFrame(calibration_rows)
    )
    artifacts.write_json(paths.under(root, paths.EVALUATE_ADJUDICATIONS_METRICS), report)
    for message in diagnostics:
        log.warning("%s", message)
    log.info(
        "test macro-F1 over %d seed(s): %s; TF-IDF %s",
        len(runs),
        ", ".join(
            f"{t} {summary[t]['macro_f1']:.3f} (sample std {summary[t]['macro_f1_std']})"
            for t in classes
        ),
        ", ".join(f"{t} {compared[t]['tfidf_logreg']['macro_f1']:.3f}" for t in classes),
    )
