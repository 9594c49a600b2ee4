"""Each concept lens's rows in the concept activation cache: its own prompts (label 1) and its
negatives (label 0) per split, as the index tensors ``graduation`` and evaluation take.

One cached vector serves every lens: a row's label for a lens is whether its prompt belongs to
the lens's concept. The negatives of a split come from ``concept_negatives`` (siblings as hard
negatives, random other concepts at a ratio); for graduation's growing prefixes they are
interleaved (sibling, random, sibling, ...), so every sample count holds both kinds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pandas as pd
import torch

from lensforge.concepts import graduation, training
from lensforge.core.errors import DataError
from lensforge.core.splits import stable_seed


def _interleave(first: list[int], second: list[int]) -> list[int]:
    pairs = itertools.zip_longest(first, second)
    return [row for pair in pairs for row in pair if row is not None]


def split_rows(
    index: pd.DataFrame, negatives: pd.DataFrame, concepts: Sequence[str], *, split: str
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per concept (in ``concepts`` order): the cache rows of its own prompts in ``split`` and of
    its negatives there (siblings and random interleaved). ``index`` is the cache index (its
    position is the row of the vector matrix); raises ``DataError`` for a negative that is not
    in the cache."""
    position = pd.Series(range(len(index)), index=index["prompt_id"].to_numpy())
    in_split = index[index["split"] == split]
    own = in_split.groupby("concept", sort=False)["prompt_id"].agg(list).to_dict()
    chosen = negatives[negatives["split"] == split]
    unknown = sorted(set(chosen["prompt_id"]) - set(position.index))
    if unknown:
        raise DataError(
            f"{len(unknown)} negatives are not in the activation cache, e.g. {unknown[0]!r}",
            row=unknown[0],
            rule="negatives come from the cached pool",
        )
    kinds = chosen.groupby(["concept", "negative"], sort=False)["prompt_id"].agg(list).to_dict()
    positives, negs = [], []
    for concept in concepts:
        positives.append(torch.tensor(position[own.get(concept, [])].to_numpy(), dtype=torch.long))
        sibling = position[kinds.get((concept, "sibling"), [])].tolist()
        random = position[kinds.get((concept, "random"), [])].tolist()
        negs.append(torch.tensor(_interleave(sibling, random), dtype=torch.long))
    return positives, negs


def train_pool(
    index: pd.DataFrame, negatives: pd.DataFrame, concepts: Sequence[str]
) -> graduation.Pool:
    """The training candidates of every lens (train split only)."""
    positives, negs = split_rows(index, negatives, concepts, split="train")
    return graduation.Pool.from_lists(positives, negs)


def labelled_rows(
    index: pd.DataFrame,
    negatives: pd.DataFrame,
    concepts: Sequence[str],
    *,
    split: str,
    negative_ratio: float | None = None,
) -> training.LensRows:
    """Every lens's rows of ``split`` with labels: own prompts 1, negatives 0. With
    ``negative_ratio``, a lens keeps the first ``ceil(ratio x own prompts)`` of its negatives
    (siblings and random interleaved), so its F1 is not set by how many siblings it has."""
    positives, negs = split_rows(index, negatives, concepts, split=split)
    if negative_ratio is not None:
        negs = [
            n[: math.ceil(negative_ratio * len(p))] for p, n in zip(positives, negs, strict=True)
        ]
    rows = [torch.cat([p, n]) for p, n in zip(positives, negs, strict=True)]
    labels = [
        torch.cat([torch.ones(len(p)), torch.zeros(len(n))])
        for p, n in zip(positives, negs, strict=True)
    ]
    return training.LensRows.from_lists(rows, labels)


def concept_seeds(concepts: Sequence[str]) -> torch.Tensor:
    """(n,) per-concept seeds from the names alone, so a concept's linear lens does not change
    when other concepts join or leave the trained set (an MLP's dropout masks are drawn per
    program, so its lenses do)."""
    return torch.tensor([stable_seed(name) & 0xFFFFFFFF for name in concepts], dtype=torch.long)
