"""The prompt pool: definitional and behavioural templates per synset, plus experiential prompts,
and the grouped, pole-stratified split (pure; no file I/O).

Every synset entry gets a ranked list of prompts; "k prompts per synset" downstream means the rows
with ``rank < k``, so the balancing strategies select from one cached pool and never recompute an
activation. Prefixes of the ranked list keep ``behavioral_ratio`` (seed 001: 60 % behavioural).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lensforge.core.errors import DataError
from lensforge.core.params import PromptsParams
from lensforge.core.splits import assign_splits, stable_seed
from lensforge.lenses.hatcat import POLES

# {lemma} is one of the synset's lemmas; {definition} its definition, first letter lowered.
DEFINITIONAL_TEMPLATES = (
    "{lemma}: {definition}.",
    "The word '{lemma}' means {definition}.",
    "What is {lemma}? It is {definition}.",
    "{frame}, {lemma} refers to {definition}.",
    "{frame}, the term {lemma} names {definition}.",
    "Define {lemma}. Answer: {definition}.",
    "A short entry for '{lemma}': {definition}.",
    "Explain the concept of {lemma}: {definition}.",
    "{frame}, people use '{lemma}' for {definition}.",
    "Concept: {lemma}. Meaning: {definition}.",
)
DEFINITIONAL_FRAMES = (
    "In psychology",
    "In everyday language",
    "In a dictionary",
    "In plain words",
    "Put simply",
    "Strictly speaking",
)

BEHAVIORAL_TEMPLATES = (
    "Describe a moment when {who} felt {lemma}.",
    "Write one sentence in which {who} shows {lemma}.",
    "How does {who} behave when experiencing {lemma}?",
    "What would you notice if {who} were full of {lemma}?",
    "Tell a short story about {who} acting out of {lemma}.",
    "Describe the body language of {who} in a state of {lemma}.",
    "How might {lemma} change the choices {who} makes?",
    "Imagine {who} overwhelmed by {lemma}. What happens next?",
    "Give an everyday example of {lemma} in {who}.",
    "Write a diary line by {who} about {lemma}.",
    "What does {lemma} sound like when {who} speaks?",
    "Show {lemma} through what {who} does, not what they say.",
)
BEHAVIORAL_WHO = (
    "someone",
    "a close friend",
    "a stranger",
    "a child",
    "a colleague",
    "an old man",
    "a young woman",
    "a teacher",
    "a neighbour",
    "a nurse",
)


def _clean_lemma(lemma: str) -> str:
    return " ".join(lemma.replace("_", " ").split())


def _clean_definition(definition: str) -> str:
    text = " ".join(definition.split()).rstrip(".;: ")
    return text[:1].lower() + text[1:] if text else text


def template_candidates(lemmas: Sequence[str], definition: str) -> tuple[list[str], list[str]]:
    """All distinct (definitional, behavioural) prompts a synset's templates can make, sorted."""
    words = sorted({_clean_lemma(lemma) for lemma in lemmas if _clean_lemma(lemma)})
    meaning = _clean_definition(definition)
    definitional = {
        template.format(lemma=lemma, definition=meaning, frame=frame)
        for template, lemma, frame in itertools.product(
            DEFINITIONAL_TEMPLATES, words, DEFINITIONAL_FRAMES
        )
    }
    behavioral = {
        template.format(lemma=lemma, who=who)
        for template, lemma, who in itertools.product(BEHAVIORAL_TEMPLATES, words, BEHAVIORAL_WHO)
    }
    return sorted(definitional), sorted(behavioral)


def kind_schedule(n_prompts: int, behavioral_ratio: float) -> list[str]:
    """Kinds for ranks 0..n-1 such that every prefix holds round-down ``behavioral_ratio`` behavioural.

    >>> kind_schedule(5, 0.6)
    ['definitional', 'behavioral', 'definitional', 'behavioral', 'behavioral']
    """
    kinds = []
    for rank in range(n_prompts):
        new_behavioral = math.floor((rank + 1) * behavioral_ratio + 1e-9) > math.floor(
            rank * behavioral_ratio + 1e-9
        )
        kinds.append("behavioral" if new_behavioral else "definitional")
    return kinds


def synset_prompts(
    lemmas: Sequence[str],
    definition: str,
    *,
    n_prompts: int,
    behavioral_ratio: float,
    seed: int,
    where: str,
) -> list[tuple[str, str]]:
    """``n_prompts`` distinct (kind, text) pairs for one synset, ranked, deterministic for ``seed``.

    Raises ``DataError`` naming the synset if its lemmas cannot make enough distinct prompts.
    """
    definitional, behavioral = template_candidates(lemmas, definition)
    kinds = kind_schedule(n_prompts, behavioral_ratio)
    rng = np.random.default_rng(seed)
    pools = {
        "definitional": [definitional[i] for i in rng.permutation(len(definitional))],
        "behavioral": [behavioral[i] for i in rng.permutation(len(behavioral))],
    }
    for kind, pool in pools.items():
        needed = kinds.count(kind)
        if needed > len(pool):
            raise DataError(
                f"synset can make only {len(pool)} distinct {kind} prompts, {needed} are needed "
                "(lower prompts.per_synset or turn off prompts.minority_boost)",
                row=where,
                rule="enough distinct prompts",
            )
    taken = {"definitional": 0, "behavioral": 0}
    ranked = []
    for kind in kinds:
        ranked.append((kind, pools[kind][taken[kind]]))
        taken[kind] += 1
    return ranked


