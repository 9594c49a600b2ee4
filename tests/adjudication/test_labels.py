"""Adjudication math on hand-made rater lists, Krippendorff's alpha, mapping, grouped split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lensforge.adjudication import labels, sources
from lensforge.core.errors import DataError


def _ratings(table: dict[str, list[int]]) -> pd.DataFrame:
    rows = [(item, r, s) for item, scores in table.items() for r, s in enumerate(scores)]
    return pd.DataFrame(rows, columns=["item_id", "rater", "score"])


def test_rater_classes_use_a_symmetric_threshold():
    classes = labels.rater_classes(np.array([-2, -0.5, 0, 0.5, 0.6]), threshold=0.5)
    assert classes.tolist() == [0, 1, 1, 1, 2]


def test_mean_threshold_labels_and_agreement_from_hand_made_raters():
    ratings = _ratings({"a": [2, 3, 1, 0], "b": [1, -1, 0, 0], "c": [-4, -1, 1]})
    verdicts = labels.adjudicate_sentiment(ratings, method="mean_threshold", threshold=0.5)
    by_item = verdicts.set_index("item_id")
    # a: mean 1.5 -> positive, 3 of 4 raters positive; b: mean 0 -> neutral, 2 of 4 neutral;
    # c: mean -4/3 -> negative, 2 of 3 raters negative.
    assert by_item["sentiment"].tolist() == ["positive", "neutral", "negative"]
    assert by_item["sentiment_agreement"].tolist() == pytest.approx([0.75, 0.5, 2 / 3])
    assert by_item["n_raters"].tolist() == [4, 4, 3]
    assert by_item.loc["c", "mean_score"] == pytest.approx(-4 / 3)


def test_majority_takes_the_most_common_rater_class_and_leaves_ties_unlabelled():
    ratings = _ratings({"a": [3, 3, -4, 0, 2], "tie": [1, 1, -1, -1]})
    verdicts = labels.adjudicate_sentiment(ratings, method="majority", threshold=0.5)
    by_item = verdicts.set_index("item_id")
    assert by_item.loc["a", "sentiment"] == "positive"  # mean 0.8 too, but by 3 of 5 raters
    assert by_item.loc["a", "sentiment_agreement"] == pytest.approx(0.6)
    assert pd.isna(by_item.loc["tie", "sentiment"])


def test_majority_and_mean_threshold_can_disagree():
    ratings = _ratings({"x": [4, 4, 0, 0, 0]})  # mean 1.6 positive, most raters neutral
    mean = labels.adjudicate_sentiment(ratings, method="mean_threshold", threshold=0.5)
    vote = labels.adjudicate_sentiment(ratings, method="majority", threshold=0.5)
    assert mean["sentiment"].item() == "positive"
    assert vote["sentiment"].item() == "neutral"


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the worked example with
# missing data: 4 observers x 12 units; published alpha nominal 0.743, interval 0.849.
KRIPPENDORFF_2011 = [
    [1, 1, 1],
    [2, 2, 3, 2],
    [3, 3, 3, 3],
    [3, 3, 3, 3],
    [2, 2, 2, 2],
    [1, 2, 3, 4],
    [4, 4, 4, 4],
    [1, 1, 2, 1],
    [2, 2, 2, 2],
    [5, 5, 5],
    [1, 1],
    [3],
]


def test_krippendorff_alpha_matches_the_published_example():
    nominal = labels.krippendorff_alpha(KRIPPENDORFF_2011, level="nominal")
    interval = labels.krippendorff_alpha(KRIPPENDORFF_2011, level="interval")
    assert round(nominal, 3) == 0.743
    assert round(interval, 3) == 0.849


def test_krippendorff_alpha_is_one_for_perfect_agreement_and_nan_without_variation():
    assert labels.krippendorff_alpha([[1, 1], [3, 3, 3]], level="interval") == 1.0
    assert math.isnan(labels.krippendorff_alpha([[2, 2], [2, 2]], level="nominal"))
    with pytest.raises(ValueError, match="at least one unit"):
        labels.krippendorff_alpha([[1], [2]], level="nominal")


def test_polarization_mapping_table_maps_party_moderator_plot_and_reviews():
    items = pd.DataFrame(
        {
            "domain": [
                "debates",
                "debates",
                "debates",
                "rotten_tomatoes",
                "rotten_tomatoes",
                "tweets",
            ],
            "source_label": ["Republican", "Democratic", "Moderator", "plot", "fresh", ""],
        }
    )
    mapped = labels.polarization_labels(items).tolist()
    assert mapped == ["partisan", "partisan", "objective", "objective", "non_polarized", None]
    assert set(sources.POLARIZATION_MAP.values()) == set(labels.POLARIZATION_CLASSES)
    with pytest.raises(KeyError, match="Libertarian"):
        labels.polarization_labels(
            pd.DataFrame({"domain": ["debates"], "source_label": ["Libertarian"]})
        )


def test_low_agreement_sentiment_labels_are_removed_and_unlabelled_items_dropped():
    items = pd.DataFrame(
        {
            "item_id": ["t:1", "t:2", "d:1"],
            "domain": ["tweets", "tweets", "debates"],
            "group": ["t:1", "t:2", "d:1"],
            "source_label": ["", "", "Moderator"],
            "text": ["good day", "meh day", "next question"],
        }
    )
    ratings = _ratings({"t:1": [2, 2, 2, 2], "t:2": [1, -1, 0, 2]})
    table, removed = labels.adjudicate_items(
        items, ratings, method="mean_threshold", threshold=0.5, min_agreement=0.6
    )
    assert table["item_id"].tolist() == ["t:1", "d:1"]
    assert removed == {"n_no_verdict": 0, "n_low_agreement": 1, "n_unlabelled": 1}
    assert pd.isna(table.set_index("item_id").loc["d:1", "sentiment"])


def test_items_sharing_a_group_or_a_text_form_one_split_group():
    items = pd.DataFrame(
        {
            "group": ["rt:movie_a", "rt:movie_a", "movie:7", "tweets:3"],
            "text": ["A fine film.", "Plot text", "a  FINE film.", "other"],
        }
    )
    groups = labels.link_groups(items).tolist()
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] == "tweets:3"


def test_split_keeps_every_group_whole_and_puts_each_joint_label_in_every_split():
    rng = np.random.default_rng(0)
    n = 300
    sentiment = rng.choice(
        ["negative", "neutral", "positive", None], size=n, p=[0.3, 0.1, 0.3, 0.3]
    )
    polarization = np.where(pd.isna(sentiment), rng.choice(["objective", "partisan"], size=n), None)
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "split_group": [f"g{i // 2}" for i in range(n)],  # pairs of items share a group
            "sentiment": sentiment,
            "polarization": polarization,
        }
    )
    split = labels.split_items(items, (0.6, 0.2, 0.2), seed=0)
    assert split.notna().all()
    assert items.assign(split=split).groupby("split_group")["split"].nunique().max() == 1
    for label in ("neutral", "objective"):
        column = "sentiment" if label == "neutral" else "polarization"
        present = set(split[items[column] == label])
        assert present == {"train", "validation", "test"}, label
    again = labels.split_items(items, (0.6, 0.2, 0.2), seed=0)
    assert again.equals(split)


def _split_table(texts: list[str], splits: list[str]) -> pd.DataFrame:
    ids = [f"i{i}" for i in range(len(texts))]
    return pd.DataFrame({"item_id": ids, "text": texts, "split": splits})


def test_one_normalised_text_in_two_splits_is_an_error_naming_both_items():
    table = _split_table(
        ["A fine film.", "plot text", "a  FINE   film.", "other"],
        ["train", "train", "test", "validation"],
    )
    assert labels.cross_split_texts(table) == {"a fine film."}
    with pytest.raises(DataError) as caught:
        labels.check_disjoint_texts(table, file="items.csv")
    message = str(caught.value)
    assert "i0 (train)" in message and "i2 (test)" in message
    assert "rule no text in two splits" in message


def test_identical_texts_within_one_split_are_allowed():
    table = _split_table(["same text", "Same  text", "other"], ["train", "train", "test"])
    assert labels.cross_split_texts(table) == set()
    labels.check_disjoint_texts(table, file="items.csv")  # no error
