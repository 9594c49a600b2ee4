"""evaluate_adjudications stage: the saved classifier on validation and test -> metrics and plots.

Loads the weights ``finetune`` saved (missing, mismatched, or trained on other items: a hard
error, never an untrained model), scores each task untuned and with per-class logit offsets tuned
on validation, and adds cross-tables across tasks and plain-language diagnostics
(``adjudication.evaluation``). Writes the plots' tables first and the metrics last.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lensforge.adjudication import encoders, evaluation
from lensforge.core import artifacts, paths
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    items_path = paths.under(root, paths.ADJUDICATED_ITEMS)
    model, tokenizer, card = encoders.load_adjudicator(paths.under(root, paths.ADJUDICATOR_DIR))
    encoders.check_trained_on(card, items_path)
    table = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    report, confusion, calibration = evaluation.evaluate_adjudicator(
        model, tokenizer, table, card=card, config=params.evaluate_adjudications
    )

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
        ", ".join(f"{t} {report[t]['macro_f1']:.3f}" for t in confusion),
        ", ".join(f"{t} {report[t]['tuned']['macro_f1']:.3f}" for t in confusion),
    )
