"""adjudicate stage: raw ratings + source labels -> one label per task and item, split, agreement.

Validates the raw inputs first (Great Expectations; a failure writes the report to
``metrics/adjudicate.json`` and stops with file, row and rule), adjudicates sentiment from every
rater's score, maps source labels to polarization, reports Krippendorff's alpha per domain, and
splits items grouped by source document (and shared text), stratified on the joint label. A
normalised text in two splits is an error; ``cross_split_identical_texts`` (0) records the check.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lensforge.adjudication import labels
from lensforge.adjudication import validation as adjudication_validation
from lensforge.core import artifacts, paths
from lensforge.core.checks import Report
from lensforge.core.errors import ArtifactError, DataError
from lensforge.core.params import Params

log = logging.getLogger(__name__)

N_FAILURES_SHOWN = 5  # failures quoted in the error message; the report holds them all


def _fail(report: Report, metrics_path: Path) -> None:
    artifacts.write_json(metrics_path, {"validation": report.to_dict()})
    raise DataError(f"{report.summary(n_shown=N_FAILURES_SHOWN)}\nfull report: {metrics_path}")


def run(params: Params, *, root: Path) -> None:
    config = params.adjudicate
    metrics_path = paths.under(root, paths.ADJUDICATE_METRICS)
    items_path = paths.under(root, paths.ADJUDICATIONS_ITEMS)
    ratings_path = paths.under(root, paths.ADJUDICATIONS_RATINGS)
    for needed in (items_path, ratings_path):
        if not needed.is_file():
            raise ArtifactError(
                "raw adjudications missing: run import_adjudications", path=needed, rule="exists"
            )
    items = pd.read_csv(items_path, dtype=str, keep_default_na=False)
    ratings = pd.read_csv(ratings_path, dtype={"item_id": str})

    report = adjudication_validation.validate_raw(
        items,
        ratings,
        items_file=str(items_path),
        ratings_file=str(ratings_path),
        min_chars=params.import_adjudications.min_chars,
        max_chars=params.import_adjudications.max_chars,
        min_raters=config.min_raters,
    )
    if not report.success:
        _fail(report, metrics_path)

    table, removed = labels.adjudicate_items(
        items,
        ratings,
        method=config.method,
        threshold=config.threshold,
        min_agreement=config.min_agreement,
    )
    minimums = adjudication_validation.check_class_minimums(
        table, file=str(items_path), min_per_class=config.min_per_class
    )
    if minimums:
        _fail(Report(failures=tuple(minimums), counts=report.counts), metrics_path)
    table["split_group"] = labels.link_groups(table)
    split = config.split
    table["split"] = labels.split_items(
        table, (split.train, split.validation, split.test), seed=config.seed
    )

    out_path = paths.under(root, paths.ADJUDICATED_ITEMS)
    labels.check_disjoint_texts(table, file=str(out_path))
    with artifacts.atomic_dir(out_path.parent) as out_dir:
        table[labels.ADJUDICATED_COLUMNS].to_csv(out_dir / out_path.name, index=False)
    alphas = labels.alpha_by_domain(ratings, items, threshold=config.threshold)
    rated = table[table["n_raters"].notna()]
    metrics = {
        "validation": report.to_dict(),
        **removed,
        "n_items": int(len(table)),
        "n_split_groups": int(table["split_group"].nunique()),
        "cross_split_identical_texts": len(labels.cross_split_texts(table)),
        "mean_sentiment_agreement": float(rated["sentiment_agreement"].mean()),
        "alpha": alphas,
        "classes": labels.class_counts(table),
        "splits": labels.split_summary(table),
    }
    artifacts.write_json(metrics_path, metrics)
    log.info(
        "adjudicated %d items (%s); alpha interval %s",
        len(table),
        "; ".join(f"{t} {c}" for t, c in metrics["classes"].items()),
        ", ".join(f"{d} {a['interval_alpha']:.3f}" for d, a in alphas.items()),
    )
