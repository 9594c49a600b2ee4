from __future__ import annotations

import pandas as pd
import pytest

from lensforge.core import splits
from lensforge.core.errors import DataError


def test_stable_seed_is_the_same_for_the_same_parts_and_differs_otherwise():
    assert splits.stable_seed(0, "taste") == splits.stable_seed(0, "taste")
    assert splits.stable_seed(0, "taste") != splits.stable_seed(1, "taste")
    assert splits.stable_seed(0, "taste") != splits.stable_seed(0, "threat")


def test_allocate_uses_largest_remainder_and_gives_every_split_a_group():
    assert splits.allocate(13, (0.6, 0.2, 0.2)) == [8, 3, 2]
    assert splits.allocate(87, (0.6, 0.2, 0.2)) == [52, 18, 17]
    assert splits.allocate(3, (0.8, 0.1, 0.1)) == [1, 1, 1]
    assert splits.allocate(2, (0.6, 0.2, 0.2)) == [1, 1, 0]


def test_assign_splits_maps_every_group_once_stratified_and_deterministic():
    groups = pd.DataFrame(
        {
            "group": [f"g{i}" for i in range(20)],
            "stratum": ["common"] * 15 + ["rare"] * 5,
        }
    )
    first = splits.assign_splits(groups, (0.6, 0.2, 0.2), seed=3)
    assert first == splits.assign_splits(groups, (0.6, 0.2, 0.2), seed=3)
    assert set(first) == set(groups["group"])
    rare = [first[g] for g in groups.loc[groups["stratum"] == "rare", "group"]]
    assert sorted(rare) == ["test", "train", "train", "train", "validation"]


def test_link_groups_merges_chains_of_shared_keys_and_names_them_after_the_smallest_member():
    names = ["fear", "dread", "terror", "joy", "joy", "calm"]
    keys = [["fear", "dread"], ["dread"], ["terror", "fear"], ["joy"], ["delight"], ["calm"]]
    assert splits.link_groups(names, keys) == ["dread", "dread", "dread", "joy", "joy", "calm"]


def test_link_groups_does_not_link_a_name_to_an_equal_key_of_another_row():
    # names and keys live apart: a head word "joy" is not the lemma "joy" of another row
    assert splits.link_groups(["joy", "glee"], [["delight"], ["joy"]]) == ["joy", "glee"]


def test_cross_split_keys_lists_keys_found_in_more_than_one_split():
    shared = splits.cross_split_keys(
        ["train", "train", "test", "validation"],
        [["joy", "glee"], ["glee"], ["joy"], ["calm"]],
    )
    assert shared == {"joy"}
    assert splits.cross_split_keys(["train", "test"], [["a"], ["b"]]) == set()


def test_normalise_text_collapses_whitespace_strips_and_casefolds():
    assert splits.normalise_text("  Joy \t is\nHERE ") == "joy is here"
    assert splits.normalise_text("STRASSE") == splits.normalise_text("straße")


def _frame(rows):
    return pd.DataFrame(rows, columns=["prompt_id", "simplex", "split", "text"])


def test_check_disjoint_texts_raises_naming_file_row_and_rule_for_a_normalised_match():
    frame = _frame(
        [
            ("p0", "taste", "train", "Show joy through what a nurse does."),
            ("p1", "taste", "test", "show  JOY through what a nurse does. "),
            ("p2", "taste", "test", "Something else."),
        ]
    )
    with pytest.raises(DataError) as caught:
        splits.check_disjoint_texts(
            frame, text_column="text", id_column="prompt_id", file="data/prompts/pool.csv"
        )
    error = caught.value
    assert error.path == "data/prompts/pool.csv"
    assert error.row == "p0"
    assert error.rule == "no text in two splits"
    assert "p0 (train)" in error.message and "p1 (test)" in error.message


def test_check_disjoint_texts_passes_same_split_duplicates_and_respects_within():
    frame = _frame(
        [
            ("p0", "taste", "train", "Joy."),
            ("p1", "taste", "train", "joy."),
            ("p2", "threat", "test", "Joy."),
        ]
    )
    splits.check_disjoint_texts(
        frame, text_column="text", id_column="prompt_id", file="pool.csv", within="simplex"
    )
    with pytest.raises(DataError, match="no text in two splits"):
        splits.check_disjoint_texts(frame, text_column="text", id_column="prompt_id", file="x")


def test_assign_sized_splits_counts_members_so_a_giant_group_goes_to_train():
    # one group of 30 negatives and 20 single negatives: 50 members, targets 30 / 10 / 10
    sizes = pd.DataFrame(
        {"negative": [30] + [1] * 20}, index=["giant"] + [f"s{i:02d}" for i in range(20)]
    )
    assignment = splits.assign_sized_splits(sizes, (0.6, 0.2, 0.2), seed=0)
    assert assignment["giant"] == "train"
    filled = sizes["negative"].groupby(pd.Series(assignment)).sum().to_dict()
    assert filled == {"train": 30, "validation": 10, "test": 10}


def test_assign_sized_splits_puts_a_stratum_with_three_groups_in_every_split():
    # the rare stratum has three groups; two of them also hold many common members
    sizes = pd.DataFrame(
        {
            "common": [25, 24] + [1] * 31 + [0],
            "rare": [2, 3] + [0] * 31 + [1],
        },
        index=["big1", "big2"] + [f"c{i:02d}" for i in range(31)] + ["lone"],
    )
    for seed in range(5):
        assignment = pd.Series(splits.assign_sized_splits(sizes, (0.6, 0.2, 0.2), seed=seed))
        per_split = sizes.groupby(assignment).sum()
        assert (per_split["rare"] > 0).all(), (seed, per_split)
        assert set(assignment) == {"train", "validation", "test"}
        assert len(assignment) == len(sizes)


def test_assign_sized_splits_is_deterministic_per_seed_and_changes_with_it():
    sizes = pd.DataFrame({"a": [1] * 30, "b": [0, 1] * 15}, index=[f"g{i:02d}" for i in range(30)])
    first = splits.assign_sized_splits(sizes, (0.6, 0.2, 0.2), seed=1)
    assert first == splits.assign_sized_splits(sizes, (0.6, 0.2, 0.2), seed=1)
    assert first != splits.assign_sized_splits(sizes, (0.6, 0.2, 0.2), seed=2)
    counts = pd.Series(first).value_counts().to_dict()
    assert counts == {"train": 18, "validation": 6, "test": 6}
