"""The data-quality tables, flat metrics and diagnostics in words (pure; frames in, frames out).

- ``quadrant_summary``: one row per quadrant: samples, good shares, relevance of positives and
  negatives and their gap, topic accuracy (and its chance level), activation agreement, lens
  firing on degenerate positives' generated tokens, mean lens test F1, ceiling and target;
- ``flat_metrics``: the same as ``<quadrant>/<key>`` plus overall keys, for ``dvc metrics diff``;
- ``diagnostics``: sentences a reader acts on ("quadrant C: 40% of positive outputs empty ...").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lensforge.quality.grading import GRADES
from lensforge.quality.quadrants import QUADRANTS


def _mean(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else float("nan")


def _side_stats(part: pd.DataFrame, side: str) -> dict[str, float]:
    rows = part[part["side"] == side]
    stats = {f"{side}_{g}_share": _mean(rows["grade"] == g) for g in GRADES}
    stats[f"{side}_relevance"] = _mean(rows["relevance"])
    stats[f"{side}_topic_accuracy"] = _mean(rows["topic_correct"].astype(float))
    stats[f"{side}_centered_cosine"] = _mean(rows["centered_cosine"])
    stats[f"{side}_prompt_match"] = _mean(rows["prompt_match"])
    return stats


def quadrant_summary(
    samples: pd.DataFrame, concepts: pd.DataFrame, ceilings: pd.DataFrame
) -> pd.DataFrame:
    """One row per quadrant (module doc). ``samples``: the judged per-sample table;
    ``concepts``: ``ceiling.per_concept``; ``ceilings``: ``ceiling.quadrant_ceilings``."""
    rows = []
    for quadrant in QUADRANTS:
        part = samples[samples["quadrant"] == quadrant]
        pos = part[part["side"] == "positive"]
        degenerate = pos[pos["grade"] != "good"]
        good = pos[pos["grade"] == "good"]
        row = {
            "quadrant": quadrant,
            "n_concepts": int(part["concept"].nunique()),
            "n_samples": len(part),
        }
        row.update(_side_stats(part, "positive"))
        row.update(_side_stats(part, "negative"))
        row["relevance_gap"] = row["positive_relevance"] - row["negative_relevance"]
        row["topic_chance"] = _mean(1.0 / pos["n_candidates"]) if len(pos) else float("nan")
        row["degenerate_fires_prompt"] = _mean(degenerate["fires_prompt"].astype(float))
        row["degenerate_fires_generated"] = _mean(degenerate["fires_generated"].astype(float))
        row["good_fires_generated"] = _mean(good["fires_generated"].astype(float))
        negatives = part[part["side"] == "negative"]
        row["negative_fires_generated"] = _mean(negatives["fires_generated"].astype(float))
        row["lens_f1_mean"] = _mean(concepts.loc[concepts["quadrant"] == quadrant, "f1"])
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.merge(ceilings, on="quadrant", how="left")


def _number(value: object) -> float | int | None:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python numbers, 4 decimals."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


def flat_metrics(
    summary: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    correlations: dict[str, dict],
    counts: dict[str, int],
) -> dict[str, float | int | None]:
    """Flat keys: overall shares and relevance, the correlations, then ``<quadrant>/<key>``."""
    pos, neg = samples[samples["side"] == "positive"], samples[samples["side"] == "negative"]
    metrics: dict[str, float | int | None] = {
        "n_samples": len(samples),
        "n_concepts": int(samples["concept"].nunique()),
        **counts,
        "positive_good_share": _mean(pos["grade"] == "good"),
        "negative_good_share": _mean(neg["grade"] == "good"),
        "positive_relevance": _mean(pos["relevance"]),
        "negative_relevance": _mean(neg["relevance"]),
        "relevance_gap": _mean(pos["relevance"]) - _mean(neg["relevance"]),
        "positive_topic_accuracy": _mean(pos["topic_correct"].astype(float)),
        "negative_topic_accuracy": _mean(neg["topic_correct"].astype(float)),
        "centered_cosine_good": _mean(pos.loc[pos["grade"] == "good", "centered_cosine"]),
        "centered_cosine_degenerate": _mean(pos.loc[pos["grade"] != "good", "centered_cosine"]),
        "prompt_match_good": _mean(pos.loc[pos["grade"] == "good", "prompt_match"]),
        "prompt_match_degenerate": _mean(pos.loc[pos["grade"] != "good", "prompt_match"]),
        "n_without_generated_tokens": int(samples["cosine"].isna().sum()),
    }
    for name, result in correlations.items():
        for key, value in result.items():
            metrics[f"spearman_{name}/{key}"] = value
    for row in summary.to_dict("records"):
        quadrant = row.pop("quadrant")
        for key, value in row.items():
            metrics[f"{quadrant}/{key}"] = value
    return {key: _number(value) for key, value in metrics.items()}


def _pct(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def diagnostics(
    summary: pd.DataFrame,
    *,
    correlations: dict[str, dict],
    shortfalls: dict[str, int],
    per_quadrant: int,
) -> list[str]:
    """Sentences for the reader: short quadrants, each quadrant's output quality, relevance gap,
    topic accuracy, activation agreement and ceiling, and the correlations with their CI."""
    lines = [
        f"quadrant {q}: only {per_quadrant - n} concept(s) at these pack layers, {per_quadrant} "
        f"asked; its numbers rest on fewer concepts"
        for q, n in sorted(shortfalls.items())
    ]
    for row in summary.to_dict("records"):
        if not row["n_samples"]:
            lines.append(f"quadrant {row['quadrant']}: no sampled concept")
            continue
        degenerate = {g: row[f"positive_{g}_share"] for g in GRADES if g != "good"}
        worst = max(degenerate, key=lambda g: degenerate[g])
        lines.append(
            f"quadrant {row['quadrant']}: {_pct(row['positive_good_share'])} of positive outputs "
            f"good ({_pct(degenerate[worst])} {worst}), negatives "
            f"{_pct(row['negative_good_share'])} good; relevance gap {row['relevance_gap']:.2f} "
            f"({row['positive_relevance']:.2f} vs {row['negative_relevance']:.2f}); topic "
            f"inferred for {_pct(row['positive_topic_accuracy'])} of positives (chance "
            f"{_pct(row['topic_chance'])}); lens fires on generated tokens of "
            f"{_pct(row['degenerate_fires_generated'])} of degenerate positives (on their prompts "
            f"{_pct(row['degenerate_fires_prompt'])}, on negatives' generated tokens "
            f"{_pct(row['negative_fires_generated'])}); F1 ceiling {row['ceiling']:.2f}, target "
            f"{row['target']:.2f}, lens test F1 {row['lens_f1_mean']:.2f}"
        )
    for name, result in correlations.items():
        lines.append(
            f"Spearman {name}: rho {result['rho']:.2f} (CI {result['ci_low']:.2f} to "
            f"{result['ci_high']:.2f}) over {result['n']} concepts"
        )
    return lines


def gap_vs_f1_plot(concepts: pd.DataFrame) -> pd.DataFrame:
    """DVC scatter table: one row per sampled concept (relevance gap, good share, lens F1)."""
    columns = ["concept", "quadrant", "relevance_gap", "good_share", "topic_accuracy", "f1"]
    return concepts[columns].round(4)


def quality_plot(quality: pd.DataFrame) -> pd.DataFrame:
    """DVC bar table: one row per (quadrant x side, grade) with the share of samples."""
    long = quality.melt(
        id_vars=["quadrant", "side", "n"],
        value_vars=list(GRADES),
        var_name="grade",
        value_name="share",
    )
    long.insert(0, "group", long["quadrant"] + " " + long["side"] + " " + long["grade"])
    return long.round(4)
