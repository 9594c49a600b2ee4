"""``quality.report``: the quadrant summary, flat JSON-safe metrics and the diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lensforge.quality import ceiling, report


def _samples() -> pd.DataFrame:
    rows = []
    for concept, quadrant in (("K", "A"), ("L", "C")):
        for i in range(4):
            side = "positive" if i < 2 else "negative"
            grade = "empty" if (quadrant == "C" and side == "positive") else "good"
            rows.append({
                "concept": concept, "quadrant": quadrant, "side": side, "grade": grade,
                "relevance": 5 if side == "positive" else 1, "topic_correct": True,
                "n_candidates": 4, "cosine": np.nan if grade == "empty" else 0.9,
                "centered_cosine": np.nan if grade == "empty" else 0.3,
                "prompt_match": np.nan if grade == "empty" else 0.8,
                "fires_prompt": True, "fires_generated": grade != "empty",
                "lens_prompt": 0.9 if side == "positive" else 0.1,
                "lens_generated": np.nan if grade == "empty" else (0.8 if side == "positive" else 0.2),
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_summary_metrics_and_words_agree():
    samples = _samples()
    scores = pd.DataFrame({"concept": ["K", "L"], "f1": [0.8, 0.4], "auroc": [0.9, 0.5]})
    per_concept = ceiling.per_concept(samples, scores)
    ceilings = ceiling.quadrant_ceilings(samples, margin=0.05, step=0.05)
    summary = report.quadrant_summary(samples, per_concept, ceilings).set_index("quadrant")
    assert summary.loc["C", "positive_empty_share"] == 1.0
    assert summary.loc["A", "relevance_gap"] == 4.0 and summary.loc["A", "topic_chance"] == 0.25
    assert summary.loc["C", "ceiling"] == ceiling.f1_ceiling(1.0)  # every positive lost, no signal
    correlations = {
        "relevance_gap_f1": {"rho": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 2}
    }
    metrics = report.flat_metrics(
        summary.reset_index(), samples, correlations=correlations, counts={"short_B": 3}
    )
    json.dumps(metrics, allow_nan=False)  # JSON-safe: NaN became None
    assert metrics["C/positive_empty_share"] == 1.0 and metrics["short_B"] == 3
    assert metrics["spearman_relevance_gap_f1/rho"] is None
    assert metrics["n_without_generated_tokens"] == 2
    lines = report.diagnostics(
        summary.reset_index(), correlations=correlations, shortfalls={"B": 3}, per_quadrant=3
    )
    assert lines[0].startswith("quadrant B: only 0 concept(s)")
    assert any(
        line.startswith("quadrant C: 0% of positive outputs good (100% empty)") for line in lines
    )
    assert any(line == "quadrant D: no sampled concept" for line in lines)
