"""Baselines on hand-made rows: TF-IDF + logistic regression, majority, domain-only."""

from __future__ import annotations

import numpy as np
import pytest

from lensforge.adjudication import baselines
from lensforge.core.params import BaselinesParams

CONFIG = BaselinesParams(
    tfidf_max_features=1000, tfidf_ngram_max=1, tfidf_min_df=1, logreg_c=10.0, domain_margin=0.05
)
NAMES = ("against", "none", "favor")


def test_domain_only_predicts_each_domains_most_frequent_train_class():
    train_domains = ["x", "x", "x", "x", "y", "y"]
    train_y = np.array([2, 2, 0, 2, 1, 1])
    predicted = baselines.predict_domain_only(
        train_domains, train_y, ["y", "x", "unseen"], n_classes=3
    )
    assert predicted.tolist() == [1, 2, 2]  # an unseen domain gets the overall majority (2)


def test_majority_predicts_the_most_frequent_class_and_scores_per_class_f1():
    predicted = baselines.predict_majority(np.array([0, 1, 1, 2]), 3, n_classes=3)
    assert predicted.tolist() == [1, 1, 1]
    scores = baselines.scores(np.array([1, 0, 2]), predicted, class_names=NAMES)
    assert scores["none_f1"] == pytest.approx(0.5)
    assert scores["against_f1"] == 0.0
    assert scores["macro_f1"] == pytest.approx(0.5 / 3)


def test_tfidf_learns_words_and_domain_only_is_left_out_without_domains():
    words = {0: "terrible awful", 1: "report says", 2: "great wonderful"}
    texts = [f"{words[i % 3]} item {i}" for i in range(30)]
    y = np.array([i % 3 for i in range(30)])
    result = baselines.evaluate_baselines(
        (texts[:21], [""] * 21, y[:21]),
        (texts[21:], [""] * 9, y[21:]),
        class_names=NAMES,
        config=CONFIG,
    )
    assert set(result) == {"tfidf_logreg", "majority"}
    assert result["tfidf_logreg"]["macro_f1"] == 1.0
    assert result["majority"]["macro_f1"] < 0.5
