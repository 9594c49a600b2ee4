"""quality_samples stage: quadrants of the concept pack, K concepts each, and what the subject
model writes for their positive and negative prompts, with its activations at the concept lenses'
layer (``train_concepts.layer``).

``data/quality/``: ``quadrants.csv`` (every concept of ``concept_prompts.pack_layers``: synsets,
siblings, quadrant, sampled), ``samples.csv`` (one row per generation: prompt, output text, token
count), ``vectors.safetensors`` (``prompt`` and ``generated``, (n_samples, d_model) float32, rows
in ``samples.csv`` order) and ``card.json`` (model card hash, layer, pooling, settings).
``metrics/quality_samples.json``: quadrant counts, shortfalls, timing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pandas as pd

from lensforge.activations import extraction, subject
from lensforge.concepts import pack, prompts
from lensforge.core import artifacts, paths
from lensforge.core.params import Params
from lensforge.quality import generation, quadrants

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    config = params.quality_samples
    concepts = pack.read_pack(paths.under(root, paths.CONCEPT_PACK)).concepts
    siblings = prompts.siblings(prompts.parents_map(concepts), among=concepts["term"])
    chosen = prompts.select_concepts(concepts, pack_layers=params.concept_prompts.pack_layers)
    records = quadrants.concept_records(chosen, siblings=siblings)
    table = quadrants.quadrant_table(records, thresholds=config.quadrants)
    sampled = quadrants.sample_concepts(table, per_quadrant=config.per_quadrant, seed=config.seed)
    table["sampled"] = table["concept"].isin(sampled["concept"])
    pool = pd.read_csv(paths.under(root, paths.CONCEPT_PROMPT_POOL), keep_default_na=False)
    negatives = pd.read_csv(paths.under(root, paths.CONCEPT_NEGATIVES), keep_default_na=False)
    samples = generation.sample_prompts(
        sampled,
        pool,
        negatives=negatives,
        n_positive=config.n_positive,
        n_negative=config.n_negative,
        seed=config.seed,
    )

    model_dir = paths.under(root, paths.SUBJECT_MODEL_DIR)
    layer = params.train_concepts.layer
    extraction.validate_layer(
        layer, n_layers=subject.read_card(model_dir)["n_layers"], key="train_concepts.layer"
    )
    compute = extraction.COMPUTE_DTYPES[params.activations.compute_dtype]
    loaded = subject.load_for_extraction(model_dir, dtype=compute)
    started = time.perf_counter()
    out = generation.generate(
        loaded.model,
        loaded.tokenizer,
        samples["prompt"].tolist(),
        layer=layer,
        max_new_tokens=config.max_new_tokens,
        max_length=params.activations.max_length,
        batch_size=config.batch_size,
        decoding=config.decoding,
        temperature=config.temperature,
        seed=config.seed,
        prompt_pooling=params.activations.pooling,
    )
    seconds = time.perf_counter() - started
    samples = samples.assign(output=out.outputs, n_tokens=out.n_tokens, stopped=out.stopped)
    card = {
        "model_card_sha256": artifacts.file_sha256(model_dir / paths.MODEL_CARD_NAME),
        "layer": layer,
        "pooling": params.activations.pooling,
        "compute_dtype": params.activations.compute_dtype,
        "max_length": params.activations.max_length,
        "d_model": int(out.prompt_vectors.shape[1]),
        "quality_samples_params": dataclasses.asdict(config),
    }
    with artifacts.atomic_dir(paths.under(root, paths.QUALITY_DIR)) as out_dir:
        artifacts.write_csv(out_dir / paths.QUALITY_QUADRANTS_NAME, table)
        artifacts.write_csv(out_dir / paths.QUALITY_SAMPLES_NAME, samples)
        artifacts.write_safetensors(
            out_dir / paths.QUALITY_VECTORS_NAME,
            {"prompt": out.prompt_vectors, "generated": out.generated_vectors},
        )
        artifacts.write_json(out_dir / paths.QUALITY_CARD_NAME, card)
    summary = generation.summary(samples, table, per_quadrant=config.per_quadrant, seconds=seconds)
    artifacts.write_json(paths.under(root, paths.QUALITY_SAMPLES_METRICS), summary)
    log.info(
        "quality_samples: quadrants %s (K=%d; short: %s), %d generations in %.1f s",
        quadrants.quadrant_counts(table),
        config.per_quadrant,
        quadrants.shortfalls(table, per_quadrant=config.per_quadrant) or "none",
        len(samples),
        seconds,
    )
