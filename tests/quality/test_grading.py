"""``quality.grading``: the degenerate-output rules on hand-made strings."""

from __future__ import annotations

import pandas as pd
import pytest

from lensforge.core.params import GradingParams
from lensforge.quality import grading

RULES = GradingParams(empty_chars=10, short_chars=100, ngram=3, max_repetition=0.5)
VARIED = (
    "The clinic opened early on Monday, and nurses sorted the waiting patients by urgency "
    "before the doctors arrived with coffee and charts."
)


def test_whitespace_and_a_few_characters_are_empty():
    assert grading.grade_output("", rules=RULES) == "empty"
    assert grading.grade_output("   \n\n  ", rules=RULES) == "empty"
    assert grading.grade_output("\n\nYes, ok.\n", rules=RULES) == "empty"  # 8 chars stripped


def test_ten_to_ninety_nine_characters_are_short_even_when_repetitive():
    assert grading.grade_output("a" * 10, rules=RULES) == "short"
    assert grading.grade_output("x" * 99, rules=RULES) == "short"
    assert grading.grade_output("go go go go go go go", rules=RULES) == "short"


def test_a_phrase_said_over_and_over_is_repetitive():
    text = "an instance of: Probability Theory, " * 8
    assert grading.repetition_ratio(text, ngram=3) > 0.8
    assert grading.grade_output(text, rules=RULES) == "repetitive"


def test_varied_long_text_is_good():
    assert len(VARIED) >= 100
    assert grading.repetition_ratio(VARIED, ngram=3) == 0.0
    assert grading.grade_output(VARIED, rules=RULES) == "good"


def test_repetition_ratio_counts_repeated_ngrams_case_and_punctuation_blind():
    # words: a b c a b c -> trigrams abc bca cab abc: 1 of 4 repeats
    assert grading.repetition_ratio("A b, c. a B c", ngram=3) == pytest.approx(0.25)
    assert grading.repetition_ratio("two words", ngram=3) == 0.0
    with pytest.raises(ValueError, match="ngram"):
        grading.repetition_ratio("x", ngram=0)


def test_the_repetition_threshold_is_a_strict_upper_bound():
    text = VARIED + " " + VARIED  # about half the trigrams repeat
    ratio = grading.repetition_ratio(text, ngram=3)
    at = GradingParams(empty_chars=10, short_chars=100, ngram=3, max_repetition=ratio)
    below = GradingParams(empty_chars=10, short_chars=100, ngram=3, max_repetition=ratio - 0.01)
    assert grading.grade_output(text, rules=at) == "good"
    assert grading.grade_output(text, rules=below) == "repetitive"


def test_quality_table_gives_one_share_per_grade_per_quadrant_and_side():
    samples = pd.DataFrame(
        {
            "quadrant": ["A", "A", "A", "C"],
            "side": ["positive", "positive", "negative", "positive"],
            "grade": ["empty", "good", "repetitive", "short"],
        }
    )
    table = grading.quality_table(samples).set_index(["quadrant", "side"])
    assert table.loc[("A", "positive"), "empty"] == 0.5
    assert table.loc[("A", "positive"), "good"] == 0.5
    assert table.loc[("A", "negative"), "repetitive"] == 1.0
    assert table.loc[("C", "positive"), "short"] == 1.0
    assert table.loc[("B", "positive"), "n"] == 0 and pd.isna(table.loc[("B", "positive"), "good"])
    assert len(table) == 8
