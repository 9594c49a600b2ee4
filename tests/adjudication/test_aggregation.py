"""Crowd-kit aggregation on hand-made rater matrices: an adversarial rater, skills, confidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lensforge.adjudication import aggregation


def _adversarial_votes(n_items: int, *, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Three raters on every item: ``good`` is right 90% of the time, ``noisy`` 60%, and
    ``adversary`` always names the next class: majority is swayed, a confusion model is not."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, size=n_items)
    rows = []
    for i, y in enumerate(truth):
        good = y if rng.random() < 0.9 else rng.integers(0, 3)
        noisy = y if rng.random() < 0.6 else (y + 1) % 3
        rows += [
            (f"i{i}", "good", good),
            (f"i{i}", "noisy", noisy),
            (f"i{i}", "adversary", (y + 1) % 3),
        ]
    return pd.DataFrame(rows, columns=["item_id", "rater", "class_id"]), truth


def _accuracy(result: pd.DataFrame, truth: np.ndarray) -> float:
    by_item = result.set_index("item_id")["class_id"]
    predicted = np.array([by_item.get(f"i{i}", pd.NA) for i in range(len(truth))], dtype=object)
    return float(
        np.mean([p is not pd.NA and int(p) == t for p, t in zip(predicted, truth, strict=True)])
    )


def test_dawid_skene_beats_majority_when_one_rater_is_adversarial():
    votes, truth = _adversarial_votes(300, seed=0)
    majority, _ = aggregation.aggregate(votes, n_classes=3, method="majority", n_iter=100)
    dawid_skene, skills = aggregation.aggregate(
        votes, n_classes=3, method="dawid_skene", n_iter=100
    )
    assert _accuracy(dawid_skene, truth) > 0.95
    assert _accuracy(dawid_skene, truth) > _accuracy(majority, truth) + 0.2
    assert skills["good"] > 0.8 and skills["adversary"] < 0.1


def test_glad_and_mace_rank_the_adversary_last_and_report_posterior_confidence():
    votes, _ = _adversarial_votes(200, seed=1)
    for method in ("glad", "mace"):
        result, skills = aggregation.aggregate(votes, n_classes=3, method=method, n_iter=100)
        assert min(skills, key=skills.get) == "adversary", method
        assert result["confidence"].between(0, 1).all()
        assert len(result) == 200


def test_majority_leaves_ties_unlabelled_and_reports_agreement_as_confidence():
    votes = pd.DataFrame(
        {
            "item_id": ["a", "a", "a", "tie", "tie"],
            "rater": ["r1", "r2", "r3", "r1", "r2"],
            "class_id": [2, 2, 0, 0, 1],
        }
    )
    result, skills = aggregation.aggregate(votes, n_classes=3, method="majority", n_iter=1)
    by_item = result.set_index("item_id")
    assert by_item.loc["a", "class_id"] == 2
    assert by_item.loc["a", "agreement"] == pytest.approx(2 / 3)
    assert by_item.loc["a", "confidence"] == pytest.approx(2 / 3)
    assert pd.isna(by_item.loc["tie", "class_id"])
    assert skills == {}


def test_an_unknown_method_is_named():
    votes, _ = _adversarial_votes(5, seed=0)
    with pytest.raises(ValueError, match="'wawa'"):
        aggregation.aggregate(votes, n_classes=3, method="wawa", n_iter=1)
