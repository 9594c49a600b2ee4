"""From raters and source labels to one label per task and item, agreement, and a grouped split.

Pure functions over pandas/numpy (no files), for any tasks declared in params
(``adjudicate.tasks``; see ``tasks`` for the three label sources):

- ``rater_class_ids``: each rating of a task -> a class id (scores through the task's cuts,
  labels by name).
- ``adjudicate_task``: one task's verdicts. ``mean_threshold`` (scores tasks only) cuts the mean
  rating; ``majority`` and the crowd-kit models (``aggregation``) combine the raters' classes;
  a mapping task takes its one source label through the mapping table. Every verdict carries its
  agreement (share of raters whose class equals it) and confidence (crowd-kit: posterior of the
  verdict; votes and means: the agreement; mapping: 1).
- ``krippendorff_alpha``: Krippendorff's alpha for units rated by any number of anonymous raters,
  ``interval`` (squared difference) or ``nominal`` (0/1) distance, from the coincidence counts:
  alpha = 1 - D_o / D_e with D_o = sum_u (1 / (m_u - 1)) sum_{i != j in u} d(v_i, v_j) / n and
  D_e = sum_{i != j over all pairable values} d(v_i, v_j) / (n (n - 1)); units with one value are
  not pairable and drop out (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").
- ``link_groups`` + ``split_items``: items sharing a group or a (normalised) text form one split
  group; each group is stratified on its rarest joint label (all tasks) and assigned to exactly
  one of train / validation / test. ``check_disjoint_texts`` makes any normalised text found in
  two splits an error (the guard behind the grouping).

A task without a label for an item is a missing value (``None`` / NA; an empty cell once written),
never a class name: ``tasks.label_ids`` turns it into ``tasks.NO_LABEL`` for the loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lensforge.adjudication import aggregation, sources, tasks
from lensforge.core import splits
from lensforge.core.errors import ParamsError
from lensforge.core.params import AdjudicationTaskParams

SPLITS = splits.SPLITS
LEVELS = ("interval", "nominal")
METHODS = ("mean_threshold", *aggregation.VOTE_METHODS, *aggregation.CROWD_KIT_METHODS)
NO_DOMAIN = "(none)"  # name of the domain of items without one, in metrics


def rater_class_ids(ratings: pd.DataFrame, task: AdjudicationTaskParams) -> np.ndarray:
    """Class id (n,) of each rating of one task (columns: label, score)."""
    if task.label_source == "scores":
        scores = pd.to_numeric(ratings["score"]).to_numpy(np.float64)
        return tasks.score_class_ids(scores, cuts=task.cuts, score_range=task.score_range)
    if task.label_source == "labels":
        return tasks.label_ids(ratings["label"].tolist(), task.classes)
    names = [task.mapping[label] for label in ratings["label"]]
    return tasks.label_ids(names, task.classes)


def check_method(method: str, declared: Mapping[str, AdjudicationTaskParams]) -> None:
    """``mean_threshold`` needs numbers: a ``ParamsError`` names a labels task it cannot serve."""
    if method not in METHODS:
        raise ValueError(f"unknown adjudication method {method!r}; expected one of {METHODS}")
    if method != "mean_threshold":
        return
    for name, task in declared.items():
        if task.label_source == "labels":
            raise ParamsError(
                f"adjudicate.method mean_threshold needs numeric scores, but task {name!r} has "
                "categorical rater labels: use majority, dawid_skene, glad or mace",
                row="adjudicate.method",
                rule="method fits label source",
            )


def _mean_threshold(
    ratings: pd.DataFrame, votes: pd.DataFrame, task: AdjudicationTaskParams
) -> pd.DataFrame:
    means = pd.to_numeric(ratings["score"]).groupby(ratings["item_id"]).mean()
    class_id = pd.Series(
        tasks.score_class_ids(means.to_numpy(), cuts=task.cuts, score_range=task.score_range),
        index=means.index,
    )
    share = aggregation.agreement_shares(votes, class_id)
    return pd.DataFrame(
        {
            "item_id": means.index,
            "class_id": class_id.astype("Int64").values,
            "agreement": share.reindex(means.index).values,
        }
    ).assign(confidence=lambda f: f["agreement"])


def adjudicate_task(
    ratings: pd.DataFrame, task: AdjudicationTaskParams, *, method: str, n_iter: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """One task's verdicts: per rated item ``label`` (class name or NA), ``agreement``,
    ``confidence``, ``n_raters`` and, for scores tasks, ``mean_score``; plus rater skills
    (crowd-kit methods only). ``ratings``: this task's rows (item_id, rater, label, score)."""
    votes = pd.DataFrame(
        {
            "item_id": ratings["item_id"].to_numpy(),
            "rater": ratings["rater"].astype(str).to_numpy(),
            "class_id": rater_class_ids(ratings, task),
        }
    )
    skills: dict[str, float] = {}
    if task.label_source == "mapping":
        result = votes[["item_id", "class_id"]].assign(agreement=1.0, confidence=1.0)
    elif method == "mean_threshold":
        result = _mean_threshold(ratings, votes, task)
    else:
        result, skills = aggregation.aggregate(
            votes, n_classes=len(task.classes), method=method, n_iter=n_iter
        )
    names = np.asarray(task.classes, dtype=object)
    ids = result["class_id"]
    result = result.assign(
        label=[None if pd.isna(i) else names[int(i)] for i in ids],
        n_raters=result["item_id"].map(votes.groupby("item_id").size()),
    ).drop(columns="class_id")
    if task.label_source == "scores":
        scores = pd.to_numeric(ratings["score"]).groupby(ratings["item_id"]).mean()
        result["mean_score"] = result["item_id"].map(scores)
    return result.reset_index(drop=True), skills


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
    ratings: pd.DataFrame, items: pd.DataFrame, task: AdjudicationTaskParams
) -> dict[str, dict[str, float]]:
    """Per domain (and ``all``) of one rated task: nominal alpha on the raters' classes and, for
    scores tasks, interval alpha on the raw scores. Domains with no pairable unit are left out."""
    joined = ratings.merge(items[["item_id", "domain"]], on="item_id", how="left")
    joined["domain"] = joined["domain"].fillna("").replace("", NO_DOMAIN)
    joined["class_id"] = rater_class_ids(joined, task)
    parts = [("all", joined), *joined.groupby("domain", sort=True)]
    result = {}
    for domain, part in parts:
        units = part.groupby("item_id")
        if units.size().max() < 2:
            continue
        entry = {
            "nominal_alpha": krippendorff_alpha(
                [g.to_numpy(np.float64) for _, g in units["class_id"]], level="nominal"
            ),
            "n_items": int(units.ngroups),
            "n_ratings": int(len(part)),
        }
        if task.label_source == "scores":
            scores = [pd.to_numeric(g).to_numpy(np.float64) for _, g in units["score"]]
            entry["interval_alpha"] = krippendorff_alpha(scores, level="interval")
        result[str(domain)] = entry
    return result


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


