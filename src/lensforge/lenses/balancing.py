"""Balancing: which cached train rows a lens sees, and with what loss weight (pure; no file I/O).

A strategy turns the number of train synsets per pole into a number of prompts per synset
(``rank < k``), so every variant selects from the one cached pool and never recomputes an
activation. Only the train split is selected: validation and test keep their natural
distribution and are never read here.

Strategies (the balancing experiment, taste_development: 87 / 13 / 88 synsets, ``base_prompts`` 5):

- ``none``: ``base_prompts`` per synset -> 435 / 65 / 440 rows.
- ``downsample_min``: every pole is brought to the smallest pole's row count
  ``min_rows = min(n_synsets) * base_prompts`` (65), with
  ``k = max(1, round_half_up(min_rows / n_synsets))`` prompts per synset -> 1 / 5 / 1 and
  87 / 65 / 88 rows, the balancing experiment's second trial. A pole with more synsets than ``min_rows`` keeps one
  prompt per synset (every synset stays represented), so its count can exceed ``min_rows``.
- ``median_target``: ``target = median(n_synsets) * base_prompts`` (435) and
  ``k = ceil(target / n_synsets)`` -> 5 / 34 / 5 and 435 / 442 / 440 rows (its third trial).
- ``class_weight``: the rows of ``none`` plus a per-row loss weight
  ``n_total / (3 * n_pole_rows)``, so every pole carries the same total weight (``n_total / 3``)
  and the weights average to 1.

Experiential prompts (kind ``experiential``: first-person texts, each its own group of one prompt)
of the train split are always selected, one row each. They are not synsets: the arithmetic above
counts only template synsets, so the experiment's numbers hold exactly; the metrics report them apart
(``n_experiential_rows``), and ``n_rows`` (what the loss sees, and what ``class_weight`` and the
imbalance ratio use) includes them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from lensforge.activations.cache import INDEX_COLUMNS
from lensforge.core.errors import ArtifactError, DataError
from lensforge.lenses.hatcat import POLES

STRATEGIES = ("none", "downsample_min", "median_target", "class_weight")
EXPERIENTIAL = "experiential"
TRAIN = "train"
ROW_COLUMNS = [*INDEX_COLUMNS, "soft", "weight"]


def prompts_per_synset(
    n_synsets: Mapping[str, int], *, strategy: str, base_prompts: int
) -> dict[str, int]:
    """Prompts per synset for each pole, from the pole's number of train synsets.

    ``n_synsets`` maps pole -> synset count (each >= 1). Raises ``ValueError`` for an unknown
    strategy, a non-positive ``base_prompts`` or a pole without synsets.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown balance strategy {strategy!r}; expected one of {STRATEGIES}")
    if base_prompts < 1:
        raise ValueError(f"base_prompts must be >= 1, got {base_prompts}")
    empty = [pole for pole, count in n_synsets.items() if count < 1]
    if empty:
        raise ValueError(f"poles without synsets: {empty} (counts {dict(n_synsets)})")
    if strategy in ("none", "class_weight"):
        return {pole: base_prompts for pole in n_synsets}
    if strategy == "downsample_min":
        min_rows = min(n_synsets.values()) * base_prompts
        # Round half up (not Python's half-to-even) so equal inputs never round differently.
        return {
            pole: max(1, math.floor(min_rows / count + 0.5)) for pole, count in n_synsets.items()
        }
    target = statistics.median(n_synsets.values()) * base_prompts
    return {pole: math.ceil(target / count) for pole, count in n_synsets.items()}


def class_weights(n_rows: Mapping[str, int]) -> dict[str, float]:
    """Per-row loss weight of each pole: ``n_total / (n_poles * n_pole_rows)``.

    Every pole then carries the same summed weight and the weights average to 1 over the rows,
    so the weighted loss keeps the scale of the unweighted one.
    """
    empty = [pole for pole, count in n_rows.items() if count < 1]
    if empty:
        raise ValueError(f"poles without rows: {empty} (counts {dict(n_rows)})")
    n_total = sum(n_rows.values())
    return {pole: n_total / (len(n_rows) * count) for pole, count in n_rows.items()}


def _synset_counts(templates: pd.DataFrame, simplex: str) -> dict[str, int]:
    counts = templates.groupby("pole")["synset_key"].nunique()
    missing = [pole for pole in POLES if counts.get(pole, 0) == 0]
    if missing:
        raise DataError(
            f"simplex {simplex!r} has no train synsets for pole(s) {missing} (with "
            "prompts.overlap exclude, or primary/soft under overlap_primary polar, a pole "
            "whose synsets all overlap another pole has none left)",
            row=simplex,
            rule="every pole has train synsets",
        )
    return {pole: int(counts[pole]) for pole in POLES}


