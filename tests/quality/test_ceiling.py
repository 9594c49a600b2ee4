"""``quality.ceiling``: Spearman and its bootstrap against scipy; the ceiling arithmetic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lensforge.core.errors import DataError
from lensforge.core.splits import stable_seed
from lensforge.quality import ceiling


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 5, size=12).astype(float)  # many ties
        y = x + rng.normal(0, 2, size=12)
        if np.ptp(x) == 0:
            continue
        assert ceiling.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_is_nan_for_constant_or_too_few_values():
    assert np.isnan(ceiling.spearman([1, 1, 1, 1], [1, 2, 3, 4]))
    assert np.isnan(ceiling.spearman([1, 2], [2, 1]))
    with pytest.raises(ValueError, match="shape"):
        ceiling.spearman([1, 2, 3], [1, 2])


def test_bootstrap_is_the_percentile_interval_of_scipys_rho_on_the_same_resamples():
    rng = np.random.default_rng(1)
    x = rng.normal(size=15)
    y = x + rng.normal(scale=1.0, size=15)
    low, high, used = ceiling.bootstrap_ci(x, y, n_boot=400, level=0.9, seed=7)
    picks = np.random.default_rng(stable_seed(7, "bootstrap")).integers(0, 15, size=(400, 15))
    rhos = np.array([stats.spearmanr(x[p], y[p]).statistic for p in picks])
    rhos = rhos[np.isfinite(rhos)]
    assert used == len(rhos)
    assert (low, high) == pytest.approx(tuple(np.percentile(rhos, [5, 95])), abs=1e-9)
    assert low < ceiling.spearman(x, y) < high


def test_bootstrap_agrees_with_scipy_bootstrap_percentile_interval():
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    y = 0.6 * x + rng.normal(size=40)
    low, high, _ = ceiling.bootstrap_ci(x, y, n_boot=3000, level=0.95, seed=0)
    ref = stats.bootstrap(
        (x, y),
        lambda a, b: stats.spearmanr(a, b).statistic,
        paired=True,
        vectorized=False,
        n_resamples=3000,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(3),
    ).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.05) and high == pytest.approx(ref.high, abs=0.05)


def test_f1_ceiling_and_targets():
    assert ceiling.f1_ceiling(0.0) == 1.0
    assert ceiling.f1_ceiling(0.2) == pytest.approx(2 * 0.8 / 1.8)
    assert ceiling.f1_ceiling(1.0) == 0.0
    with pytest.raises(ValueError):
        ceiling.f1_ceiling(1.5)
    assert ceiling.recommended_target(0.888, margin=0.05, step=0.05) == 0.8
    assert ceiling.recommended_target(0.90, margin=0.05, step=0.05) == 0.85
    assert ceiling.recommended_target(0.02, margin=0.05, step=0.05) == 0.0


def _samples(rows):
    return pd.DataFrame(
        rows,
        columns=[
            "concept",
            "quadrant",
            "side",
            "grade",
            "topic_correct",
            "lens_prompt",
            "lens_generated",
            "relevance",
        ],
    )


def test_quadrant_ceiling_from_lost_share_and_retention():
    rows = [
        # concept K in quadrant A: 4 positives, 2 lost (repetitive, off-topic), 2 negatives
        ("K", "A", "positive", "good", True, 0.9, 0.9, 5),
        ("K", "A", "positive", "good", True, 0.9, 0.8, 4),
        ("K", "A", "positive", "repetitive", True, 0.9, 0.1, 3),  # signal gone on generation
        ("K", "A", "positive", "good", False, 0.9, 0.95, 2),  # still above both negatives
        ("K", "A", "negative", "good", True, 0.1, 0.2, 1),
        ("K", "A", "negative", "good", True, 0.1, 0.3, 1),
    ]
    table = ceiling.quadrant_ceilings(_samples(rows), margin=0.05, step=0.05).set_index("quadrant")
    a = table.loc["A"]
    # lost generated AUROC: 0.1 beats no negative, 0.95 beats both -> 2 of 4 pairs = 0.5
    assert a["lost"] == 0.5 and a["lost_generated_auroc"] == 0.5
    assert a["retention"] == 0.0 and a["noise"] == 0.5
    assert a["ceiling"] == pytest.approx(ceiling.f1_ceiling(0.5))
    assert a["lost_prompt_auroc"] == 1.0 and a["kept_generated_auroc"] == 1.0
    assert np.isnan(table.loc["B", "ceiling"])  # no samples: nothing estimated


def test_nothing_lost_means_ceiling_one():
    rows = [
        ("K", "D", "positive", "good", True, 0.9, 0.9, 5),
        ("K", "D", "negative", "good", True, 0.1, 0.1, 1),
    ]
    d = (
        ceiling.quadrant_ceilings(_samples(rows), margin=0.05, step=0.05)
        .set_index("quadrant")
        .loc["D"]
    )
    assert (d["lost"], d["retention"], d["ceiling"], d["target"]) == (0.0, 1.0, 1.0, 0.95)


def test_per_concept_needs_every_sampled_concept_evaluated():
    rows = [
        ("K", "A", "positive", "good", True, 0.9, 0.9, 5),
        ("K", "A", "negative", "short", True, 0.1, 0.1, 2),
    ]
    samples = _samples(rows)
    scores = pd.DataFrame({"concept": ["K"], "f1": [0.5], "auroc": [0.7]})
    table = ceiling.per_concept(samples, scores)
    assert table.loc[0, ["relevance_gap", "good_share", "f1"]].tolist() == [3.0, 1.0, 0.5]
    with pytest.raises(DataError, match="without a lens evaluation") as exc:
        ceiling.per_concept(samples, scores.assign(concept="Other"))
    assert exc.value.row == "K"
