"""concept_prompts stage: the validated concept pack -> prompt pool, negatives and concept table.

``data/concept_prompts/``: ``pool.csv`` (one row per prompt, split assigned; one cached vector
serves every lens), ``negatives.csv`` (per concept and split: sibling hard negatives and random
others), ``concepts.csv`` (term, pack layer, parents, synsets of the selected concepts).
``metrics/concept_prompts.json``: counts per split and kind and the cross-split leakage counts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.concepts import pack, prompts
from lensforge.core import artifacts, paths
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    config = params.concept_prompts
    concepts = pack.read_pack(paths.under(root, paths.CONCEPT_PACK)).concepts
    fractions = (config.split.train, config.split.validation, config.split.test)
    pool = prompts.build_prompt_table(
        concepts,
        pack_layers=config.pack_layers,
        n_prompts=config.per_concept,
        behavioral_ratio=config.behavioral_ratio,
        fractions=fractions,
        seed=config.seed,
        unit=config.unit,
        file=str(paths.CONCEPT_PROMPT_POOL),
    )
    chosen = prompts.select_concepts(concepts, pack_layers=config.pack_layers)
    negatives = prompts.concept_negatives(
        pool,
        concepts,
        targets=chosen["term"],
        random_ratio=config.random_negative_ratio,
        seed=config.seed,
    )

    with artifacts.atomic_dir(paths.under(root, paths.CONCEPT_PROMPTS_DIR)) as out_dir:
        pool.to_csv(out_dir / paths.CONCEPT_PROMPT_POOL.name, index=False)
        negatives.to_csv(out_dir / paths.CONCEPT_NEGATIVES.name, index=False)
        prompts.concept_table(chosen).to_csv(out_dir / paths.CONCEPT_TABLE.name, index=False)
    counts = prompts.prompt_counts(pool, chosen)
    counts["n_negatives"] = len(negatives)
    artifacts.write_json(paths.under(root, paths.CONCEPT_PROMPTS_METRICS), counts)
    log.info(
        "concept prompts: %d concepts of pack layers %s, %d prompts (train %d / validation %d / "
        "test %d), %d negatives",
        counts["n_concepts"],
        list(config.pack_layers),
        counts["n_prompts"],
        counts["train/n_prompts"],
        counts["validation/n_prompts"],
        counts["test/n_prompts"],
        len(negatives),
    )
