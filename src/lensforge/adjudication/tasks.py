"""The tasks of the adjudication classifier as data: declared in params (``adjudicate.tasks``),
carried with the adjudicated table (``data/adjudicated/tasks.json``) and the model card.

Nothing here names a task or a class: a task is a name, its classes in label-id order, and where
its labels come from (``label_source``):

- ``scores``: every rater gives a number on ``score_range``; ``cuts`` (one between each pair of
  classes) turn a number into a class. A number exactly on a cut goes to the class on the side of
  the scale's middle (with cuts -0.5 / 0.5 on -4..4, both 0.5 and -0.5 are the middle class).
- ``labels``: every rater gives one of the classes.
- ``mapping``: one given source label per item, turned into a class by the ``mapping`` table.

A task without a label for an item is a missing value in a table (an empty cell in
``data/adjudicated/items.csv``, NA in a DataFrame) and ``NO_LABEL`` as a label id; ``label_ids``
is the one place that turns the first into the second. Losses and metrics leave such rows out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lensforge.core import artifacts
from lensforge.core.errors import ArtifactError, ParamsError
from lensforge.core.multitask import NO_LABEL  # the branch reads it from here
from lensforge.core.params import AdjudicationTaskParams, FinetuneParams

TaskClasses = Mapping[str, Sequence[str]]


def task_classes(tasks: Mapping[str, AdjudicationTaskParams]) -> dict[str, tuple[str, ...]]:
    """Task name -> its classes in label-id order, in declaration order."""
    return {name: tuple(task.classes) for name, task in tasks.items()}


def score_class_ids(
    scores: Sequence[float], *, cuts: Sequence[float], score_range: Sequence[float]
) -> np.ndarray:
    """Class ids (n,) of numeric ratings (or mean ratings) by the task's cuts (module doc)."""
    scores = np.asarray(scores, dtype=np.float64)
    cuts = np.asarray(cuts, dtype=np.float64)
    middle = (score_range[0] + score_range[1]) / 2
    below = np.searchsorted(cuts, scores, side="left")  # cuts strictly below each score
    at_or_below = np.searchsorted(cuts, scores, side="right")  # cuts at or below it
    on_cut = below != at_or_below
    # On a cut above the middle the score joins the lower class, below the middle the upper one.
    cut_value = cuts[np.minimum(below, len(cuts) - 1)] if len(cuts) else scores
    return np.where(on_cut & (cut_value >= middle), below, at_or_below).astype(np.int64)


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


def write_task_classes(path: Path, classes: TaskClasses) -> None:
    """The adjudicated table's tasks and classes, beside it (finetune and evaluation read them).

    A list, not a mapping: JSON files are written with sorted keys, and the declaration order is
    the order the heads are built (and so initialised) in."""
    tasks = [{"name": t, "classes": list(c)} for t, c in classes.items()]
    artifacts.write_json(path, {"tasks": tasks})


def read_task_classes(path: Path) -> dict[str, tuple[str, ...]]:
    """Task -> classes written by ``write_task_classes``; ``ArtifactError`` when missing."""
    if not Path(path).is_file():
        raise ArtifactError(
            "task declarations of the adjudicated items missing: run adjudicate",
            path=path,
            rule="exists",
        )
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {task["name"]: tuple(task["classes"]) for task in raw["tasks"]}


def _check_class_keys(mapping: Mapping[str, float], classes: Sequence[str], key: str) -> None:
    if set(mapping) != set(classes):
        raise ParamsError(
            f"{key} must name exactly the classes {sorted(classes)}, got {sorted(mapping)}",
            row=key,
            rule="class keys",
        )
    if any(value <= 0 for value in mapping.values()):
        raise ParamsError(
            f"{key} multipliers must be > 0, got {dict(mapping)}", row=key, rule="range"
        )


def check_finetune_params(config: FinetuneParams, classes: TaskClasses) -> None:
    """Raise ``ParamsError`` unless ``finetune.losses`` has exactly one entry per task and every
    per-class map names exactly that task's classes with positive values."""
    if set(config.losses) != set(classes):
        raise ParamsError(
            f"finetune.losses must have one entry per task {sorted(classes)}, "
            f"got {sorted(config.losses)}",
            row="finetune.losses",
            rule="task keys",
        )
    for task, names in classes.items():
        loss = config.losses[task]
        key = f"finetune.losses.{task}"
        _check_class_keys(loss.class_weight_multipliers, names, f"{key}.class_weight_multipliers")
        _check_class_keys(loss.oversample_boosts, names, f"{key}.oversample_boosts")
