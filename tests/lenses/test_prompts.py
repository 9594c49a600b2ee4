from __future__ import annotations

import pandas as pd
import pytest

from lensforge.core import paths
from lensforge.core.errors import DataError
from lensforge.core.params import PromptsParams, SplitParams
from lensforge.lenses import hatcat, prompts


def _params(**overrides) -> PromptsParams:
    values = dict(
        seed=0,
        per_synset=4,
        minority_boost=True,
        behavioral_ratio=0.6,
        include_experiential=True,
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
    kinds = prompts.kind_schedule(10, 0.6)
    for k in range(1, 11):
        assert kinds[:k].count("behavioral") == int(k * 0.6 + 1e-9)


def test_templates_fill_lemmas_with_spaces_and_lowered_definitions():
    definitional, behavioral = prompts.template_candidates(["wooden_passage"], "A State of calm.")
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
    assert [kind for kind, _ in first] == prompts.kind_schedule(20, 0.6)


def test_synset_prompts_refuse_a_synset_that_cannot_make_enough_distinct_prompts():
    with pytest.raises(DataError, match="enough distinct prompts"):
        prompts.synset_prompts(
            ["joy"], "delight", n_prompts=500, behavioral_ratio=0.6, seed=0, where="joy#0"
        )


def test_allocate_uses_largest_remainder_and_gives_every_split_a_group():
    assert prompts.allocate(13, (0.6, 0.2, 0.2)) == [8, 3, 2]
    assert prompts.allocate(87, (0.6, 0.2, 0.2)) == [52, 18, 17]
    assert prompts.allocate(3, (0.8, 0.1, 0.1)) == [1, 1, 1]
    assert prompts.allocate(2, (0.6, 0.2, 0.2)) == [1, 1, 0]


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


def test_real_pool_splits_taste_development_neutral_synsets_8_3_2(project_root):
    synsets = hatcat.synset_table(
        hatcat.load_synsets(project_root / paths.SYNSETS["imbalanced"]), ("taste_development",)
    )
    assert synsets.groupby("pole").size().to_dict() == {
        "negative": 87,
        "neutral": 13,
        "positive": 88,
    }
    pool = prompts.build_pool(synsets, _experiential("other", 0), _params(per_synset=8))
    neutral = pool[(pool["pole"] == "neutral")].groupby("split")["synset_key"].nunique()
    assert neutral.to_dict() == {"test": 2, "train": 8, "validation": 3}
    assert pool.groupby("group")["split"].nunique().max() == 1
