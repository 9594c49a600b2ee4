"""Adjudication math on hand-made rater lists, Krippendorff's alpha, mapping, grouped split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lensforge.adjudication import labels
from lensforge.core.errors import DataError, ParamsError
from lensforge.core.params import AdjudicationTaskParams

SENTIMENT = AdjudicationTaskParams(
    classes=("negative", "neutral", "positive"),
    label_source="scores",
    score_range=(-4.0, 4.0),
    cuts=(-0.5, 0.5),
    mapping={},
)
SOURCE = AdjudicationTaskParams(
    classes=("non_polarized", "objective", "partisan"),
    label_source="mapping",
    score_range=(),
    cuts=(),
    mapping={"Moderator": "objective", "Republican": "partisan", "fresh": "non_polarized"},
)
STANCE = AdjudicationTaskParams(
    classes=("against", "none", "favor"),
    label_source="labels",
    score_range=(),
    cuts=(),
    mapping={},
)


def _ratings(table: dict[str, list[int]], task: str = "sentiment") -> pd.DataFrame:
    rows = [
        (item, str(r), task, pd.NA, s)
        for item, scores in table.items()
        for r, s in enumerate(scores)
    ]
    return pd.DataFrame(rows, columns=["item_id", "rater", "task", "label", "score"])


def _verdicts(ratings: pd.DataFrame, method: str) -> pd.DataFrame:
    verdicts, _ = labels.adjudicate_task(ratings, SENTIMENT, method=method, n_iter=50)
    return verdicts.set_index("item_id")


def test_mean_threshold_labels_and_agreement_from_hand_made_raters():
    by_item = _verdicts(
        _ratings({"a": [2, 3, 1, 0], "b": [1, -1, 0, 0], "c": [-4, -1, 1]}), "mean_threshold"
    )
    # a: mean 1.5 -> positive, 3 of 4 raters positive; b: mean 0 -> neutral, 2 of 4 neutral;
    # c: mean -4/3 -> negative, 2 of 3 raters negative.
    assert by_item["label"].tolist() == ["positive", "neutral", "negative"]
    assert by_item["agreement"].tolist() == pytest.approx([0.75, 0.5, 2 / 3])
    assert by_item["n_raters"].tolist() == [4, 4, 3]
    assert by_item.loc["c", "mean_score"] == pytest.approx(-4 / 3)


def test_majority_takes_the_most_common_rater_class_and_leaves_ties_unlabelled():
    by_item = _verdicts(_ratings({"a": [3, 3, -4, 0, 2], "tie": [1, 1, -1, -1]}), "majority")
    assert by_item.loc["a", "label"] == "positive"  # mean 0.8 too, but by 3 of 5 raters
    assert by_item.loc["a", "agreement"] == pytest.approx(0.6)
    assert pd.isna(by_item.loc["tie", "label"])


def test_majority_and_mean_threshold_can_disagree():
    ratings = _ratings({"x": [4, 4, 0, 0, 0]})  # mean 1.6 positive, most raters neutral
    assert _verdicts(ratings, "mean_threshold").loc["x", "label"] == "positive"
    assert _verdicts(ratings, "majority").loc["x", "label"] == "neutral"


def test_mean_threshold_on_categorical_labels_is_a_params_error_naming_the_task():
    with pytest.raises(ParamsError, match="task 'stance' has categorical rater labels"):
        labels.check_method("mean_threshold", {"stance": STANCE})
    labels.check_method("dawid_skene", {"stance": STANCE})  # no error


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


def test_every_task_is_adjudicated_weak_labels_removed_and_unlabelled_items_dropped():
    items = pd.DataFrame(
        {
            "item_id": ["t:1", "t:2", "t:3", "d:1", "s:1", "x:1"],
            "domain": ["tweets", "tweets", "tweets", "debates", "forum", "forum"],
            "group": ["t:1", "t:2", "t:3", "d:1", "s:1", "x:1"],
            "text": ["good day", "meh day", "odd day", "next question", "no way", "unrated"],
        }
    )
    stance = pd.DataFrame(
        {
            "item_id": ["s:1"] * 3,
            "rater": ["ann", "bob", "cy"],
            "task": "stance",
            "label": ["against", "against", "none"],
            "score": pd.NA,
        }
    )
    source = pd.DataFrame(
        {"item_id": ["d:1"], "rater": ["source"], "task": "polarization", "label": ["Moderator"]}
    )
    ratings = pd.concat(
        [
            _ratings({"t:1": [2, 2, 2, 2], "t:2": [1, 1, -1, -1], "t:3": [1, -1, 0, 2]}),
            stance,
            source,
        ],
        ignore_index=True,
    )
    table, removed, skills = labels.adjudicate_items(
        items,
        ratings,
        declared={"sentiment": SENTIMENT, "polarization": SOURCE, "stance": STANCE},
        method="majority",
        n_iter=10,
        min_agreement=0.6,
        min_confidence=0.0,
    )
    by_item = table.set_index("item_id")
    assert list(by_item.index) == ["t:1", "d:1", "s:1"]
    assert by_item.loc["d:1", "polarization"] == "objective"
    assert by_item.loc["s:1", "stance"] == "against"
    assert by_item.loc["s:1", "stance_agreement"] == pytest.approx(2 / 3)
    assert pd.isna(by_item.loc["d:1", "sentiment"])
    # t:2 ties 2 positive / 2 negative; t:3's 2 of 4 positive raters are below 0.6.
    assert removed["sentiment"] == {"n_no_verdict": 1, "n_low_agreement": 1, "n_low_confidence": 0}
    assert removed["n_unlabelled"] == 3  # t:2, t:3 and x:1 (no ratings)
    assert skills == {}
    assert labels.adjudicated_columns({"sentiment": SENTIMENT, "stance": STANCE})[4:-1] == [
        "sentiment",
        "sentiment_agreement",
        "sentiment_confidence",
        "sentiment_n_raters",
        "sentiment_mean_score",
        "stance",
        "stance_agreement",
        "stance_confidence",
        "stance_n_raters",
    ]


def test_min_confidence_drops_uncertain_crowd_kit_labels_and_skills_are_reported():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        truth = int(rng.integers(0, 3))
        for rater in ("ann", "bob", "cy", "dee"):
            label = truth if rng.random() < 0.75 else int(rng.integers(0, 3))
            rows.append((f"i{i}", rater, "stance", STANCE.classes[label], pd.NA))
    ratings = pd.DataFrame(rows, columns=["item_id", "rater", "task", "label", "score"])
    items = pd.DataFrame(
        {"item_id": [f"i{i}" for i in range(60)], "domain": "", "group": "", "text": "t"}
    )
    kwargs = {"declared": {"stance": STANCE}, "method": "dawid_skene", "n_iter": 50}
    kept, _, skills = labels.adjudicate_items(
        items, ratings, min_agreement=0.0, min_confidence=0.0, **kwargs
    )
    strict, removed, _ = labels.adjudicate_items(
        items, ratings, min_agreement=0.0, min_confidence=0.99, **kwargs
    )
    n_uncertain = int((kept["stance_confidence"] < 0.99).sum())
    assert n_uncertain > 0
    assert removed["stance"]["n_low_confidence"] == n_uncertain
    assert len(strict) == len(kept) - n_uncertain
    assert set(skills["stance"]) == {"ann", "bob", "cy", "dee"}


def test_alpha_per_domain_for_scores_and_changed_labels_against_mean_threshold():
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "domain": ["x", "x", "y"]})
    ratings = _ratings({"a": [2, 2, 3], "b": [-2, -3, -2], "c": [4, 0, 0]})
    alpha = labels.alpha_by_domain(ratings, items, SENTIMENT)
    assert set(alpha) == {"all", "x", "y"}
    assert alpha["x"]["nominal_alpha"] == 1.0 and "interval_alpha" in alpha["x"]
    table, _, _ = labels.adjudicate_items(
        items.assign(group=items["item_id"], text="t"),
        ratings,
        declared={"sentiment": SENTIMENT},
        method="majority",
        n_iter=1,
        min_agreement=0.0,
        min_confidence=0.0,
    )
    # c: mean 4/3 -> positive by the mean, but 2 of 3 raters say neutral.
    assert labels.changed_labels(items, ratings, table, declared={"sentiment": SENTIMENT}) == {
        "sentiment": 1
    }


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
    names = ["sentiment", "polarization"]
    split = labels.split_items(items, (0.6, 0.2, 0.2), task_names=names, seed=0)
    assert split.notna().all()
    assert items.assign(split=split).groupby("split_group")["split"].nunique().max() == 1
    for label in ("neutral", "objective"):
        column = "sentiment" if label == "neutral" else "polarization"
        present = set(split[items[column] == label])
        assert present == {"train", "validation", "test"}, label
    again = labels.split_items(items, (0.6, 0.2, 0.2), task_names=names, seed=0)
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