def _check_pool(templates: pd.DataFrame, k: Mapping[str, int], *, simplex: str, strategy: str):
    """Raise if any synset has fewer prompts (ranks 0..k-1) than its pole's ``k``."""
    needed = templates["pole"].map(k)
    available = (
        (templates["rank"] < needed).groupby([templates["pole"], templates["synset_key"]]).sum()
    )
    for (pole, synset), n_available in available.items():
        if n_available < k[pole]:
            raise DataError(
                f"prompt pool too small: simplex {simplex!r}, pole {pole!r}, synset {synset!r} "
                f"has {int(n_available)} prompts with rank < {k[pole]}, but strategy "
                f"{strategy!r} needs {k[pole]} per synset; enlarge prompts.per_synset",
                row=f"{simplex}/{pole}/{synset}",
                rule="pool covers the strategy",
            )


def _select_simplex(
    train: pd.DataFrame, simplex: str, *, strategy: str, base_prompts: int
) -> tuple[pd.DataFrame, dict]:
    experiential = train["kind"] == EXPERIENTIAL
    templates = train[~experiential]
    n_synsets = _synset_counts(templates, simplex)
    k = prompts_per_synset(n_synsets, strategy=strategy, base_prompts=base_prompts)
    _check_pool(templates, k, simplex=simplex, strategy=strategy)
    keep = experiential | (train["rank"] < train["pole"].map(k))
    chosen = train[keep]
    n_rows = {pole: int((chosen["pole"] == pole).sum()) for pole in POLES}
    weights = class_weights(n_rows) if strategy == "class_weight" else dict.fromkeys(POLES, 1.0)
    chosen = chosen.assign(weight=chosen["pole"].map(weights).astype(float))
    summary = {
        pole: {
            "n_synsets": n_synsets[pole],
            "prompts_per_synset": k[pole],
            "n_template_rows": int(((chosen["pole"] == pole) & ~experiential[keep]).sum()),
            "n_experiential_rows": int(((chosen["pole"] == pole) & experiential[keep]).sum()),
            "n_rows": n_rows[pole],
            "weight": weights[pole],
        }
        for pole in POLES
    }
    summary["n_rows"] = sum(n_rows.values())
    summary["imbalance_ratio"] = max(n_rows.values()) / min(n_rows.values())
    return chosen, summary


def headline(summary: Mapping[str, dict]) -> dict[str, dict]:
    """What ``metrics/balance.json`` keeps of ``select_train_rows``' summary per simplex: rows per
    pole, the imbalance ratio and the contradictory-text count (the rest is in the summary file
    next to the rows)."""
    keep = ("imbalance_ratio", "contradictory_texts")
    return {
        simplex: {
            **{key: counts[key] for key in keep if key in counts},
            **{f"{pole}_rows": counts[pole]["n_rows"] for pole in POLES},
        }
        for simplex, counts in summary.items()
    }


def select_train_rows(
    index: pd.DataFrame, *, strategy: str, base_prompts: int
) -> tuple[pd.DataFrame, dict]:
    """The balanced train rows of every simplex in ``index``, and per-pole counts.

    ``index`` has the activation index columns (``cache.INDEX_COLUMNS``) and ``soft``, as
    ``overlap.labelled_rows`` returns them. Returns the selected train rows (``ROW_COLUMNS``: those
    columns plus ``weight``), in index order, and a summary
    ``{simplex: {pole: {n_synsets, prompts_per_synset, n_template_rows, n_experiential_rows,
    n_rows, weight}, n_rows, imbalance_ratio}}``. Validation and test rows are never selected.
    Raises ``DataError`` when a pole has no train synsets, a label disagrees with its pole, or a
    synset has fewer pool prompts than the strategy needs.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown balance strategy {strategy!r}; expected one of {STRATEGIES}")
    wrong = index[index["label"] != index["pole"].map({p: i for i, p in enumerate(POLES)})]
    if not wrong.empty:
        first = wrong.iloc[0]
        raise DataError(
            f"label {first['label']!r} does not match pole {first['pole']!r} (labels follow {POLES})",
            row=first["prompt_id"],
            rule="label matches pole",
        )
    train = index[index["split"] == TRAIN]
    parts, summary = [], {}
    for simplex in pd.unique(index["simplex"]):
        chosen, summary[simplex] = _select_simplex(
            train[train["simplex"] == simplex],
            simplex,
            strategy=strategy,
            base_prompts=base_prompts,
        )
        parts.append(chosen)
    if not parts:
        raise DataError("the activation index has no rows", rule="non-empty index")
    rows = pd.concat(parts).sort_index()
    return rows[ROW_COLUMNS].reset_index(drop=True), summary


def read_rows(rows_path: Path) -> pd.DataFrame:
    """The balanced train rows the balance stage wrote; ``ArtifactError`` when missing."""
    if not rows_path.is_file():
        raise ArtifactError("balanced rows missing: run the balance stage", path=rows_path)
    rows = pd.read_csv(rows_path, keep_default_na=False)
    if rows.empty:
        raise DataError("no balanced train rows", path=rows_path, rule="non-empty")
    return rows
