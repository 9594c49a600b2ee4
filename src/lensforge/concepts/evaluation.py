"""Concept lens evaluation on the test split (read once): per concept precision / recall / F1 on
its own prompts against as many negatives (the validation rule), AUROC against every negative,
calibration, sibling rank accuracy, and tier counts overall and per pack layer.

Sibling rank accuracy: on each of a concept's test prompts, does its own lens score higher than
the lens of every sibling (a concept sharing a parent)? The sibling whose lens outscores it most
often is reported as the one that "steals" the concept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from lensforge.concepts import prompts, rows, training
from lensforge.core import metrics


def _binary_scores(y: np.ndarray, p: np.ndarray, *, threshold: float) -> dict[str, float]:
    predicted = (p >= threshold).astype(np.int64)
    tp = int(((predicted == 1) & (y == 1)).sum())
    fp = int(((predicted == 1) & (y == 0)).sum())
    fn = int(((predicted == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def sibling_ranks(
    probs: torch.Tensor, test_rows: Sequence[torch.Tensor], siblings: Sequence[Sequence[int]]
) -> list[tuple[float | None, int | None]]:
    """Per lens: the share of its test prompts on which its own probability beats every
    sibling lens's (None without siblings or prompts), and the sibling lens that wins most often
    (None if none ever wins). ``probs`` (n_rows, n_lenses); ``siblings[l]`` lens ids."""
    out = []
    for lens, (own_rows, kin) in enumerate(zip(test_rows, siblings, strict=True)):
        if len(kin) == 0 or len(own_rows) == 0:
            out.append((None, None))
            continue
        own = probs[own_rows, lens]  # (n_own,)
        rivals = probs[own_rows][:, list(kin)]  # (n_own, n_siblings)
        best = rivals.max(dim=1)
        wins = own > best.values
        thief = None
        if not bool(wins.all()):
            steals = torch.bincount(best.indices[~wins], minlength=len(kin))
            thief = list(kin)[int(steals.argmax())]
        out.append((float(wins.float().mean()), thief))
    return out


def per_concept(
    x: torch.Tensor,
    weights: training.LensStack,
    index: pd.DataFrame,
    negatives: pd.DataFrame,
    concepts: pd.DataFrame,
    records: pd.DataFrame,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One row per concept with its test scores at the threshold its lens was graduated with
    (its record's ``threshold``); plus the pooled (labels, probabilities) of every lens on its
    balanced test rows for calibration."""
    names = concepts["concept"].tolist()
    positives, negs = rows.split_rows(index, negatives, names, split="test")
    # Score the test rows only (every lens on every row is dense: lenses x rows).
    test_ids = torch.tensor((index["split"] == "test").to_numpy()).nonzero()[:, 0]  # (n_test,)
    to_test = torch.full((len(index),), -1, dtype=torch.long)
    to_test[test_ids] = torch.arange(len(test_ids))
    probs = training.score(weights, x[test_ids])  # (n_test, n_lenses)
    positives = [to_test[p] for p in positives]
    negs = [to_test[n] for n in negs]
    lens_of = {name: i for i, name in enumerate(names)}
    parents = {
        name: [p for p in str(joined).split("|") if p]
        for name, joined in zip(names, concepts["parents"], strict=True)
    }
    family = prompts.siblings(parents, among=names)  # the negatives' sibling rule, roots included
    siblings = [sorted(lens_of[s] for s in family[name]) for name in names]
    ranks = sibling_ranks(probs, positives, siblings)
    table, pooled_y, pooled_p = [], [], []
    for i, name in enumerate(names):
        pos, neg = positives[i], negs[i]
        balanced = neg[: math.ceil(len(pos))]
        take = torch.cat([pos, balanced])
        y = np.r_[np.ones(len(pos)), np.zeros(len(balanced))].astype(np.int64)
        p = probs[take, i].double().numpy()
        row = {"concept": name, "pack_layer": int(concepts["pack_layer"][i])}
        threshold = float(records["threshold"].iloc[i])
        row.update(_binary_scores(y, p, threshold=threshold) if len(pos) else {})
        everything = torch.cat([pos, neg])
        y_all = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        both = len(pos) and len(neg)
        row["auroc"] = (
            float(roc_auc_score(y_all, probs[everything, i].double().numpy())) if both else None
        )
        row["sibling_rank_accuracy"], thief = ranks[i]
        row["stolen_by"] = names[thief] if thief is not None else ""
        row["n_test_positives"], row["n_test_negatives"] = len(pos), len(neg)
        table.append(row)
        pooled_y.append(y)
        pooled_p.append(p)
    out = pd.DataFrame(table).merge(
        records[["concept", "tier", "graduated", "samples", "val_f1"]], on="concept"
    )
    out["concept_index"] = out["concept"].map(lens_of)
    return out.sort_values("concept_index").drop(columns="concept_index"), *(
        np.concatenate(pooled_y),
        np.concatenate(pooled_p),
    )


