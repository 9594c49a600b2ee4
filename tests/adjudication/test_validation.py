"""Great Expectations rules on the adjudication inputs name the file, the row and the rule."""

from __future__ import annotations

import pandas as pd

from lensforge.adjudication import validation as va


def _items(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "domain", "group", "source_label", "text"])


def _ratings(counts: dict[str, int], *, score: int = 1) -> pd.DataFrame:
    rows = [(item, r, score) for item, n in counts.items() for r in range(n)]
    return pd.DataFrame(rows, columns=["item_id", "rater", "score"])


GOOD_ITEMS = [
    ("tweets:1", "tweets", "tweets:1", "", "a fine tweet"),
    ("debates:1", "debates", "debates:1", "Moderator", "next question please"),
]


def _failures(items, ratings) -> set[tuple[str, str, str]]:
    report = va.validate_raw(
        items,
        ratings,
        items_file="items.csv",
        ratings_file="ratings.csv",
        min_chars=5,
        max_chars=40,
        min_raters=3,
    )
    return {(f.file, f.row, f.rule) for f in report.failures}


def test_clean_inputs_pass():
    assert _failures(_items(GOOD_ITEMS), _ratings({"tweets:1": 3})) == set()


def test_item_rules_name_each_bad_row():
    items = _items(
        GOOD_ITEMS
        + [
            ("tweets:1", "tweets", "g", "", "a duplicated id"),
            ("blogs:1", "blogs", "g", "", "an unknown domain"),
            ("tweets:2", "tweets", "g", "", "hi"),
            ("debates:2", "debates", "g", "Green", "an unmapped party label"),
            ("tweets:3", "tweets", "g", "fresh", "a rated item with a label"),
        ]
    )
    ratings = _ratings({"tweets:1": 3, "tweets:2": 3, "tweets:3": 3})
    failures = _failures(items, ratings)
    assert ("items.csv", "tweets:1", "item_id unique") in failures
    assert ("items.csv", "blogs:1", "domain known") in failures
    assert ("items.csv", "tweets:2", "text length") in failures
    assert ("items.csv", "debates:2", "polarization mapping") in failures
    assert ("items.csv", "tweets:3", "polarization mapping") in failures


def test_rating_rules_check_range_rated_items_and_raters_per_item():
    ratings = pd.concat(
        [
            _ratings({"tweets:1": 2}),  # too few raters
            _ratings({"debates:1": 1}),  # a source-labelled item with a rating
            pd.DataFrame([("tweets:1", 2, -5)], columns=["item_id", "rater", "score"]),
        ],
        ignore_index=True,
    )
    failures = _failures(_items(GOOD_ITEMS), ratings)
    assert ("ratings.csv", "tweets:1#2", "score range") in failures
    assert ("ratings.csv", "debates:1#0", "rated item") in failures
    assert ("ratings.csv", "debates:1", "unrated domain") in failures
    tweets = _failures(_items(GOOD_ITEMS), _ratings({"tweets:1": 2}))
    assert tweets == {("ratings.csv", "tweets:1", "min raters")}


def test_a_wrong_schema_is_one_failure_not_a_crash():
    items = _items(GOOD_ITEMS).rename(columns={"text": "body"})
    failures = _failures(items, _ratings({"tweets:1": 3}))
    assert ("items.csv", "*", "schema") in failures


def test_class_minimums_name_the_task_and_class():
    labelled = pd.DataFrame(
        {
            "sentiment": ["negative"] * 3 + ["positive"] * 3 + [""] * 4,
            "polarization": [""] * 6 + ["objective"] * 2 + ["partisan", "non_polarized"],
        }
    )
    failures = va.check_class_minimums(labelled, file="items.csv", min_per_class=2)
    rows = {(f.row, f.rule) for f in failures}
    assert rows == {
        ("sentiment/neutral", "min rows per class"),
        ("polarization/non_polarized", "min rows per class"),
        ("polarization/partisan", "min rows per class"),
    }
