"""adjudicate stage: imported ratings -> one label per task and item, split, agreement, skills.

Validates the imported inputs against the tasks of params first (Great Expectations; a failure
writes the report to ``metrics/adjudicate.json`` and stops with file, row and rule), adjudicates
every declared task with ``adjudicate.method`` (``adjudication.labels``), reports Krippendorff's
alpha per task and domain, the raters' estimated skills and how many labels differ from the
mean-threshold rule, and splits items grouped by source document (and shared text), stratified
on the joint label. A normalised text in two splits is an error; ``cross_split_identical_texts``
(0) records the check. Writes the table and, beside it, the tasks and their classes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.adjudication import labels, sources, tasks
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
    labels.check_method(config.method, config.tasks)
    classes = tasks.task_classes(config.tasks)
    metrics_path = paths.under(root, paths.ADJUDICATE_METRICS)
    items_path = paths.under(root, paths.ADJUDICATIONS_ITEMS)
    ratings_path = paths.under(root, paths.ADJUDICATIONS_RATINGS)
    for needed in (items_path, ratings_path):
        if not needed.is_file():
            raise ArtifactError(
                "imported adjudications missing: run import_adjudications",
                path=needed,
                rule="exists",
            )
    items, ratings, schema = sources.read_user_csv(items_path, ratings_path)
    report = Report(failures=tuple(schema), counts={})
    if not schema:
        report = adjudication_validation.validate_raw(
            items,
            ratings,
            tasks=config.tasks,
            items_file=str(items_path),
            ratings_file=str(ratings_path),
            min_chars=params.import_adjudications.min_chars,
            max_chars=params.import_adjudications.max_chars,
            min_raters=config.min_raters,
        )
    if not report.success:
        _fail(report, metrics_path)

    table, removed, skills = labels.adjudicate_items(
        items,
        ratings,
        declared=config.tasks,
        method=config.method,
        n_iter=config.n_iter,
        min_agreement=config.min_agreement,
        min_confidence=config.min_confidence,
    )
    minimums = adjudication_validation.check_class_minimums(
        table, classes=classes, file=str(items_path), min_per_class=config.min_per_class
    )
    if minimums:
        _fail(Report(failures=tuple(minimums), counts=report.counts), metrics_path)
    table["split_group"] = labels.link_groups(table)
    split = config.split
    table["split"] = labels.split_items(
        table,
        (split.train, split.validation, split.test),
        task_names=list(classes),
        seed=config.seed,
    )

    out_path = paths.under(root, paths.ADJUDICATED_ITEMS)
    labels.check_disjoint_texts(table, file=str(out_path))
    with artifacts.atomic_dir(out_path.parent) as out_dir:
        table[labels.adjudicated_columns(config.tasks)].to_csv(out_dir / out_path.name, index=False)
        tasks.write_task_classes(out_dir / paths.ADJUDICATED_TASKS.name, classes)
    rated = {n: t for n, t in config.tasks.items() if t.label_source != "mapping"}
    metrics = {
        "validation": report.to_dict(),
        "method": config.method,
        "removed": removed,
        "n_items": int(len(table)),
        "n_split_groups": int(table["split_group"].nunique()),
        "cross_split_identical_texts": len(labels.cross_split_texts(table)),
        "mean_agreement": {n: float(table[f"{n}_agreement"].mean()) for n in rated},
        "mean_confidence": {n: float(table[f"{n}_confidence"].mean()) for n in rated},
        "alpha": {
            n: labels.alpha_by_domain(ratings[ratings["task"] == n], items, t)
            for n, t in rated.items()
        },
        "rater_skills": skills,
        "changed_from_mean_threshold": labels.changed_labels(
            items, ratings, table, declared=config.tasks
        ),
        "classes": labels.class_counts(table, classes),
        "splits": labels.split_summary(table, classes),
    }
    artifacts.write_json(metrics_path, metrics)
    log.info(
        "adjudicated %d items with %s (%s); nominal alpha %s",
        len(table),
        config.method,
        "; ".join(f"{t} {c}" for t, c in metrics["classes"].items()),
        ", ".join(f"{t} {a['all']['nominal_alpha']:.3f}" for t, a in metrics["alpha"].items()),
    )
