"""From judged samples to a lens F1 ceiling: per-concept gaps, their correlation with lens F1,
and a ceiling and recommended target per quadrant.

Correlation: Spearman's rho (Pearson correlation of average ranks, ties shared) between each
sampled concept's relevance gap (mean relevance of its positive outputs minus that of its
negative outputs) or share of good positive outputs, and its lens test F1 from
``evaluate_concepts``. The interval is a percentile bootstrap over concepts (pairs resampled with
replacement, seeded); resamples where either side is constant have no rho and are skipped.

Ceiling per quadrant (the note's activation-quality model, with its inputs measured):

    lost       share of the quadrant's positive samples whose output is degenerate or whose topic
               the judge infers wrongly;
    retention  how much concept signal the lost samples' activations keep: the concept's own lens
               on their generated-token vectors against the same concept's negatives' generated
               vectors, as a Gini score 2 AUROC - 1 clipped to [0, 1] (AUROC over every (lost
               positive, negative) pair of one concept, pooled over the quadrant; a sample
               without generated tokens scores lowest). 1 = the lens still separates them as
               well as possible, 0 = no better than chance;
    noise      e = lost x (1 - retention): positives whose concept signal is gone;
    ceiling    F1 = 2 (1 - e) / (2 - e): a lens with perfect precision that can only recall the
               positives that still carry the signal.

The lenses read the generated tokens here, as a lens trained on generation-time activations
(the note's pipeline) would; this project's concept lenses are trained on prompt vectors, so
their test F1 is not bounded by this ceiling, only compared with it. Negatives are taken as
clean, so the ceiling is optimistic. The recommended target is the ceiling minus ``margin``,
floored to a multiple of ``step``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from lensforge.core.errors import DataError
from lensforge.core.splits import stable_seed
from lensforge.quality.quadrants import QUADRANTS

CEILING_METHOD = (
    "F1 = 2(1-e)/(2-e), e = lost x (1 - retention); lost = share of positives degenerate or "
    "off-topic, retention = 2 AUROC - 1 (clipped to [0, 1]) of the own concept lens on generated "
    "tokens, lost positives vs the concept's negatives"
)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of paired values; NaN when fewer than 3 pairs or either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired values differ in shape: {x.shape} vs {y.shape}")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    return float((rx * ry).sum() / math.sqrt((rx * rx).sum() * (ry * ry).sum()))


def bootstrap_ci(
    x: np.ndarray, y: np.ndarray, *, n_boot: int, level: float, seed: int
) -> tuple[float, float, int]:
    """Percentile bootstrap interval of ``spearman`` at ``level``: (low, high, resamples used);
    NaNs when no resample has a defined rho."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(stable_seed(seed, "bootstrap"))
    picks = rng.integers(0, len(x), size=(n_boot, len(x)))
    rhos = np.array([spearman(x[p], y[p]) for p in picks])
    rhos = rhos[np.isfinite(rhos)]
    if not len(rhos):
        return float("nan"), float("nan"), 0
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(rhos, [tail, 100 - tail])
    return float(low), float(high), len(rhos)


def per_concept(samples: pd.DataFrame, lens_scores: pd.DataFrame) -> pd.DataFrame:
    """One row per sampled concept: quadrant, positive / negative mean relevance and their gap,
    share of good positive outputs, positive topic accuracy, and the lens's test ``f1`` and
    ``auroc`` (``lens_scores``: concept, f1, auroc). A sampled concept missing from
    ``lens_scores`` is a ``DataError`` (its lens was never evaluated)."""
    missing = sorted(set(samples["concept"]) - set(lens_scores["concept"]))
    if missing:
        raise DataError(
            f"sampled concepts without a lens evaluation: {missing[:10]} (rerun evaluate_concepts "
            "with the same concept_prompts.pack_layers)",
            row=missing[0],
            rule="sampled concepts have lens F1",
        )
    rows = []
    for concept, part in samples.groupby("concept", sort=True):
        pos, neg = part[part["side"] == "positive"], part[part["side"] == "negative"]
        rows.append(
            {
                "concept": concept,
                "quadrant": part["quadrant"].iloc[0],
                "positive_relevance": float(pos["relevance"].mean()),
                "negative_relevance": float(neg["relevance"].mean()),
                "relevance_gap": float(pos["relevance"].mean() - neg["relevance"].mean()),
                "good_share": float((pos["grade"] == "good").mean()),
                "topic_accuracy": float(pos["topic_correct"].mean()),
            }
        )
    table = pd.DataFrame(rows)
    scores = lens_scores.set_index("concept")
    table["f1"] = pd.to_numeric(scores.loc[table["concept"], "f1"], errors="coerce").to_numpy()
    table["auroc"] = pd.to_numeric(
        scores.loc[table["concept"], "auroc"], errors="coerce"
    ).to_numpy()
    return table


