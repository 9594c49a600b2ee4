"""Task classes, the one no-label marker and the finetune params checks that need class names."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lensforge.adjudication import tasks
from lensforge.core import params
from lensforge.core.errors import ParamsError


@pytest.fixture(scope="module")
def config(project_root) -> params.FinetuneParams:
    return params.load(project_root / "params.yaml").finetune


def test_label_names_map_to_ids_and_every_missing_cell_to_no_label():
    classes = ("negative", "neutral", "positive")
    ids = tasks.label_ids(["neutral", "", "positive", None, np.nan, "negative"], classes)
    assert ids.tolist() == [1, tasks.NO_LABEL, 2, tasks.NO_LABEL, tasks.NO_LABEL, 0]
    assert ids.dtype == np.int64
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['happy'\]"):
        tasks.label_ids(["happy", "neutral"], classes)


def test_no_label_is_not_a_class_id():
    assert all(tasks.NO_LABEL not in range(len(c)) for c in tasks.ADJUDICATION_TASKS.values())


def test_project_finetune_params_pass_the_class_key_checks(config):
    tasks.check_finetune_params(config)  # no error


def _with_multipliers(config, task: str, multipliers: dict) -> params.FinetuneParams:
    loss = dataclasses.replace(getattr(config, task), class_weight_multipliers=multipliers)
    return dataclasses.replace(config, **{task: loss})


def test_a_misspelled_class_in_class_weight_multipliers_is_rejected_with_its_key(config):
    broken = _with_multipliers(config, "sentiment", {"negative": 1, "netural": 2, "positive": 1})
    with pytest.raises(ParamsError, match="netural") as caught:
        tasks.check_finetune_params(broken)
    message = str(caught.value)
    assert "finetune.sentiment.class_weight_multipliers" in message and "rule class keys" in message


def test_a_missing_class_or_a_non_positive_multiplier_is_rejected(config):
    missing = _with_multipliers(config, "polarization", {"objective": 2.5, "partisan": 1.0})
    with pytest.raises(ParamsError, match="must name exactly the polarization classes"):
        tasks.check_finetune_params(missing)
    zero = _with_multipliers(
        config, "polarization", {"non_polarized": 1.0, "objective": 0.0, "partisan": 1.0}
    )
    with pytest.raises(ParamsError, match="multipliers must be > 0"):
        tasks.check_finetune_params(zero)


def test_oversample_boosts_must_name_the_task_classes(config):
    oversample = dataclasses.replace(config.oversample, sentiment={"negative": 1.0})
    with pytest.raises(ParamsError, match="finetune.oversample.sentiment"):
        tasks.check_finetune_params(dataclasses.replace(config, oversample=oversample))