def split_strata(members: pd.DataFrame) -> pd.DataFrame:
    """One row per group with its stratum: its family and its rarest pole within its simplex.

    ``members`` has columns simplex, pole, group, family (synset | experiential). Stratifying by
    the rarest pole keeps the minority pole (neutral, 13 synsets in taste_development) present in
    every split; synsets and experiential prompts are stratified apart so each splits by fraction.
    """
    synset_members = members[members["family"] == "synset"]
    pole_sizes = synset_members.groupby(["simplex", "pole"]).size()
    rarity = members.apply(lambda r: pole_sizes.get((r["simplex"], r["pole"]), 0), axis=1)
    ranked = members.assign(rarity=rarity.to_numpy()).sort_values(["rarity", "pole"])
    first = ranked.drop_duplicates(["simplex", "group"], keep="first")
    return pd.DataFrame(
        {
            "simplex": first["simplex"],
            "group": first["group"],
            "stratum": first["simplex"] + "/" + first["pole"] + "/" + first["family"],
        }
    ).reset_index(drop=True)


def prompts_per_synset(
    train_synsets: dict[str, int], *, per_synset: int, minority_boost: bool
) -> dict[str, int]:
    """Train prompts per synset for each pole.

    With ``minority_boost`` a pole with fewer synsets gets proportionally more prompts, so every
    pole's train pool holds at least ``per_synset`` x (largest pole's synset count) rows: enough for
    ``median_target`` with any base_prompts <= per_synset (taste_development, all synsets, base 5:
    neutral needs ceil(87 x 5 / 13) = 34; the pool offers ceil(88 x 8 / 13) = 55).
    """
    if not minority_boost:
        return dict.fromkeys(train_synsets, per_synset)
    largest = max(train_synsets.values())
    return {
        pole: math.ceil(per_synset * largest / count) if count else per_synset
        for pole, count in train_synsets.items()
    }


def build_pool(
    synsets: pd.DataFrame,
    experiential: pd.DataFrame,
    params: PromptsParams,
) -> pd.DataFrame:
    """The ranked prompt pool of all selected simplexes (columns of ``POOL_COLUMNS``).

    ``synsets`` comes from ``hatcat.synset_table`` (simplex, pole, synset_key, group, lemmas,
    definition); ``experiential`` from ``hatcat.load_experiential`` (already filtered to the
    selected simplexes). Each experiential prompt is its own group of one prompt.
    """
    members = synsets[["simplex", "pole", "group"]].assign(family="synset")
    if params.include_experiential and not experiential.empty:
        exp = experiential.assign(
            group="experiential:"
            + experiential["pole"]
            + ":"
            + experiential["position"].astype(str),
            family="experiential",
        )
        members = pd.concat([members, exp[members.columns]], ignore_index=True)
    fractions = (params.split.train, params.split.validation, params.split.test)
    rows = []
    for simplex, simplex_members in members.groupby("simplex", sort=True):
        strata = split_strata(simplex_members)
        split_of = assign_splits(strata, fractions, seed=stable_seed(params.seed, simplex))
        entries = synsets[synsets["simplex"] == simplex]
        train_counts = {
            pole: int(
                ((entries["pole"] == pole) & entries["group"].map(split_of).eq("train")).sum()
            )
            for pole in POLES
        }
        boosted = prompts_per_synset(
            train_counts, per_synset=params.per_synset, minority_boost=params.minority_boost
        )
        for entry in entries.itertuples(index=False):
            split = split_of[entry.group]
            n_prompts = boosted[entry.pole] if split == "train" else params.per_synset
            ranked = synset_prompts(
                entry.lemmas,
                entry.definition,
                n_prompts=n_prompts,
                behavioral_ratio=params.behavioral_ratio,
                seed=stable_seed(params.seed, simplex, entry.pole, entry.synset_key),
                where=f"{entry.synset_key} ({simplex}/{entry.pole})",
            )
            for rank, (kind, text) in enumerate(ranked):
                rows.append(
                    (simplex, entry.pole, entry.synset_key, entry.group, kind, split, rank, text)
                )
        if params.include_experiential:
            for item in experiential[experiential["simplex"] == simplex].itertuples(index=False):
                group = f"experiential:{item.pole}:{item.position}"
                rows.append(
                    (
                        simplex,
                        item.pole,
                        group,
                        group,
                        "experiential",
                        split_of[group],
                        0,
                        item.text,
                    )
                )
    pool = pd.DataFrame(
        rows, columns=["simplex", "pole", "synset_key", "group", "kind", "split", "rank", "text"]
    )
    pool.insert(1, "label", pool["pole"].map({pole: i for i, pole in enumerate(POLES)}))
    pool.insert(
        0,
        "prompt_id",
        pool["simplex"]
        + "|"
        + pool["pole"]
        + "|"
        + pool["synset_key"]
        + "|"
        + pool["rank"].astype(str),
    )
    return pool[POOL_COLUMNS]


POOL_COLUMNS = [
    "prompt_id",
    "simplex",
    "pole",
    "label",
    "synset_key",
    "group",
    "kind",
    "split",
    "rank",
    "text",
]


def pool_summary(pool: pd.DataFrame) -> dict[str, int | float]:
    """Flat counts per simplex, split and pole (synsets, prompts) for metrics/prompts.json."""
    summary: dict[str, int | float] = {"n_prompts": len(pool)}
    synset_rows = pool[pool["kind"] != "experiential"]
    for (simplex, split, pole), part in pool.groupby(["simplex", "split", "pole"], sort=True):
        key = f"{simplex}/{split}/{pole}"
        summary[f"{key}/n_prompts"] = len(part)
        summary[f"{key}/n_synsets"] = int(
            synset_rows[
                (synset_rows["simplex"] == simplex)
                & (synset_rows["split"] == split)
                & (synset_rows["pole"] == pole)
            ]["synset_key"].nunique()
        )
    return summary