def correlation(
    table: pd.DataFrame, x: str, y: str, *, n_boot: int, level: float, seed: int
) -> dict[str, float | int]:
    """``rho``, ``ci_low``, ``ci_high``, ``n`` (concepts with both values) of column ``x`` vs ``y``."""
    both = table[[x, y]].dropna()
    low, high, _ = bootstrap_ci(both[x], both[y], n_boot=n_boot, level=level, seed=seed)
    rho = spearman(both[x].to_numpy(), both[y].to_numpy())
    return {"rho": rho, "ci_low": low, "ci_high": high, "n": len(both)}


def f1_ceiling(noise: float) -> float:
    """Best F1 with perfect precision and recall ``1 - noise``."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise}")
    return 2 * (1 - noise) / (2 - noise)


def recommended_target(ceiling: float, *, margin: float, step: float) -> float:
    """``ceiling - margin`` floored to a multiple of ``step`` (never below 0)."""
    return max(0.0, round(math.floor((ceiling - margin) / step + 1e-9) * step, 6))


def within_concept_auc(positives: pd.DataFrame, negatives: pd.DataFrame, column: str) -> float:
    """AUROC of ``column`` over every (positive, negative) pair of one concept, pooled (ties
    count half; NaN scores lowest); NaN without any pair."""
    wins, pairs = 0.0, 0
    for concept, pos in positives.groupby("concept"):
        neg = negatives.loc[negatives["concept"] == concept, column].fillna(-np.inf).to_numpy()
        if not len(neg):
            continue
        p = pos[column].fillna(-np.inf).to_numpy()[:, None]  # (n_pos, 1)
        wins += float((p > neg).sum() + 0.5 * (p == neg).sum())
        pairs += p.size * len(neg)
    return wins / pairs if pairs else float("nan")


def quadrant_ceilings(samples: pd.DataFrame, *, margin: float, step: float) -> pd.DataFrame:
    """Per quadrant (module doc): lost, the lens AUROCs behind retention (on generated tokens
    for lost and for kept positives, on the prompts of lost positives), retention, noise,
    ceiling, target; NaN where there is nothing to measure. ``samples``: concept, quadrant, side,
    grade, topic_correct, lens_prompt, lens_generated."""
    rows = []
    for quadrant in QUADRANTS:
        part = samples[samples["quadrant"] == quadrant]
        pos, neg = part[part["side"] == "positive"], part[part["side"] == "negative"]
        is_lost = (pos["grade"] != "good") | ~pos["topic_correct"].astype(bool)
        lost, kept = pos[is_lost], pos[~is_lost]
        row = {
            "quadrant": quadrant,
            "lost": len(lost) / len(pos) if len(pos) else np.nan,
            "lost_generated_auroc": within_concept_auc(lost, neg, "lens_generated"),
            "kept_generated_auroc": within_concept_auc(kept, neg, "lens_generated"),
            "lost_prompt_auroc": within_concept_auc(lost, neg, "lens_prompt"),
        }
        if len(lost):
            row["retention"] = float(np.clip(2 * row["lost_generated_auroc"] - 1, 0.0, 1.0))
        else:
            row["retention"] = 1.0 if len(pos) else np.nan  # nothing lost: nothing to retain
        row["noise"] = row["lost"] * (1 - row["retention"])
        finite = bool(np.isfinite(row["noise"]))
        row["ceiling"] = f1_ceiling(row["noise"]) if finite else np.nan
        row["target"] = (
            recommended_target(row["ceiling"], margin=margin, step=step) if finite else np.nan
        )
        rows.append(row)
    return pd.DataFrame(rows)
