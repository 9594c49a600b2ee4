"""The prompt pool: definitional and behavioural templates per synset, plus experiential prompts,
and the grouped, pole-stratified split (pure; no file I/O).

Every synset entry gets a ranked list of prompts; "k prompts per synset" downstream means the rows
with ``rank < k``, so the balancing strategies select from one cached pool and never recompute an
activation. Prefixes of the ranked list keep ``behavioral_ratio`` (the S-tier training-strategy
note keeps a 60 / 40 behavioural / definitional mix).

No leakage by text: behavioural templates hold only a lemma, and synsets with different id head
words share lemmas, so within a simplex the split groups are connected components of shared
(normalised) lemmas and head words (``link_synset_groups``); experiential prompts sharing a text
are one group. ``build_pool`` then refuses any text found in two splits of one simplex.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lensforge.activations import cache
from lensforge.core import paths
from lensforge.core.params import PromptsParams
from lensforge.core.splits import (
    assign_sized_splits,
    check_disjoint_texts,
    cross_split_keys,
    link_groups,
    normalise_text,
    stable_seed,
)
from lensforge.core.templates import (
    BEHAVIORAL,
    DEFINITIONAL,
    STATE_TEMPLATES,
    normalise_lemma,
    ranked_prompts,
    shuffled,
    template_candidates,
)
from lensforge.lenses import overlap
from lensforge.lenses.hatcat import POLES


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
    definitional, behavioral = template_candidates(lemmas, definition, templates=STATE_TEMPLATES)
    rng = np.random.default_rng(seed)
    return ranked_prompts(
        [(DEFINITIONAL, text) for text in shuffled(definitional, rng)],
        [(BEHAVIORAL, text) for text in shuffled(behavioral, rng)],
        n_prompts=n_prompts,
        behavioral_ratio=behavioral_ratio,
        where=where,
        hint="lower prompts.per_synset or turn off prompts.minority_boost",
    )


def link_synset_groups(synsets: pd.DataFrame) -> pd.Series:
    """The split group of each synset row: within a simplex, rows linked by the id's head word
    (``synset_table``'s ``group``) or by any shared ``normalise_lemma`` form one group.

    Connected components, so a chain counts (disgust ~ revulsion ~ loathing): two synsets whose
    templates could write the same lemma never land in different splits. Each group is named
    after its alphabetically first head word; simplexes are linked apart, since each simplex's
    lenses are trained and scored on that simplex's rows alone.
    """
    groups = pd.Series(index=synsets.index, dtype=object)
    for _, part in synsets.groupby("simplex", sort=True):
        keys = [[normalise_lemma(lemma) for lemma in lemmas] for lemmas in part["lemmas"]]
        groups.loc[part.index] = link_groups(list(part["group"]), keys)
    return groups


def link_experiential_groups(experiential: pd.DataFrame) -> pd.Series:
    """The split group of each experiential prompt: ``experiential:<pole>:<position>``, with
    prompts of one simplex that share a ``normalise_text`` merged into one group."""
    names = "experiential:" + experiential["pole"] + ":" + experiential["position"].astype(str)
    groups = pd.Series(index=experiential.index, dtype=object)
    for _, part in experiential.groupby("simplex", sort=True):
        keys = [[normalise_text(text)] for text in part["text"]]
        groups.loc[part.index] = link_groups(list(names.loc[part.index]), keys)
    return groups


def split_sizes(members: pd.DataFrame) -> pd.DataFrame:
    """Members of each group per stratum, the input of ``assign_sized_splits`` for one simplex.

    ``members`` has columns pole, group, family (synset | experiential), one row per synset entry
    and pole (or experiential prompt). A stratum is ``<pole>/<family>``: the split then keeps each
    pole's synsets, and apart from them its experiential prompts, close to the split fractions,
    counting synsets rather than groups (linked groups range from 1 to 40 synsets).
    """
    strata = members["pole"] + "/" + members["family"]
    return pd.crosstab(members["group"], strata).sort_index(axis=1)


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
    config: PromptsParams,
) -> pd.DataFrame:
    """The ranked prompt pool of all selected simplexes (columns of ``POOL_COLUMNS``).

    ``synsets`` comes from ``hatcat.synset_table`` (simplex, pole, synset_key, group, lemmas,
    definition); ``experiential`` from ``hatcat.load_experiential`` (already filtered to the
    selected simplexes). The pool's ``group`` is the split group: ``link_synset_groups`` for
    synsets, ``link_experiential_groups`` for experiential prompts.

    Raises ``DataError`` (``check_pool_texts``) if a text still lands in two splits of a simplex.
    """
    synsets = synsets.assign(group=link_synset_groups(synsets))
    applies = synsets.groupby(["simplex", "synset_key"])["pole"].agg(overlap.join_poles)
    members = synsets[["simplex", "pole", "group"]].assign(family="synset")
    experiential = experiential.assign(group=link_experiential_groups(experiential))
    if config.include_experiential and not experiential.empty:
        exp = experiential.assign(family="experiential")
        members = pd.concat([members, exp[members.columns]], ignore_index=True)
    fractions = (config.split.train, config.split.validation, config.split.test)
    rows = []
    for simplex, simplex_members in members.groupby("simplex", sort=True):
        split_of = assign_sized_splits(
            split_sizes(simplex_members), fractions, seed=stable_seed(config.seed, simplex)
        )
        entries = synsets[synsets["simplex"] == simplex]
        train_counts = {
            pole: int(
                ((entries["pole"] == pole) & entries["group"].map(split_of).eq("train")).sum()
            )
            for pole in POLES
        }
        boosted = prompts_per_synset(
            train_counts, per_synset=config.per_synset, minority_boost=config.minority_boost
        )
        for entry in entries.itertuples(index=False):
            split = split_of[entry.group]
            n_prompts = boosted[entry.pole] if split == "train" else config.per_synset
            ranked = synset_prompts(
                entry.lemmas,
                entry.definition,
                n_prompts=n_prompts,
                behavioral_ratio=config.behavioral_ratio,
                seed=stable_seed(config.seed, simplex, entry.pole, entry.synset_key),
                where=f"{entry.synset_key} ({simplex}/{entry.pole})",
            )
            for rank, (kind, text) in enumerate(ranked):
                poles = applies[simplex, entry.synset_key]
                rows.append(
                    (
                        simplex,
                        entry.pole,
                        poles,
                        entry.synset_key,
                        entry.group,
                        kind,
                        split,
                        rank,
                        text,
                    )
                )
        if config.include_experiential:
            for item in experiential[experiential["simplex"] == simplex].itertuples(index=False):
                key = f"experiential:{item.pole}:{item.position}"
                split = split_of[item.group]
                rows.append(
                    (
                        simplex,
                        item.pole,
                        item.pole,
                        key,
                        item.group,
                        "experiential",
                        split,
                        0,
                        item.text,
                    )
                )
    pool = pd.DataFrame(
        rows,
        columns=[
            "simplex",
            "pole",
            "poles",
            "synset_key",
            "group",
            "kind",
            "split",
            "rank",
            "text",
        ],
    )
    pool.insert(2, "label", pool["pole"].map({pole: i for i, pole in enumerate(POLES)}))
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
    check_pool_texts(pool)
    return pool[POOL_COLUMNS]


def check_pool_texts(pool: pd.DataFrame) -> None:
    """Raise ``DataError`` naming the prompts when one text is in two splits of one simplex.

    Texts are compared as ``normalise_text`` keys (whitespace collapsed, casefolded). Experiential
    prompts count like template prompts. The file named is the pool the stage writes.
    """
    check_disjoint_texts(
        pool,
        text_column="text",
        id_column="prompt_id",
        file=str(paths.PROMPT_POOL),
        within="simplex",
    )


POOL_COLUMNS = cache.POOL_COLUMNS  # the pool is what the activation cache indexes


def pool_summary(pool: pd.DataFrame, synsets: pd.DataFrame) -> dict[str, int | float]:
    """Flat counts per simplex, split and pole (synsets, prompts) plus the leakage counts
    (``leakage_counts``) for metrics/prompts.json; ``synsets`` is the table the pool was built from.
    """
    summary: dict[str, int | float] = {"n_prompts": len(pool)}
    summary.update(leakage_counts(pool, synsets))
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


def leakage_counts(pool: pd.DataFrame, synsets: pd.DataFrame) -> dict[str, int]:
    """How much the splits of the pool share, within each simplex (both 0 for a leak-free pool).

    - ``cross_split_shared_lemmas``: distinct (simplex, ``normalise_lemma``) pairs whose lemma
      belongs to synsets (pool entries of that simplex) of more than one split;
    - ``cross_split_identical_texts``: distinct (simplex, ``normalise_text``) pairs whose text is a
      prompt (template or experiential) in more than one split.

    Within a simplex, because each simplex's lenses are trained and scored on its rows alone.
    """
    entries = pool[pool["kind"] != "experiential"].drop_duplicates(["simplex", "synset_key"])
    entry_ids = zip(entries["simplex"], entries["synset_key"], strict=True)
    split_of = dict(zip(entry_ids, entries["split"], strict=True))
    shared_lemmas = 0
    identical_texts = 0
    for simplex, part in synsets.groupby("simplex", sort=True):
        splits = [split_of[(simplex, key)] for key in part["synset_key"]]
        keys = [[normalise_lemma(lemma) for lemma in lemmas] for lemmas in part["lemmas"]]
        shared_lemmas += len(cross_split_keys(splits, keys))
    for _, part in pool.groupby("simplex", sort=True):
        keys = [[normalise_text(text)] for text in part["text"]]
        identical_texts += len(cross_split_keys(part["split"].tolist(), keys))
    return {
        "cross_split_shared_lemmas": shared_lemmas,
        "cross_split_identical_texts": identical_texts,
    }
