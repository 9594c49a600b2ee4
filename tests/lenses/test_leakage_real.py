"""No leakage between splits on the real HatCat files with the project's params.yaml.

The pool is built for both synset files; the lemma and text checks below are computed here from
the synset table and the pool, independently of ``prompts.leakage_counts`` (which must agree).
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from lensforge.core import params as params_module
from lensforge.core import paths
from lensforge.core.splits import SPLITS
from lensforge.lenses import hatcat, prompts
from lensforge.lenses.hatcat import POLES


@pytest.fixture(scope="module", params=["imbalanced", "enriched"])
def real_pool(request, project_root) -> tuple[pd.DataFrame, pd.DataFrame, object]:
    params = params_module.load(project_root / paths.PARAMS)
    data = dataclasses.replace(params.data, synsets=request.param)
    synsets = hatcat.synset_table(
        hatcat.load_synsets(project_root / paths.SYNSETS[data.synsets]), data.simplexes
    )
    experiential = hatcat.load_experiential(project_root / paths.EXPERIENTIAL_PROMPTS)
    experiential = experiential[experiential["simplex"].isin(data.simplexes)]
    return synsets, prompts.build_pool(synsets, experiential, params.prompts), data


def _splits_by_key(pairs) -> dict[object, set[str]]:
    seen: dict[object, set[str]] = {}
    for key, split in pairs:
        seen.setdefault(key, set()).add(split)
    return seen


def test_real_head_words_share_lemmas_so_head_word_groups_alone_would_leak(real_pool):
    synsets, _, _ = real_pool
    heads = _splits_by_key(
        ((row.simplex, " ".join(lemma.replace("_", " ").split()).lower()), row.group)
        for row in synsets.itertuples()
        for lemma in row.lemmas
    )
    assert sum(len(groups) > 1 for groups in heads.values()) > 100


def test_no_lemma_of_a_simplex_belongs_to_synsets_of_two_splits(real_pool):
    synsets, pool, _ = real_pool
    keys = zip(pool["simplex"], pool["synset_key"], strict=True)
    split_of = dict(zip(keys, pool["split"], strict=True))
    where = _splits_by_key(
        (
            (row.simplex, " ".join(lemma.replace("_", " ").split()).lower()),
            split_of[(row.simplex, row.synset_key)],
        )
        for row in synsets.itertuples()
        for lemma in row.lemmas
    )
    straddling = {key: s for key, s in where.items() if len(s) > 1}
    assert straddling == {}


def test_no_prompt_text_of_a_simplex_is_in_two_splits(real_pool):
    _, pool, _ = real_pool
    assert set(pool["kind"]) == {"definitional", "behavioral", "experiential"}
    where = _splits_by_key(
        ((simplex, " ".join(text.split()).casefold()), split)
        for simplex, text, split in zip(pool["simplex"], pool["text"], pool["split"], strict=True)
    )
    assert {key: s for key, s in where.items() if len(s) > 1} == {}


def test_leakage_counts_are_zero_on_the_real_pool(real_pool):
    synsets, pool, _ = real_pool
    assert prompts.leakage_counts(pool, synsets) == {
        "cross_split_shared_lemmas": 0,
        "cross_split_identical_texts": 0,
    }


def test_every_pole_of_every_selected_simplex_has_synsets_in_every_split(real_pool):
    _, pool, data = real_pool
    templates = pool[pool["kind"] != "experiential"]
    counts = templates.groupby(["simplex", "pole", "split"])["synset_key"].nunique()
    for simplex in data.simplexes:
        for pole in POLES:
            for split in SPLITS:
                assert counts.get((simplex, pole, split), 0) > 0, (simplex, pole, split)


def test_every_pool_row_names_its_applicable_poles_as_the_file_does(real_pool):
    synsets, pool, _ = real_pool
    applies = synsets.groupby(["simplex", "synset_key"])["pole"].agg(lambda s: set(s.tolist()))
    templates = pool[pool["kind"] != "experiential"]
    for row in templates.drop_duplicates(["simplex", "synset_key", "pole"]).itertuples():
        assert set(row.poles.split("+")) == applies[row.simplex, row.synset_key], row.prompt_id
    # each default simplex has 13 overlap entries (neutral + a polar pole) in both files
    entries = templates.drop_duplicates(["simplex", "synset_key"])
    overlap = entries[entries["poles"].str.contains("+", regex=False)]
    assert overlap.groupby("simplex").size().tolist() == [12, 13, 13]
    assert set(overlap["poles"]) == {"negative+neutral", "neutral+positive"}
    experiential = pool[pool["kind"] == "experiential"]
    assert (experiential["poles"] == experiential["pole"]).all()
