"""data_quality stage: grade, judge and compare the quality_samples generations; estimate the
lens F1 ceiling per quadrant and correlate data quality with the concept lenses' test scores
(``quality.analysis``).

Reads ``data/quality`` (quality_samples), the concept pack (definitions, written examples,
siblings), ``models/concept_lenses`` (refused when trained at another layer or width than the
cached vectors) and ``metrics/evaluate_concepts/per_concept.csv``. Writes under
``metrics/data_quality/``: ``samples.csv`` (every generation graded, judged, with its activation
agreement), ``per_concept.csv``, ``quadrants.csv`` (the quadrant summary), ``agreement.csv``,
the plot tables ``quality_by_quadrant.csv`` and ``gap_vs_f1.csv``, ``diagnostics.txt``; then
``metrics/data_quality.json`` (flat keys, see ``quality.report.flat_metrics``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

from lensforge.concepts import artifacts as lens_io
from lensforge.concepts import pack, prompts, training
from lensforge.core import artifacts, packaged, paths
from lensforge.core.errors import ArtifactError
from lensforge.core.params import Params
from lensforge.quality import analysis, judge

log = logging.getLogger(__name__)

TABLES = {
    "samples": paths.DATA_QUALITY_SAMPLES,
    "per_concept": paths.DATA_QUALITY_CONCEPTS,
    "quadrants": paths.DATA_QUALITY_QUADRANTS,
    "agreement": paths.DATA_QUALITY_AGREEMENT,
    "quality_plot": paths.DATA_QUALITY_BY_QUADRANT,
    "gap_plot": paths.DATA_QUALITY_GAP_VS_F1,
}


def _lens_probabilities(root: Path, card: dict, samples: pd.DataFrame, vectors: dict) -> dict:
    """Each sample's own concept lens on its prompt and generated vectors."""
    lens_dir = paths.under(root, paths.CONCEPT_LENSES_DIR)
    weights, records, lens_card = lens_io.load_lenses(lens_dir)
    if (lens_card["layer"], lens_card["d_model"]) != (card["layer"], card["d_model"]):
        raise ArtifactError(
            f"concept lenses read layer {lens_card['layer']} (width {lens_card['d_model']}), the "
            f"samples layer {card['layer']} (width {card['d_model']}): rerun the stale branch",
            path=lens_dir,
            rule="lenses and samples at one layer",
        )
    column = {c: i for i, c in enumerate(records["concept"])}
    own = torch.tensor([column[c] for c in samples["concept"]])  # (n_samples,)
    rows = torch.arange(len(samples))
    found = {}
    for kind in ("prompt", "generated"):
        x = torch.nan_to_num(vectors[kind], nan=0.0)  # rows without tokens are masked later
        found[kind] = training.score(weights, x)[rows, own].numpy()
    return found


def run(params: Params, *, root: Path) -> None:
    config = params.data_quality
    quality_dir = paths.under(root, paths.QUALITY_DIR)
    card = artifacts.read_json(quality_dir / paths.QUALITY_CARD_NAME, what="quality samples card")
    samples = pd.read_csv(quality_dir / paths.QUALITY_SAMPLES_NAME, keep_default_na=False)
    table = pd.read_csv(quality_dir / paths.QUALITY_QUADRANTS_NAME, keep_default_na=False)
    vectors = load_file(str(quality_dir / paths.QUALITY_VECTORS_NAME))
    concepts = pack.read_pack(paths.under(root, paths.CONCEPT_PACK)).concepts
    chosen = prompts.select_concepts(concepts, pack_layers=params.concept_prompts.pack_layers)
    terms = concepts["term"]
    readable = concepts["definition"].map(prompts.readable_definition)

    made, calibration = judge.make_judge(
        config.judge,
        packaged.encoder_location(config.judge.source, config.judge.name_or_path),
        definitions=dict(zip(terms, readable, strict=True)),
        examples=dict(zip(terms, concepts["positive_examples"], strict=True)),
        seed=config.seed,
    )
    items = judge.sample_items(
        samples,
        siblings=prompts.siblings(prompts.parents_map(concepts), among=terms),
        others=chosen["term"].tolist(),
        n_random=config.judge.n_random_candidates,
        seed=config.seed,
    )
    result = analysis.analyse(
        samples,
        vectors,
        probabilities=_lens_probabilities(root, card, samples, vectors),
        judged=made.judge(items),
        items=items,
        lens_scores=pd.read_csv(paths.under(root, paths.EVALUATE_CONCEPTS_PER_CONCEPT)),
        quadrant_table=table,
        per_quadrant=params.quality_samples.per_quadrant,
        threshold=training.THRESHOLD,
        config=config,
    )
    for name, path in TABLES.items():
        artifacts.write_csv(paths.under(root, path), result.tables[name])
    text = "\n".join(result.diagnostics) + "\n"
    artifacts.write_text(paths.under(root, paths.DATA_QUALITY_DIAGNOSTICS), text)
    artifacts.write_json(
        paths.under(root, paths.DATA_QUALITY_METRICS), {**result.metrics, **calibration}
    )
    for line in result.diagnostics:
        log.info("data_quality: %s", line)
