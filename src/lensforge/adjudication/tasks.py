"""The tasks of the adjudication classifier, their classes in label-id order, the one no-label
marker, and the params checks that need those class names (core params cannot know them).

A task without a label for an item is a missing value in a table (an empty cell in
``data/adjudicated/items.csv``, NA in a DataFrame) and ``NO_LABEL`` as a label id; ``label_ids``
is the one place that turns the first into the second. Losses and metrics leave such rows out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lensforge.core.errors import ParamsError
from lensforge.core.params import FinetuneParams

ADJUDICATION_TASKS: dict[str, tuple[str, ...]] = {
    "sentiment": ("negative", "neutral", "positive"),
    "polarization": ("non_polarized", "objective", "partisan"),
}
NO_LABEL = -1  # label id of a row without a label for a task


def label_ids(values: Sequence[object], classes: Sequence[str]) -> np.ndarray:
    """Class names -> ids (n,); a missing label (empty cell, NA or None) -> ``NO_LABEL``.

    Raises ``ValueError`` naming any value that is neither missing nor one of ``classes``.
    """
    index = {name: i for i, name in enumerate(classes)}
    missing = [value is None or value == "" or bool(pd.isna(value)) for value in values]
    unknown = sorted(
        {str(v) for v, gap in zip(values, missing, strict=True) if not gap} - set(index)
    )
    if unknown:
        raise ValueError(f"unknown class(es) {unknown}; expected {list(classes)}")
    return np.array(
        [NO_LABEL if gap else index[v] for v, gap in zip(values, missing, strict=True)],
        dtype=np.int64,
    )


def _check_class_keys(mapping: Mapping[str, float], task: str, key: str) -> None:
    expected = set(ADJUDICATION_TASKS[task])
    if set(mapping) != expected:
        raise ParamsError(
            f"{key} must name exactly the {task} classes {sorted(expected)}, got {sorted(mapping)}",
            row=key,
            rule="class keys",
        )
    if any(value <= 0 for value in mapping.values()):
        raise ParamsError(
            f"{key} multipliers must be > 0, got {dict(mapping)}", row=key, rule="range"
        )


def check_finetune_params(config: FinetuneParams) -> None:
    """Raise ``ParamsError`` unless every per-class map of ``finetune`` names exactly its task's
    classes with positive values."""
    for task in ADJUDICATION_TASKS:
        loss = getattr(config, task)
        _check_class_keys(
            loss.class_weight_multipliers, task, f"finetune.{task}.class_weight_multipliers"
        )
        _check_class_keys(getattr(config.oversample, task), task, f"finetune.oversample.{task}")
