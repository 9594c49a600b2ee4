"""Great Expectations rules on adjudication inputs name the file, the row and the rule."""

from __future__ import annotations

import pandas as pd

from lensforge.adjudication import sources
from lensforge.adjudication import validation as va
from lensforge.core.params import AdjudicationTaskParams

TASKS = {
    "stance": AdjudicationTaskParams(
        classes=("against", "none", "favor"),
        label_source="labels",
        score_range=(),
        cuts=(),
        mapping={},
    ),
    "tone": AdjudicationTaskParams(
        classes=("low", "high"),
        label_source="scores",
        score_range=(1.0, 5.0),
        cuts=(3.0,),
        mapping={},
    ),
    "side": AdjudicationTaskParams(
        classes=("left", "right"),
        label_source="mapping",
        score_range=(),
        cuts=(),
        mapping={"D": "left", "R": "right"},
    ),
}


def _items(rows: list[tuple[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["item_id", "text"]).assign(group="", domain="")
    return frame.assign(**{sources.LINE: range(2, len(rows) + 2)})


def _ratings(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=sources.RATING_COLUMNS)
    return frame.assign(**{sources.LINE: range(2, len(rows) + 2)})


GOOD_ITEMS = [("a", "a fine text"), ("b", "another text")]
GOOD_RATINGS = [
    ("a", "ann", "stance", "favor", ""),
    ("a", "bob", "stance", "none", ""),
    ("a", "ann", "tone", "", "4"),
    ("a", "bob", "tone", "", "2.5"),
    ("b", "src", "side", "D", ""),
]


def _failures(items, ratings) -> set[tuple[str, str, str]]:
    report = va.validate_raw(
        items,
        ratings,
        tasks=TASKS,
        items_file="items.csv",
        ratings_file="ratings.csv",
        min_chars=5,
        max_chars=40,
        min_raters=2,
    )
    return {(f.file, f.row, f.rule) for f in report.failures}


def test_clean_inputs_pass():
    assert _failures(_items(GOOD_ITEMS), _ratings(GOOD_RATINGS)) == set()


def test_item_rules_name_each_bad_row_by_id_and_line():
    items = _items(
        [*GOOD_ITEMS, ("a", "a duplicated id"), ("c", "   "), ("d", "hi"), ("", "x" * 9)]
    )
    failures = _failures(items, _ratings(GOOD_RATINGS))
    assert ("items.csv", "a (line 2)", "item_id unique") in failures
    assert ("items.csv", "a (line 4)", "item_id unique") in failures
    assert ("items.csv", "c (line 5)", "text non-empty") in failures
    assert ("items.csv", "d (line 6)", "text length") in failures
    assert ("items.csv", " (line 7)", "item_id present") in failures


def test_every_rating_rule_a_user_can_break_is_named():
    ratings = _ratings(
        [
            *GOOD_RATINGS,
            ("a", "ann", "stance", "favor", ""),  # duplicate (item, rater, task): line 7
            ("a", "cy", "mood", "happy", ""),  # unknown task: line 8
            ("a", "cy", "stance", "pro", ""),  # unknown class: line 9
            ("zz", "cy", "stance", "none", ""),  # missing item: line 10
            ("a", "cy", "tone", "", "9"),  # out of range: line 11
            ("a", "dee", "tone", "", "lots"),  # not a number: line 12
            ("b", "src", "side", "Green", ""),  # unmapped source label: line 13
        ]
    )
    failures = _failures(_items(GOOD_ITEMS), ratings)
    expected = {
        ("ratings.csv", "a#ann#stance (line 2)", "one rating per item, rater and task"),
        ("ratings.csv", "a#ann#stance (line 7)", "one rating per item, rater and task"),
        ("ratings.csv", "a#cy#mood (line 8)", "task declared"),
        ("ratings.csv", "a#cy#stance (line 9)", "class known"),
        ("ratings.csv", "zz#cy#stance (line 10)", "rated item exists"),
        ("ratings.csv", "a#cy#tone (line 11)", "score range"),
        ("ratings.csv", "a#dee#tone (line 12)", "score is a number"),
        ("ratings.csv", "b#src#side (line 13)", "class known"),
        ("ratings.csv", "b/side", "raters per item"),  # two source labels for one item
        ("ratings.csv", "zz/stance", "raters per item"),  # one rating only
    }
    assert expected <= failures


def test_too_few_raters_is_named_per_item_and_task():
    ratings = _ratings([r for r in GOOD_RATINGS if r[1] != "bob"])
    failures = _failures(_items(GOOD_ITEMS), ratings)
    assert failures == {
        ("ratings.csv", "a/stance", "raters per item"),
        ("ratings.csv", "a/tone", "raters per item"),
    }


def test_class_minimums_name_the_task_and_class():
    labelled = pd.DataFrame(
        {
            "stance": ["against"] * 3 + ["favor"] * 3 + [None] * 4,
            "side": [None] * 6 + ["left"] * 4,
        }
    )
    failures = va.check_class_minimums(
        labelled,
        classes={"stance": ("against", "none", "favor"), "side": ("left", "right")},
        file="items.csv",
        min_per_class=2,
    )
    assert {(f.row, f.rule) for f in failures} == {
        ("stance/none", "min rows per class"),
        ("side/right", "min rows per class"),
    }
