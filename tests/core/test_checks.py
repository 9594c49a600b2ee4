"""``lensforge.core.checks``: the GX runner names every failing row, quotes values briefly."""

from __future__ import annotations

import pandas as pd
import pytest

from lensforge.core import checks
from lensforge.core.checks import ROW_ID, Failure, Report


def _frame(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns).astype(object)
    frame[ROW_ID] = [f"r{i}" for i in range(len(frame))]
    return frame


def test_every_failing_row_is_named_with_its_rule_and_value():
    frame = _frame(name=["ok", "", 5, None])
    failures = checks.run_suite(
        frame, checks.non_empty_string("name", "the name"), name="t", file="f.csv"
    )
    assert failures == [
        Failure("f.csv", "r3", "name non-empty string", "the name is missing"),
        Failure("f.csv", "r2", "name non-empty string", "the name must be a string, got 5"),
        Failure("f.csv", "r1", "name non-empty string", "the name is empty, got ''"),
    ]


def test_max_chars_names_the_long_rows_and_its_param_and_skips_missing_values():
    frame = _frame(text=["abc", "abcd", None, "x" * 10])
    failures = checks.max_chars("text", "the text", limit=3, param="params.s.max_chars")
    found = checks.run_suite(frame, failures, name="t", file="f.csv")
    assert [(f.row, f.rule) for f in found] == [("r1", "text length"), ("r3", "text length")]
    assert found[0].message == (
        "the text is longer than params.s.max_chars = 3 characters, got 'abcd'"
    )


def test_a_huge_value_is_cut_in_the_message_with_its_size():
    frame = _frame(text=["y" * 2_000_000])
    (failure,) = checks.run_suite(
        frame, checks.max_chars("text", "text", limit=10, param="p"), name="t", file="f"
    )
    assert failure.message.endswith(
        f"got {'y' * checks.MAX_QUOTED_CHARS!r}... (2000000 characters)"
    )
    assert len(failure.message) < 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("short", "'short'"),
        (7, "7"),
        (
            ["a"] * 100,
            f"{repr(['a'] * 100)[: checks.MAX_QUOTED_CHARS]}... (500 characters of repr)",
        ),
    ],
)
def test_quoted_keeps_short_values_and_cuts_long_ones(value, expected):
    assert checks.quoted(value) == expected


def test_report_is_json_safe_and_successful_only_without_failures():
    clean = Report(failures=(), counts={"n": 3})
    assert clean.success and clean.to_dict() == {
        "success": True,
        "n_failures": 0,
        "n": 3,
        "failures": [],
    }
    broken = Report(failures=(Failure("f", "r", "rule", "msg"),), counts={})
    assert not broken.success
    assert broken.to_dict()["failures"] == [
        {"file": "f", "row": "r", "rule": "rule", "message": "msg"}
    ]
