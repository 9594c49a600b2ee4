"""Concepts by training-data variety: quadrants A-D and a seeded sample of K concepts each.

Positive variety is a concept's number of WordNet synsets, negative variety its number of
siblings (concepts sharing a parent; the pack's roots are siblings of each other). With the
thresholds of ``QuadrantParams`` (inclusive):

    A  low positive  / low negative    simple, isolated
    B  low positive  / high negative   simple but crowded
    C  high positive / high negative   complex and crowded
    D  high positive / low negative    complex but isolated

A concept between the thresholds on either axis belongs to no quadrant (``""``). Sampling never
fills a short quadrant from elsewhere: it takes what there is, and ``shortfalls`` says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lensforge.core.errors import DataError
from lensforge.core.params import QuadrantParams
from lensforge.core.splits import stable_seed

QUADRANTS = ("A", "B", "C", "D")
NO_QUADRANT = ""
RECORD_COLUMNS = ["concept", "pack_layer", "n_synsets", "n_siblings"]


def assign_quadrant(n_synsets: int, n_siblings: int, *, thresholds: QuadrantParams) -> str:
    """The quadrant of one concept, or ``NO_QUADRANT`` when either count is in between."""
    low_pos = n_synsets <= thresholds.low_synsets_max
    high_pos = n_synsets >= thresholds.high_synsets_min
    low_neg = n_siblings <= thresholds.low_siblings_max
    high_neg = n_siblings >= thresholds.high_siblings_min
    if low_pos and low_neg:
        return "A"
    if low_pos and high_neg:
        return "B"
    if high_pos and high_neg:
        return "C"
    if high_pos and low_neg:
        return "D"
    return NO_QUADRANT


def quadrant_table(records: pd.DataFrame, *, thresholds: QuadrantParams) -> pd.DataFrame:
    """``records`` (``RECORD_COLUMNS``, one row per concept) with a ``quadrant`` column.

    Raises ``DataError`` on a missing column, a repeated concept or a negative count.
    """
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise DataError(f"concept records lack columns {missing}", rule="record columns")
    repeated = records["concept"][records["concept"].duplicated()].tolist()
    if repeated:
        raise DataError(f"concepts listed twice: {repeated[:10]}", row=repeated[0], rule="unique")
    negative = records[(records["n_synsets"] < 0) | (records["n_siblings"] < 0)]
    if len(negative):
        concept = negative["concept"].iloc[0]
        raise DataError("negative synset or sibling count", row=concept, rule="counts >= 0")
    table = records[RECORD_COLUMNS].reset_index(drop=True).copy()
    table["quadrant"] = [
        assign_quadrant(int(s), int(b), thresholds=thresholds)
        for s, b in zip(table["n_synsets"], table["n_siblings"], strict=True)
    ]
    return table


def quadrant_counts(table: pd.DataFrame) -> dict[str, int]:
    """Concepts per quadrant (every quadrant present, zeros included) and outside any."""
    counts = {q: int((table["quadrant"] == q).sum()) for q in QUADRANTS}
    counts["none"] = int((table["quadrant"] == NO_QUADRANT).sum())
    return counts


def sample_concepts(table: pd.DataFrame, *, per_quadrant: int, seed: int) -> pd.DataFrame:
    """Up to ``per_quadrant`` concepts of each quadrant, drawn without replacement with an RNG
    seeded per quadrant (adding concepts to one quadrant leaves the others' draws alone); rows in
    quadrant order, then concept name."""
    chosen = []
    for quadrant in QUADRANTS:
        members = table[table["quadrant"] == quadrant].sort_values("concept")
        rng = np.random.default_rng(stable_seed(seed, "quadrant", quadrant))
        n_take = min(per_quadrant, len(members))
        picks = rng.choice(len(members), size=n_take, replace=False) if n_take else []
        chosen.append(members.iloc[sorted(picks)])
    return pd.concat(chosen, ignore_index=True)


def shortfalls(table: pd.DataFrame, *, per_quadrant: int) -> dict[str, int]:
    """Quadrant -> concepts missing to reach ``per_quadrant`` (only quadrants that fall short)."""
    counts = quadrant_counts(table)
    return {q: per_quadrant - counts[q] for q in QUADRANTS if counts[q] < per_quadrant}


def concept_records(chosen: pd.DataFrame, *, siblings: dict[str, set[str]]) -> pd.DataFrame:
    """``RECORD_COLUMNS`` of pack concepts (``term``, ``pack_layer``, ``synsets`` list) given each
    concept's siblings; a concept missing from ``siblings`` has none."""
    return pd.DataFrame(
        {
            "concept": chosen["term"].astype(str).to_numpy(),
            "pack_layer": chosen["pack_layer"].astype(int).to_numpy(),
            "n_synsets": [len(s) if isinstance(s, list) else 0 for s in chosen["synsets"]],
            "n_siblings": [len(siblings.get(t, ())) for t in chosen["term"]],
        }
    )
