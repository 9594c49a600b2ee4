from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from lensforge.core import paths
from lensforge.core.errors import DataError
from lensforge.core.params import PromptsParams, SplitParams
from lensforge.core.templates import STATE_TEMPLATES, kind_schedule
from lensforge.lenses import hatcat, prompts


def _params(**overrides) -> PromptsParams:
    values = dict(
        seed=0,
        per_synset=4,
        minority_boost=True,
        behavioral_ratio=0.6,
        include_experiential=True,
        overlap="duplicate",
        overlap_primary="neutral",
        split=SplitParams(train=0.6, validation=0.2, test=0.2),
    )
    values.update(overrides)
    return PromptsParams(**values)


def _synsets(counts: dict[str, int], *, simplex: str = "taste") -> pd.DataFrame:
    rows = []
    for pole, n in counts.items():
        for i in range(n):
            rows.append(
                {
                    "simplex": simplex,
                    "pole": pole,
                    "synset_key": f"{pole}#{i}",
                    "group": f"{pole}word{i}",
                    "lemmas": [f"{pole}word{i}", f"{pole}term{i}"],
                    "definition": f"A feeling number {i} of the {pole} kind.",
                }
            )
    return pd.DataFrame(rows)


def _experiential(simplex: str = "taste", n: int = 5) -> pd.DataFrame:
    rows = [
        {"simplex": simplex, "pole": pole, "position": i, "text": f"I feel {pole} {i}"}
        for pole in ("negative", "neutral", "positive")
        for i in range(n)
    ]
    return pd.DataFrame(rows, columns=["simplex", "pole", "position", "text"])


def test_kind_schedule_keeps_the_behavioral_ratio_in_every_prefix():
    kinds = kind_schedule(10, 0.6)
    for k in range(1, 11):
        assert kinds[:k].count("behavioral") == int(k * 0.6 + 1e-9)


def test_templates_fill_lemmas_with_spaces_and_lowered_definitions():
    definitional, behavioral = prompts.template_candidates(
        ["wooden_passage"], "A State of calm.", templates=STATE_TEMPLATES
    )
    assert "wooden_passage" not in " ".join(definitional + behavioral)
    assert "wooden passage: a State of calm." in definitional
    assert "Describe a moment when a child felt wooden passage." in behavioral


def test_synset_prompts_are_distinct_ranked_and_deterministic_for_a_seed():
    first = prompts.synset_prompts(
        ["joy"], "delight", n_prompts=20, behavioral_ratio=0.6, seed=3, where="x"
    )
    again = prompts.synset_prompts(
        ["joy"], "delight", n_prompts=20, behavioral_ratio=0.6, seed=3, where="x"
    )
    other = prompts.synset_prompts(
        ["joy"], "delight", n_prompts=20, behavioral_ratio=0.6, seed=4, where="x"
    )
    assert first == again
    assert first != other
    assert len({text for _, text in first}) == 20
    assert [kind for kind, _ in first] == kind_schedule(20, 0.6)


def test_synset_prompts_refuse_a_synset_that_cannot_make_enough_distinct_prompts():
    with pytest.raises(DataError, match="enough distinct prompts"):
        prompts.synset_prompts(
            ["joy"], "delight", n_prompts=500, behavioral_ratio=0.6, seed=0, where="joy#0"
        )


def test_minority_boost_gives_neutral_enough_rows_for_median_target():
    per_pole = prompts.prompts_per_synset(
        {"negative": 87, "neutral": 13, "positive": 88}, per_synset=8, minority_boost=True
    )
    assert per_pole == {"negative": 9, "neutral": 55, "positive": 8}
    # median_target with base 5 needs ceil(87 * 5 / 13) = 34 neutral prompts per synset
    assert per_pole["neutral"] >= 34
    flat = prompts.prompts_per_synset(
        {"negative": 87, "neutral": 13}, per_synset=8, minority_boost=False
    )
    assert flat == {"negative": 8, "neutral": 8}


def test_pool_puts_every_group_in_exactly_one_split():
    synsets = _synsets({"negative": 20, "neutral": 5, "positive": 20})
    # two entries share a group (same head word) and two share a synset across poles
    synsets.loc[1, "group"] = synsets.loc[0, "group"]
    pool = prompts.build_pool(synsets, _experiential(), _params())
    assert pool.groupby("group")["split"].nunique().max() == 1
    assert pool.groupby("synset_key")["split"].nunique().max() == 1
    assert set(pool["split"]) == {"train", "validation", "test"}
    for split in ("train", "validation", "test"):
        assert set(pool[pool["split"] == split]["pole"]) == {"negative", "neutral", "positive"}


