"""The tasks of the adjudication classifier, their classes in label-id order, and the params
checks that need those class names (core params cannot know them)."""

from __future__ import annotations

from collections.abc import Mapping

from lensforge.core.errors import ParamsError
from lensforge.core.params import FinetuneParams

ADJUDICATION_TASKS: dict[str, tuple[str, ...]] = {
    "sentiment": ("negative", "neutral", "positive"),
    "polarization": ("non_polarized", "objective", "partisan"),
}


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