def joint_label(table: pd.DataFrame, task_names: Sequence[str]) -> pd.Series:
    """``label|label|...`` over ``task_names`` with ``-`` for a missing task label."""
    parts = [table[t].astype(object).where(table[t].notna(), "-") for t in task_names]
    joint = parts[0].astype(str)
    for part in parts[1:]:
        joint = joint + "|" + part.astype(str)
    return joint


def split_items(
    items: pd.DataFrame, fractions: Sequence[float], *, task_names: Sequence[str], seed: int
) -> pd.Series:
    """train / validation / test for each item (columns: split_group and the task columns).

    Each group takes the rarest joint label among its items as its stratum, so minority joint
    labels are spread over all splits; every item of a group lands in the group's split.
    """
    joint = joint_label(items, task_names)
    frequency = joint.map(joint.value_counts())
    ranked = items.assign(joint=joint, frequency=frequency).sort_values(
        ["frequency", "joint", "item_id"]
    )
    first = ranked.drop_duplicates("split_group", keep="first")
    groups = pd.DataFrame({"group": first["split_group"], "stratum": first["joint"]})
    assignment = splits.assign_splits(groups, fractions, seed=seed)
    return items["split_group"].map(assignment)


def class_counts(frame: pd.DataFrame, classes: Mapping[str, Sequence[str]]) -> dict:
    """Items per class of each task (every class listed, 0 when absent)."""
    return {
        task: {c: int((frame[task] == c).sum()) for c in names} for task, names in classes.items()
    }


