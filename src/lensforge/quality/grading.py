"""Degenerate-output rules: every output is exactly one of empty, short, repetitive or good.

The first rule that matches wins, in the research note's column order:

- ``empty``: fewer than ``empty_chars`` characters once surrounding whitespace is stripped;
- ``short``: fewer than ``short_chars`` characters (stripped);
- ``repetitive``: the share of repeated word ``ngram``-grams is above ``max_repetition``;
- ``good``: none of the above.

The repetition ratio is ``1 - distinct n-grams / n-grams`` over lower-cased words (``\\w+``
runs): 0 for text without a repeated n-gram, approaching 1 for one phrase said over and over.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from lensforge.core.params import GradingParams
from lensforge.quality.quadrants import QUADRANTS

GRADES = ("empty", "short", "repetitive", "good")
DEGENERATE = ("empty", "short", "repetitive")
WORD = re.compile(r"\w+")


def repetition_ratio(text: str, *, ngram: int) -> float:
    """Share of the word ``ngram``-grams of ``text`` that repeat an earlier one (0 when the text
    has fewer than ``ngram`` words)."""
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    words = WORD.findall(text.lower())
    grams = [tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def grade_output(text: str, *, rules: GradingParams) -> str:
    """The one grade of ``text`` (module doc)."""
    n_chars = len(text.strip())
    if n_chars < rules.empty_chars:
        return "empty"
    if n_chars < rules.short_chars:
        return "short"
    if repetition_ratio(text, ngram=rules.ngram) > rules.max_repetition:
        return "repetitive"
    return "good"


def grade_outputs(texts: Sequence[str], *, rules: GradingParams) -> pd.DataFrame:
    """Columns ``n_chars``, ``repetition``, ``grade`` for each text, in order."""
    return pd.DataFrame(
        {
            "n_chars": [len(t.strip()) for t in texts],
            "repetition": [repetition_ratio(t, ngram=rules.ngram) for t in texts],
            "grade": [grade_output(t, rules=rules) for t in texts],
        }
    )


def quality_table(samples: pd.DataFrame) -> pd.DataFrame:
    """The note's table 3.1: one row per (quadrant, side) with the share of each grade.

    ``samples``: quadrant, side, grade. Columns: quadrant, side, n, then one share per grade.
    """
    rows = []
    for quadrant in QUADRANTS:
        for side in ("positive", "negative"):
            part = samples[(samples["quadrant"] == quadrant) & (samples["side"] == side)]
            shares = {g: float((part["grade"] == g).mean()) if len(part) else None for g in GRADES}
            rows.append({"quadrant": quadrant, "side": side, "n": len(part), **shares})
    return pd.DataFrame(rows)
