"""Many raters' classes -> one class per item, with agreement, confidence and rater skills.

``aggregate`` takes one task's long table of rater class ids (item_id, rater, class_id) and a
method:

- ``majority``: the most common class; a tie between top classes is no verdict (no label is
  invented). Confidence = agreement.
- ``dawid_skene``, ``glad``, ``mace``: crowd-kit's EM models (Dawid & Skene 1979; Whitehill et
  al. 2009; Hovy et al. 2013), which learn how reliable each rater is. Confidence = the
  posterior probability of the chosen class. Rater skill: Dawid-Skene's prior-weighted diagonal
  of the rater's confusion matrix (the chance the rater gives the true class), GLAD's alpha
  (expertise; negative for a rater who is systematically wrong), MACE's probability that the
  rater is not spamming.

Agreement is always the share of the item's raters whose class equals the verdict. The mean
rule of score tasks (``mean_threshold``) lives in ``labels``: it needs the raw numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CROWD_KIT_METHODS = ("dawid_skene", "glad", "mace")
VOTE_METHODS = ("majority",)
RESULT_COLUMNS = ["item_id", "class_id", "agreement", "confidence"]


def agreement_shares(votes: pd.DataFrame, verdict: pd.Series) -> pd.Series:
    """Share of each item's raters whose class equals ``verdict`` (item_id -> class id or NA)."""
    chosen = votes["item_id"].map(verdict)
    agrees = (votes["class_id"] == chosen).astype(float)
    return agrees.groupby(votes["item_id"]).mean()


def _majority(votes: pd.DataFrame, n_classes: int) -> pd.DataFrame:
    counts = (votes.groupby(["item_id", "class_id"]).size().unstack(fill_value=0)).reindex(
        columns=range(n_classes), fill_value=0
    )
    top = counts.to_numpy().max(axis=1, keepdims=True)
    is_top = counts.to_numpy() == top
    unique = is_top.sum(axis=1) == 1
    class_id = pd.Series(np.where(unique, is_top.argmax(axis=1), -1), index=counts.index).astype(
        "Int64"
    )
    class_id[class_id < 0] = pd.NA
    share = pd.Series(top[:, 0] / counts.to_numpy().sum(axis=1), index=counts.index)
    return pd.DataFrame(
        {"item_id": counts.index, "class_id": class_id.values, "agreement": share.values}
    ).assign(confidence=lambda f: f["agreement"])


def _crowd_kit_model(method: str, *, n_iter: int):
    from crowdkit.aggregation import GLAD, MACE, DawidSkene

    if method == "dawid_skene":
        return DawidSkene(n_iter=n_iter)
    if method == "glad":
        return GLAD(n_iter=n_iter)
    if method == "mace":
        return MACE(n_iter=n_iter, random_state=0)
    raise ValueError(f"unknown aggregation method {method!r}; expected one of {CROWD_KIT_METHODS}")


def _skills(model, method: str, workers: list[str]) -> dict[str, float]:
    """Per-rater skill (module doc), keyed by rater name."""
    if method == "dawid_skene":
        errors, priors = model.errors_, model.priors_
        skills = {}
        for worker in workers:
            rows = errors.loc[worker]
            skills[worker] = float(
                sum(priors[c] * rows.at[c, c] for c in priors.index if c in rows.index)
            )
        return skills
    if method == "glad":
        return {w: float(model.alphas_[w]) for w in workers}
    # MACE indexes raters in order of first appearance (pandas factorize).
    order = pd.factorize(pd.Series(workers))[1]
    return {str(w): float(model.spamming_[i, 1]) for i, w in enumerate(order)}


def aggregate(
    votes: pd.DataFrame, *, n_classes: int, method: str, n_iter: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """(per item ``RESULT_COLUMNS``, rater -> skill) for one task (module doc).

    ``votes``: item_id, rater, class_id (0..n_classes-1). ``class_id`` is NA where there is no
    verdict (a majority tie). Skills are empty for ``majority``.
    """
    votes = votes.assign(rater=votes["rater"].astype(str))
    if method in VOTE_METHODS:
        return _majority(votes, n_classes)[RESULT_COLUMNS], {}
    model = _crowd_kit_model(method, n_iter=n_iter)
    frame = pd.DataFrame(
        {"task": votes["item_id"], "worker": votes["rater"], "label": votes["class_id"]}
    )
    model.fit(frame)
    probas = model.probas_.reindex(columns=range(n_classes), fill_value=0.0)  # (items, k)
    class_id = pd.Series(probas.to_numpy().argmax(axis=1), index=probas.index)
    result = pd.DataFrame(
        {
            "item_id": probas.index,
            "class_id": class_id.astype("Int64").values,
            "confidence": probas.to_numpy().max(axis=1),
        }
    )
    result["agreement"] = result["item_id"].map(agreement_shares(votes, class_id))
    workers = list(dict.fromkeys(frame["worker"]))
    return result[RESULT_COLUMNS], _skills(model, method, workers)
