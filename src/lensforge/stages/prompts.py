"""prompts stage: HatCat synsets + experiential prompts -> ranked prompt pool with grouped splits.

``metrics/prompts.json`` holds counts per simplex / split / pole and the two leakage counts,
``cross_split_shared_lemmas`` and ``cross_split_identical_texts`` (0 unless the pool leaks; see
``prompts.leakage_counts``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.core import artifacts, paths
from lensforge.core.params import Params
from lensforge.lenses import hatcat, prompts

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    simplexes = params.data.simplexes
    synsets = hatcat.synset_table(
        hatcat.load_synsets(paths.under(root, paths.SYNSETS[params.data.synsets])), simplexes
    )
    experiential = hatcat.load_experiential(paths.under(root, paths.EXPERIENTIAL_PROMPTS))
    experiential = experiential[experiential["simplex"].isin(simplexes)]

    pool = prompts.build_pool(synsets, experiential, params.prompts)

    with artifacts.atomic_dir(paths.under(root, paths.PROMPTS_DIR)) as out_dir:
        pool.to_csv(out_dir / paths.PROMPT_POOL.name, index=False)
    summary = prompts.pool_summary(pool, synsets)
    summary["pool_sha256"] = artifacts.file_sha256(paths.under(root, paths.PROMPT_POOL))
    artifacts.write_json(paths.under(root, paths.PROMPTS_METRICS), summary)
    log.info(
        "prompt pool: %d prompts for %d simplexes (%s); %d lemmas and %d texts shared by splits",
        len(pool),
        len(simplexes),
        ", ".join(f"{s}={int((pool['simplex'] == s).sum())}" for s in simplexes),
        summary["cross_split_shared_lemmas"],
        summary["cross_split_identical_texts"],
    )
