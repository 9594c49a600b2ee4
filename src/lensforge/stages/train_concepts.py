"""train_concepts stage: concept activations + prompts -> every concept lens, graduated.

All lenses train as one batched program (``concepts.training``) along the graduation schedule
(``concepts.graduation``): each grows its training rows until its validation F1 passes the tier
of its iteration or it runs out (tier F, with the reason). Test rows are never read here.
Outputs: ``models/concept_lenses/`` (stacked weights, one record per lens, card) and, last,
``metrics/train_concepts.json`` (tier counts and shares, F1, the per-count progress, seconds).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pandas as pd

from lensforge.activations import cache
from lensforge.concepts import artifacts as lens_io
from lensforge.concepts import pack_training
from lensforge.concepts import summary as concept_summary
from lensforge.core import artifacts, paths
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    config = params.train_concepts
    act_dir = paths.under(root, paths.CONCEPT_ACTIVATIONS_DIR)
    index = cache.read_index(act_dir)
    concepts = pd.read_csv(paths.under(root, paths.CONCEPT_TABLE), keep_default_na=False)
    negatives = pd.read_csv(paths.under(root, paths.CONCEPT_NEGATIVES), keep_default_na=False)
    manifest = cache.read_manifest(act_dir)
    cache.check_layer(manifest, config.layer, key="train_concepts.layer")
    x = cache.read_vectors(act_dir, index, layer=config.layer)  # (n_prompts, d_model)
    started, progress = time.perf_counter(), []
    weights, records = pack_training.graduate_concepts(
        x, index, negatives, concepts, config=config, on_group=progress.append
    )
    seconds = time.perf_counter() - started
    card = {
        "train_concepts_params": dataclasses.asdict(config),
        "layer": config.layer,
        "pooling": manifest["pooling"],
        "cache_key": manifest["cache_key"],
        "model_card_sha256": manifest["model_card_sha256"],
        "activation_manifest_sha256": artifacts.file_sha256(
            act_dir / paths.ACTIVATION_MANIFEST_NAME
        ),
    }
    with artifacts.atomic_dir(paths.under(root, paths.CONCEPT_LENSES_DIR)) as out_dir:
        lens_io.save_lenses(out_dir, weights, records, card=card)
    summary = concept_summary.graduation_summary(records, progress=progress, seconds=seconds)
    artifacts.write_json(paths.under(root, paths.TRAIN_CONCEPTS_METRICS), summary)
    log.info(
        "train_concepts: %d lenses in %.1f s, %.1f%% graduated; tiers %s",
        len(records),
        seconds,
        100 * summary["share_graduated"],
        summary["tier_counts"],
    )
