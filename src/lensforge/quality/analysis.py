"""The data-quality analysis as one function over in-memory inputs (the stage only reads and
writes): grade every output, judge it, measure activation agreement, then per concept and per
quadrant compare with the lenses' test scores and estimate the ceiling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lensforge.core.params import DataQualityParams
from lensforge.quality import agreement, ceiling, grading, judge, quadrants, report

CORRELATIONS = (("relevance_gap", "f1"), ("good_share", "f1"), ("relevance_gap", "auroc"))


@dataclasses.dataclass(frozen=True)
class Analysis:
    """``tables``: name -> frame (samples, per_concept, quadrants, agreement, quality_plot,
    gap_plot); ``metrics``: flat JSON-safe keys; ``diagnostics``: sentences."""

    tables: dict[str, pd.DataFrame]
    metrics: dict[str, float | int | None]
    diagnostics: list[str]


def analyse(
    samples: pd.DataFrame,
    vectors: Mapping[str, torch.Tensor],
    *,
    probabilities: Mapping[str, np.ndarray],
    judged: Sequence[judge.Judgment],
    items: Sequence[judge.JudgeItem],
    lens_scores: pd.DataFrame,
    quadrant_table: pd.DataFrame,
    per_quadrant: int,
    threshold: float,
    config: DataQualityParams,
) -> Analysis:
    """``samples``: quality_samples' table; ``vectors``: its ``prompt`` / ``generated`` rows;
    ``probabilities``: each sample's own lens on them (``prompt`` / ``generated``); ``judged``:
    the judge's verdicts on ``items``; ``lens_scores``: evaluate_concepts' per-concept table;
    ``quadrant_table``: every pack concept's quadrant (for the shortfalls)."""
    samples = pd.concat(
        [
            samples.reset_index(drop=True),
            grading.grade_outputs(samples["output"].tolist(), rules=config.grading),
            judge.judgments_frame(items, judged),
            agreement.agreement_columns(
                vectors["prompt"],
                vectors["generated"],
                prompt_probability=probabilities["prompt"],
                generated_probability=probabilities["generated"],
                threshold=threshold,
            ),
        ],
        axis=1,
    )
    per_concept = ceiling.per_concept(samples, lens_scores)
    correlations = {
        f"{x}_{y}": ceiling.correlation(
            per_concept, x, y, n_boot=config.n_bootstrap, level=config.ci_level, seed=config.seed
        )
        for x, y in CORRELATIONS
    }
    ceilings = ceiling.quadrant_ceilings(
        samples, margin=config.target_margin, step=config.target_step
    )
    summary = report.quadrant_summary(samples, per_concept, ceilings)
    short = quadrants.shortfalls(quadrant_table, per_quadrant=per_quadrant)
    lines = report.diagnostics(
        summary, correlations=correlations, shortfalls=short, per_quadrant=per_quadrant
    )
    counts = {f"short_{q}": short.get(q, 0) for q in quadrants.QUADRANTS}
    metrics = report.flat_metrics(summary, samples, correlations=correlations, counts=counts)
    tables = {
        "samples": samples,
        "per_concept": per_concept,
        "quadrants": summary,
        "agreement": agreement.agreement_by_grade(samples),
        "quality_plot": report.quality_plot(grading.quality_table(samples)),
        "gap_plot": report.gap_vs_f1_plot(per_concept),
    }
    return Analysis(tables, metrics, [*lines, f"ceiling method: {ceiling.CEILING_METHOD}"])