TASK_COLUMN_SUFFIXES = ("agreement", "confidence", "n_raters", "mean_score")


def adjudicated_columns(declared: Mapping[str, AdjudicationTaskParams]) -> list[str]:
    """Columns of ``data/adjudicated/items.csv``: ids, split, per task its label and evidence."""
    columns = ["item_id", "domain", "split_group", "split"]
    for name, task in declared.items():
        columns += [name, f"{name}_agreement", f"{name}_confidence", f"{name}_n_raters"]
        if task.label_source == "scores":
            columns.append(f"{name}_mean_score")
    return [*columns, "text"]


def adjudicate_items(
    items: pd.DataFrame,
    ratings: pd.DataFrame,
    *,
    declared: Mapping[str, AdjudicationTaskParams],
    method: str,
    n_iter: int,
    min_agreement: float,
    min_confidence: float,
) -> tuple[pd.DataFrame, dict[str, dict], dict[str, dict[str, float]]]:
    """Every task's label per item, weak labels removed, unlabelled items dropped.

    Returns the labelled items (``adjudicated_columns`` except the split columns), per task the
    counts of what was removed (``n_no_verdict``: majority ties; ``n_low_agreement`` /
    ``n_low_confidence``: below ``min_agreement`` / ``min_confidence``) and ``n_unlabelled``
    (items with no label for any task), and per task the rater skills (crowd-kit methods).
    """
    check_method(method, declared)
    table = items[["item_id", "domain", "group", "text"]].copy()
    removed: dict[str, dict] = {}
    skills: dict[str, dict[str, float]] = {}
    for name, task in declared.items():
        verdicts, task_skills = adjudicate_task(
            ratings[ratings["task"] == name], task, method=method, n_iter=n_iter
        )
        verdicts = verdicts.rename(
            columns={"label": name, **{s: f"{name}_{s}" for s in TASK_COLUMN_SUFFIXES}}
        )
        table = table.merge(verdicts, on="item_id", how="left", validate="one_to_one")
        has = table[name].notna()
        low_agreement = has & (table[f"{name}_agreement"] < min_agreement)
        low_confidence = has & ~low_agreement & (table[f"{name}_confidence"] < min_confidence)
        removed[name] = {
            "n_no_verdict": int((table[f"{name}_n_raters"].notna() & ~has).sum()),
            "n_low_agreement": int(low_agreement.sum()),
            "n_low_confidence": int(low_confidence.sum()),
        }
        table.loc[low_agreement | low_confidence, name] = None
        if task_skills:
            skills[name] = task_skills
    labelled = table[list(declared)].notna().any(axis=1)
    removed["n_unlabelled"] = int((~labelled).sum())
    return table[labelled].reset_index(drop=True), removed, skills


def changed_labels(
    items: pd.DataFrame,
    ratings: pd.DataFrame,
    table: pd.DataFrame,
    *,
    declared: Mapping[str, AdjudicationTaskParams],
) -> dict[str, int]:
    """Per scores task: items whose label differs from the ``mean_threshold`` verdict (how much
    the chosen method changes the labels; 0 for mean_threshold itself)."""
    changed = {}
    for name, task in declared.items():
        if task.label_source != "scores":
            continue
        reference, _ = adjudicate_task(
            ratings[ratings["task"] == name], task, method="mean_threshold", n_iter=1
        )
        joined = table[["item_id", name]].merge(reference, on="item_id", how="inner")
        both = joined[name].notna()
        changed[name] = int((joined.loc[both, name] != joined.loc[both, "label"]).sum())
    return changed


def split_summary(table: pd.DataFrame, classes: Mapping[str, Sequence[str]]) -> dict:
    """Items per split and class of each task."""
    summary: dict[str, object] = {}
    for split in SPLITS:
        part = table[table["split"] == split]
        summary[split] = {"n_items": int(len(part)), **class_counts(part, classes)}
    return summary
