"""How prompts of overlap synsets are labelled (``prompts.overlap``), and what their labels contradict.

An overlap synset applies to two poles of one simplex (``applies_to_poles``: a polar pole and
neutral). The pool always holds one prompt set per (synset, applicable pole), each with its own
template draws, and records every row's applicable poles in ``poles`` (``+``-joined, in
``POLES`` order). The modes are views of that one pool, so no mode recomputes an activation:

- ``duplicate``: every row as it is: an overlap synset is a member of both poles (HatCat's own
  reading of the file; the balancing experiment).
- ``primary``: one prompt set per synset, labelled with its primary pole (``primary_pole``).
- ``soft``: the rows of ``primary``; train rows of an overlap synset carry a soft target split
  evenly over its poles (``target_matrix``); validation and test keep the primary label.
- ``exclude``: overlap synsets leave train; validation and test are the rows of ``primary``.

The primary pole (``prompts.overlap_primary``): ``neutral`` takes the neutral pole (an overlap
synset sits on the boundary by construction: "a positive directional pull and a neutral
developmental process without strong emotional charge"), ``polar`` the other one.

So ``primary``, ``soft`` and ``exclude`` share their validation and test rows, and every mode
shares its single-pole rows (same synsets, same draws): ``evaluation`` reports metrics on those
rows apart, comparable across modes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lensforge.core.errors import ParamsError
from lensforge.core.splits import normalise_text
from lensforge.lenses.hatcat import POLES

OVERLAP_MODES = ("duplicate", "soft", "primary", "exclude")
PRIMARY_RULES = ("neutral", "polar")
NEUTRAL = "neutral"
SEPARATOR = "+"


def join_poles(poles: Sequence[str]) -> str:
    """The ``poles`` value of a row: the distinct poles in ``POLES`` order, ``+``-joined."""
    members = set(poles)  # the values, also of a pandas Series (``in`` on a Series reads its index)
    unknown = sorted(members - set(POLES))
    if unknown:
        raise ValueError(f"unknown poles {unknown}; expected some of {POLES}")
    return SEPARATOR.join(pole for pole in POLES if pole in members)


def split_poles(value: str) -> list[str]:
    return value.split(SEPARATOR)


def primary_pole(poles: str, *, rule: str) -> str:
    """The one pole an entry applying to ``poles`` is labelled with under ``rule``."""
    members = split_poles(poles)
    if len(members) == 1:
        return members[0]
    if rule not in PRIMARY_RULES:
        raise ParamsError(
            f"prompts.overlap_primary must be one of {PRIMARY_RULES}, got {rule!r}",
            row="prompts.overlap_primary",
            rule="known rule",
        )
    polar = [pole for pole in members if pole != NEUTRAL]
    if rule == NEUTRAL and NEUTRAL in members:
        return NEUTRAL
    if len(polar) != 1:
        raise ValueError(f"no single {rule} pole among {members}")
    return polar[0]


def check_mode(mode: str) -> None:
    if mode not in OVERLAP_MODES:
        raise ParamsError(
            f"prompts.overlap must be one of {OVERLAP_MODES}, got {mode!r}",
            row="prompts.overlap",
            rule="known mode",
        )


def labelled_rows(index: pd.DataFrame, *, mode: str, primary: str) -> pd.DataFrame:
    """The rows of ``index`` (pool or activation index, any splits) that ``mode`` keeps, with a
    boolean column ``soft`` (train rows whose target is split over their poles).

    Row order and every other column are kept; ``label`` and ``pole`` are never rewritten (a
    kept row of an overlap synset is the copy drawn for its primary pole).
    """
    check_mode(mode)
    overlap = index["poles"].str.contains(SEPARATOR, regex=False)
    if mode == "duplicate":
        return index.assign(soft=False)
    primary_of = {value: primary_pole(value, rule=primary) for value in index["poles"].unique()}
    keep = index["pole"] == index["poles"].map(primary_of)
    if mode == "exclude":
        keep &= ~(overlap & (index["split"] == "train"))
    soft = overlap & (index["split"] == "train") if mode == "soft" else False
    return index.assign(soft=soft)[keep]


def target_matrix(labels: np.ndarray, poles: Sequence[str], soft: np.ndarray) -> np.ndarray:
    """Training targets (n, 3): one-hot ``labels``; a ``soft`` row spreads 1 evenly over its
    ``poles``."""
    targets = np.zeros((len(labels), len(POLES)))
    targets[np.arange(len(labels)), labels] = 1.0
    for i in np.flatnonzero(soft):
        members = [POLES.index(pole) for pole in split_poles(poles[i])]
        targets[i] = 0.0
        targets[i, members] = 1.0 / len(members)
    return targets


def contradictory_texts(rows: pd.DataFrame) -> dict[str, int]:
    """Per simplex: distinct prompt texts (``normalise_text`` of ``text``) that carry two or more
    labels among ``rows``: the same input taught as two poles."""
    counts = {}
    for simplex, part in rows.groupby("simplex", sort=True):
        keys = part["text"].map(normalise_text)
        counts[simplex] = int((part.groupby(keys)["label"].nunique() > 1).sum())
    return counts


def overlap_counts(rows: pd.DataFrame) -> dict[str, int]:
    """Per simplex: rows whose synset applies to two or more poles."""
    overlap = rows["poles"].str.contains(SEPARATOR, regex=False)
    return {s: int(overlap[rows["simplex"] == s].sum()) for s in pd.unique(rows["simplex"])}
