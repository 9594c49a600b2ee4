"""Grouped, stratified train / validation / test splits and stable seeding, for every branch.

A *group* is the unit that never straddles splits (a synset and every synset sharing a lemma with
it; a source document and every item sharing a text with it). ``link_groups`` builds such groups as
connected components of shared keys; ``assign_splits`` (stratified by counting groups) and
``assign_sized_splits`` (by counting the groups' members) map each group to exactly one split;
``check_disjoint_texts`` makes any text found in two splits (as ``normalise_text`` keys) an error.
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


def assign_sized_splits(
    sizes: pd.DataFrame, fractions: Sequence[float], *, seed: int
) -> dict[str, str]:
    """Map every group to one split so that each stratum's members split close to ``fractions``.

    ``sizes`` has one row per group (index: group name) and one column per stratum: how many
    members of that stratum the group holds (a linked group may hold several poles). Unlike
    ``assign_splits``, which counts groups, this counts members, for groups of very different
    sizes (a component of 40 synsets next to single synsets). Deterministic for a seed; groups of
    equal size are taken in a seeded random order.

    Groups go largest first, each to the split where it adds the least overflow: the sum over
    strata of the growth of (members above target)^2 / target, target = fraction x stratum total
    (a split below target is filled by the smaller groups still to come; overflow cannot be
    undone). Among equals, the split where its members are most missing, relative to the target.
    Presence: when a stratum has only as many unassigned groups left as splits without any of its
    members, such a group may only go to one of those splits; so a stratum found in at least as
    many groups as there are splits reaches every split.
    """
    names = sorted(sizes.index)
    counts = sizes.loc[names].to_numpy(dtype=np.float64)  # (group, stratum)
    shares = np.asarray(fractions, dtype=np.float64)  # (split,)
    target = np.outer(shares, counts.sum(axis=0))  # (split, stratum)
    scale = np.divide(1.0, target, out=np.zeros_like(target), where=target > 0)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(len(names))
    order = sorted(range(len(names)), key=lambda i: (-counts[i].sum(), tiebreak[i]))
    left = (counts > 0).sum(axis=0)  # (stratum,) unassigned groups holding the stratum
    filled = np.zeros_like(target)  # (split, stratum)
    assignment: dict[str, str] = {}
    for i in order:
        allowed = set(range(len(fractions)))
        for stratum in np.flatnonzero(counts[i]):
            lacking = set(np.flatnonzero(filled[:, stratum] == 0))
            if lacking and left[stratum] <= len(lacking) and allowed & lacking:
                allowed &= lacking
        over_before = np.maximum(filled - target, 0.0)
        over_after = np.maximum(filled + counts[i] - target, 0.0)
        overflow = ((over_after**2 - over_before**2) * scale).sum(axis=1)  # (split,)
        missing = (counts[i] * (target - filled) * scale).sum(axis=1)  # (split,)
        best = min(sorted(allowed), key=lambda s: (overflow[s], -missing[s]))
        filled[best] += counts[i]
        left -= counts[i] > 0
        assignment[names[i]] = SPLITS[best]
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


def normalise_text(text: str) -> str:
    """The key under which two texts count as one: whitespace runs collapsed to one space, ends
    stripped, casefolded (``"  Joy   is HERE "`` -> ``"joy is here"``)."""
    return " ".join(str(text).split()).casefold()


def check_disjoint_texts(
    frame: pd.DataFrame,
    *,
    text_column: str,
    id_column: str,
    file: str,
    within: str | None = None,
) -> None:
    """Raise ``DataError`` naming the rows when one text appears in two splits.

    ``frame`` has a ``split`` column; texts are compared as ``normalise_text`` keys. With
    ``within`` (a column name, e.g. ``simplex``) texts are compared only between rows with the
    same value there: each such part is its own train / validation / test experiment.
    """
    scope = frame[within].astype(str) + "\x1f" if within else pd.Series("", index=frame.index)
    keys = scope + frame[text_column].map(normalise_text)
    shared = cross_split_keys(frame["split"].tolist(), [[key] for key in keys])
    if shared:
        key = sorted(shared)[0]
        rows = frame.loc[keys == key, [id_column, "split", text_column]]
        shown = ", ".join(f"{r[id_column]} ({r['split']})" for _, r in rows.head(6).iterrows())
        scope_note = f" of one {within}" if within else ""
        raise DataError(
            f"{len(shared)} text(s) appear in more than one split{scope_note}, e.g. "
            f"{rows[text_column].iloc[0]!r} in {shown}",
            path=file,
            row=str(rows[id_column].iloc[0]),
            rule="no text in two splits",
        )
