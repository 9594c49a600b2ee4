"""evaluate_concepts stage: saved concept lenses + cached test vectors -> metrics and plots.

The lenses are rebuilt from their folder and refused if their weights' hash or their
activations differ (``concepts.artifacts.load_lenses``). Writes, metrics last:
``metrics/evaluate_concepts/per_concept.csv`` (every concept's scores, tier, sibling that steals
it), the plot tables ``f1_distribution.csv``, ``tiers_by_layer.csv``, ``f1_by_samples.csv``, and
``metrics/evaluate_concepts.json`` (summary keys, see ``evaluation.summary``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lensforge.activations import cache
from lensforge.concepts import artifacts as lens_io
from lensforge.concepts import evaluation
from lensforge.core import artifacts, paths
from lensforge.core.params import Params

log = logging.getLogger(__name__)

PLOTS = {
    "f1_distribution": paths.EVALUATE_CONCEPTS_F1,
    "tiers_by_layer": paths.EVALUATE_CONCEPTS_TIERS,
    "f1_by_samples": paths.EVALUATE_CONCEPTS_F1_BY_SAMPLES,
}


def run(params: Params, *, root: Path) -> None:
    config = params.evaluate_concepts
    act_dir = paths.under(root, paths.CONCEPT_ACTIVATIONS_DIR)
    index = cache.read_index(act_dir)
    weights, records, card = lens_io.load_lenses(
        paths.under(root, paths.CONCEPT_LENSES_DIR),
        manifest_sha256=artifacts.file_sha256(act_dir / paths.ACTIVATION_MANIFEST_NAME),
    )
    concepts = pd.read_csv(paths.under(root, paths.CONCEPT_TABLE), keep_default_na=False)
    negatives = pd.read_csv(paths.under(root, paths.CONCEPT_NEGATIVES), keep_default_na=False)
    x = cache.read_vectors(act_dir, index, layer=card["layer"])  # (n_prompts, d_model)

    table, y, p = evaluation.per_concept(x, weights, index, negatives, concepts, records)
    tier_names = [tier.name for tier in params.train_concepts.tiers]
    summary = evaluation.summary(table, y, p, n_bins=config.ece_bins, tier_names=tier_names)

    artifacts.write_csv(paths.under(root, paths.EVALUATE_CONCEPTS_PER_CONCEPT), table)
    for name, frame in evaluation.plot_tables(table, n_bins=config.ece_bins).items():
        artifacts.write_csv(paths.under(root, PLOTS[name]), frame)
    artifacts.write_json(paths.under(root, paths.EVALUATE_CONCEPTS_METRICS), summary)
    log.info(
        "evaluate_concepts: %d lenses, test F1 mean %.3f (median %.3f), AUROC %.3f, sibling "
        "rank accuracy %.3f, %.1f%% graduated",
        summary["n_concepts"],
        summary["test_f1_mean"] or 0.0,
        summary["test_f1_median"] or 0.0,
        summary["test_auroc_mean"] or 0.0,
        summary["sibling_rank_accuracy_mean"] or 0.0,
        100 * summary["share_graduated"],
    )
