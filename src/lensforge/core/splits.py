"""Grouped, stratified train / validation / test splits and stable seeding, for every branch.

A *group* is the unit that never straddles splits (a synset and every synset sharing a lemma with
it; a source document and every item sharing a text with it). ``link_groups`` builds such groups as
connected components of shared keys; ``assign_splits`` maps each group to exactly one split,
stratified; ``check_disjoint_texts`` makes any text found in two splits an error.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lensforge.core.errors import DataError

SPLITS = ("train", "validation", "test")


def stable_seed(*parts: object) -> int:
    """A seed from text parts that is stable across processes (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def allocate(n_groups: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n_groups`` into len(fractions) counts by largest remainder.

    With at least as many groups as parts, every part gets one group (a pole with 13 synsets must
    appear in validation and test), taken from the largest part.
    """
    raw = [n_groups * f for f in fractions]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: n_groups - sum(counts)]:
        counts[i] += 1
    if n_groups >= len(fractions):
        for i, count in enumerate(counts):
            if count == 0:
                counts[i] = 1
                counts[counts.index(max(counts))] -= 1
    return counts


def assign_splits(groups: pd.DataFrame, fractions: Sequence[float], *, seed: int) -> dict[str, str]:
    """Map every group to one split, stratified by ``stratum`` (columns: group, stratum).

    Deterministic for a seed; a group is assigned exactly once, so no group spans two splits.
    """
    assignment: dict[str, str] = {}
    for stratum, part in groups.groupby("stratum", sort=True):
        names = sorted(part["group"].unique())
        rng = np.random.default_rng(stable_seed(seed, stratum))
        shuffled = [names[i] for i in rng.permutation(len(names))]
        start = 0
        for split, count in zip(SPLITS, allocate(len(shuffled), fractions), strict=True):
            for name in shuffled[start : start + count]:
                assignment[name] = split
            start += count
    return assignment


def link_groups(names: Sequence[str], keys: Sequence[Iterable[str]]) -> list[str]:
    """Merge rows that share any key into one group (connected components, union-find).

    ``names[i]`` is row i's own group name and ``keys[i]`` the keys it may share with other rows
    (lemmas, normalised texts). Rows with the same name are one group from the start. Each
    component is named after its smallest member name, so the result is stable and readable.
    """
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for name, row_keys in zip(names, keys, strict=True):
        for key in row_keys:
            union(f"n:{name}", f"k:{key}")
    roots = [find(f"n:{name}") for name in names]
    smallest: dict[str, str] = {}
    for root, name in zip(roots, names, strict=True):
        smallest[root] = min(smallest.get(root, name), name)
    return [smallest[root] for root in roots]


def cross_split_keys(splits: Sequence[str], keys: Sequence[Iterable[str]]) -> set[str]:
    """Keys that occur in rows of more than one split (0 of them means no leakage by key)."""
    seen: dict[str, set[str]] = {}
    for split, row_keys in zip(splits, keys, strict=True):
        for key in row_keys:
            seen.setdefault(key, set()).add(split)
    return {key for key, where in seen.items() if len(where) > 1}


def check_disjoint_texts(frame: pd.DataFrame, *, text_column: str, id_column: str, file: str):
    """Raise ``DataError`` naming the rows when one text appears in two splits."""
    shared = cross_split_keys(frame["split"].tolist(), [[t] for t in frame[text_column]])
    if shared:
        text = sorted(shared)[0]
        rows = frame.loc[frame[text_column] == text, [id_column, "split"]]
        raise DataError(
            f"{len(shared)} text(s) appear in more than one split, e.g. {text!r} in "
            + ", ".join(f"{r[id_column]} ({r['split']})" for _, r in rows.iterrows()),
            path=file,
            row=str(rows[id_column].iloc[0]),
            rule="no text in two splits",
        )