def test_pool_is_deterministic_per_seed_and_changes_with_it():
    synsets = _synsets({"negative": 20, "neutral": 5, "positive": 20})
    first = prompts.build_pool(synsets, _experiential(), _params(seed=1))
    again = prompts.build_pool(synsets, _experiential(), _params(seed=1))
    other = prompts.build_pool(synsets, _experiential(), _params(seed=2))
    pd.testing.assert_frame_equal(first, again)
    assert not first[["prompt_id", "split"]].equals(other[["prompt_id", "split"]])


def test_validation_and_test_synsets_get_per_synset_prompts_and_train_is_boosted():
    synsets = _synsets({"negative": 20, "neutral": 5, "positive": 20})
    pool = prompts.build_pool(synsets, _experiential(n=0), _params(per_synset=4))
    per_synset = pool.groupby(["split", "pole", "synset_key"]).size()
    assert set(per_synset.loc["validation"]) == {4}
    assert set(per_synset.loc["test"]) == {4}
    train = per_synset.loc["train"]
    assert set(train.loc["negative"]) == {4}
    assert min(train.loc["neutral"]) > 4
    rows = pool[pool["split"] == "train"].groupby("pole").size()
    assert rows["neutral"] >= 4 * max(
        pool[(pool["split"] == "train") & (pool["pole"] == p)]["synset_key"].nunique()
        for p in ("negative", "positive")
    )
    assert pool["prompt_id"].is_unique


def test_experiential_prompts_are_their_own_groups_with_rank_zero():
    pool = prompts.build_pool(
        _synsets({"negative": 6, "neutral": 6, "positive": 6}), _experiential(), _params()
    )
    exp = pool[pool["kind"] == "experiential"]
    assert len(exp) == 15
    assert (exp["rank"] == 0).all()
    assert exp["group"].is_unique
    without = prompts.build_pool(
        _synsets({"negative": 6, "neutral": 6, "positive": 6}),
        _experiential(),
        _params(include_experiential=False),
    )
    assert (without["kind"] != "experiential").all()


def test_real_pool_splits_taste_development_neutral_synsets_close_to_the_fractions(project_root):
    synsets = hatcat.synset_table(
        hatcat.load_synsets(project_root / paths.SYNSETS["imbalanced"]), ("taste_development",)
    )
    assert synsets.groupby("pole").size().to_dict() == {
        "negative": 87,
        "neutral": 13,
        "positive": 88,
    }
    pool = prompts.build_pool(synsets, _experiential("other", 0), _params(per_synset=8))
    per_split = pool.groupby(["pole", "split"])["synset_key"].nunique()
    # 13 neutral synsets at 60 / 20 / 20 would be 7.8 / 2.6 / 2.6
    assert per_split.loc["neutral"].sum() == 13
    assert 7 <= per_split.loc["neutral", "train"] <= 9
    assert min(per_split.loc["neutral", "validation"], per_split.loc["neutral", "test"]) >= 2
    # 87 negative synsets, in linked groups of up to 40: still within 3 of 52.2 / 17.4 / 17.4
    for split, expected in (("train", 52.2), ("validation", 17.4), ("test", 17.4)):
        assert abs(per_split.loc["negative", split] - expected) <= 3
    assert pool.groupby("group")["split"].nunique().max() == 1


def _entry(key, group, lemmas, pole="negative", simplex="taste"):
    return {
        "simplex": simplex,
        "pole": pole,
        "synset_key": key,
        "group": group,
        "lemmas": lemmas,
        "definition": f"the feeling called {key}",
    }


def test_synsets_with_different_head_words_that_share_a_lemma_are_one_group():
    synsets = pd.DataFrame(
        [
            _entry("a#0", "anxiety", ["anxiety", "nervousness"]),
            _entry("a#1", "jitters", ["jitters", "Nervousness"]),  # case differs
            _entry("a#2", "unease", ["unease", "the_jitters", "jitters"]),  # via a chain
            _entry("a#3", "calm", ["calm"]),
            _entry("b#0", "worry", ["worry", "nervousness"], simplex="threat"),
        ]
    )
    groups = prompts.link_synset_groups(synsets).tolist()
    assert groups == ["anxiety", "anxiety", "anxiety", "calm", "worry"]