def _mean(values: pd.Series) -> float | None:
    """Mean of the defined values, None when there are none (no NaN in a metrics file)."""
    defined = pd.to_numeric(values, errors="coerce").dropna()
    return float(defined.mean()) if len(defined) else None


def _median(values: pd.Series) -> float | None:
    defined = pd.to_numeric(values, errors="coerce").dropna()
    return float(defined.median()) if len(defined) else None


def summary(
    table: pd.DataFrame, y: np.ndarray, p: np.ndarray, *, n_bins: int, tier_names: Sequence[str]
) -> dict[str, object]:
    """Flat keys for ``dvc metrics diff``: mean / median test F1 and AUROC, sibling rank
    accuracy, ECE of the pooled balanced test rows, share graduated, share per tier overall and
    per pack layer."""
    two_column = np.stack([1 - p, p], axis=1)  # (n, 2) probabilities of (other, concept)
    out: dict[str, object] = {
        "n_concepts": len(table),
        "test_f1_mean": _mean(table["f1"]),
        "test_f1_median": _median(table["f1"]),
        "test_auroc_mean": _mean(table["auroc"]),
        "sibling_rank_accuracy_mean": _mean(table["sibling_rank_accuracy"]),
        "ece_uniform": metrics.expected_calibration_error(
            y, two_column, n_bins=n_bins, binning="uniform"
        ),
        "share_graduated": float(table["graduated"].astype(bool).mean()),
    }
    for tier in [*tier_names, metrics.FAIL_TIER]:
        out[f"share_tier_{tier}"] = float((table["tier"] == tier).mean())
    for layer, part in table.groupby("pack_layer"):
        out[f"layer_{layer}/n_concepts"] = len(part)
        out[f"layer_{layer}/test_f1_mean"] = _mean(part["f1"])
        out[f"layer_{layer}/share_graduated"] = float(part["graduated"].astype(bool).mean())
    return out


def plot_tables(table: pd.DataFrame, *, n_bins: int) -> Mapping[str, pd.DataFrame]:
    """The three DVC plot tables: F1 distribution (count per F1 bin), tiers by pack layer, and
    test F1 against the training rows each lens used."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts, _ = np.histogram(table["f1"].to_numpy(dtype=float), bins=edges)
    distribution = pd.DataFrame(
        {"f1_bin": [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(edges, edges[1:], strict=False)],
         "n_concepts": counts}
    )  # fmt: skip
    tiers = (
        table.groupby(["pack_layer", "tier"]).size().rename("n_concepts").reset_index()
    ).assign(layer_tier=lambda d: "layer " + d["pack_layer"].astype(str) + " " + d["tier"])
    by_samples = table[["concept", "samples", "f1"]].rename(columns={"f1": "test_f1"})
    return {"f1_distribution": distribution, "tiers_by_layer": tiers, "f1_by_samples": by_samples}