def test_two_head_words_sharing_a_lemma_land_in_one_split_for_every_seed():
    synsets = _synsets({"negative": 12, "neutral": 6, "positive": 12})
    # nervousness is a lemma of a negative and of a neutral synset with other head words
    synsets.at[0, "lemmas"] = ["negativeword0", "nervousness"]
    synsets.at[12, "lemmas"] = ["neutralword0", "nervousness"]
    shared = {synsets.at[0, "synset_key"], synsets.at[12, "synset_key"]}
    for seed in range(8):
        pool = prompts.build_pool(synsets, _experiential(), _params(seed=seed))
        assert pool[pool["synset_key"].isin(shared)]["split"].nunique() == 1
        assert pool[pool["synset_key"].isin(shared)]["group"].nunique() == 1
        assert prompts.leakage_counts(pool, synsets) == {
            "cross_split_shared_lemmas": 0,
            "cross_split_identical_texts": 0,
        }


def test_experiential_prompts_with_one_text_are_one_group():
    experiential = _experiential(n=6)
    experiential.loc[experiential["pole"] == "positive", "text"] = "I  feel fine"
    experiential.loc[0, "text"] = "i feel FINE"
    groups = prompts.link_experiential_groups(experiential)
    linked = groups[experiential["pole"].eq("positive") | (experiential.index == 0)]
    assert set(linked) == {"experiential:negative:0"}
    assert groups.nunique() == len(experiential) - len(linked) + 1
    pool = prompts.build_pool(
        _synsets({"negative": 6, "neutral": 6, "positive": 6}), experiential, _params()
    )
    exp = pool[pool["kind"] == "experiential"]
    assert exp[exp["text"].str.casefold().str.contains("fine")]["split"].nunique() == 1


def test_build_pool_refuses_a_text_in_two_splits_even_without_a_shared_lemma(monkeypatch):
    # templates that ignore the lemma make every synset's behavioural prompts identical
    lemma_free = dataclasses.replace(
        STATE_TEMPLATES, behavioral=("Describe {who}.", "Watch {who}.")
    )
    monkeypatch.setattr(prompts, "STATE_TEMPLATES", lemma_free)
    synsets = _synsets({"negative": 10, "neutral": 10, "positive": 10})
    with pytest.raises(DataError) as caught:
        prompts.build_pool(synsets, _experiential(n=0), _params(per_synset=4))
    assert caught.value.rule == "no text in two splits"
    assert caught.value.path == str(paths.PROMPT_POOL)
    assert caught.value.row.startswith("taste|")


def test_leakage_counts_count_lemmas_and_texts_shared_by_splits_within_a_simplex():
    synsets = pd.DataFrame(
        [
            _entry("s1", "joy", ["joy", "Glee"]),
            _entry("s2", "glee", ["glee"]),
            _entry("s3", "delight", ["joy", "delight"]),
            _entry("s4", "mirth", ["mirth"]),
            _entry("s5", "joy", ["joy"], simplex="threat"),
        ]
    )
    rows = [
        ("taste", "s1", "train", "Joy  is here."),
        ("taste", "s2", "test", "joy is HERE."),
        ("taste", "s3", "test", "Delight."),
        ("taste", "s4", "test", "Mirth."),
        ("taste", "s4", "validation", "Mirth."),
        ("threat", "s5", "train", "Delight."),
    ]
    pool = pd.DataFrame(rows, columns=["simplex", "synset_key", "split", "text"]).assign(
        kind="behavioral"
    )
    # (taste, joy) and (taste, glee) straddle splits; (threat, joy) is another simplex
    # "joy is here." and "mirth." straddle splits in taste; "delight." only across simplexes
    assert prompts.leakage_counts(pool, synsets) == {
        "cross_split_shared_lemmas": 2,
        "cross_split_identical_texts": 2,
    }


def test_pool_summary_reports_zero_leakage_for_a_built_pool():
    synsets = _synsets({"negative": 10, "neutral": 5, "positive": 10})
    pool = prompts.build_pool(synsets, _experiential(), _params())
    summary = prompts.pool_summary(pool, synsets)
    assert summary["cross_split_shared_lemmas"] == 0
    assert summary["cross_split_identical_texts"] == 0
    assert summary["n_prompts"] == len(pool)
    assert summary["taste/test/neutral/n_synsets"] >= 1
