"""Tasks as data: class ids, the score cuts, the one no-label marker and the finetune checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lensforge.adjudication import tasks
from lensforge.core import params
from lensforge.core.errors import ParamsError


@pytest.fixture(scope="module")
def loaded(project_root) -> params.Params:
    return params.load(project_root / "params.yaml")


def test_label_names_map_to_ids_and_every_missing_cell_to_no_label():
    classes = ("negative", "neutral", "positive")
    ids = tasks.label_ids(["neutral", "", "positive", None, np.nan, "negative"], classes)
    assert ids.tolist() == [1, tasks.NO_LABEL, 2, tasks.NO_LABEL, tasks.NO_LABEL, 0]
    assert ids.dtype == np.int64
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['happy'\]"):
        tasks.label_ids(["happy", "neutral"], classes)


def test_cuts_send_a_score_on_a_cut_toward_the_middle_of_the_scale():
    ids = tasks.score_class_ids(
        [-4, -0.6, -0.5, 0, 0.5, 0.51, 4], cuts=[-0.5, 0.5], score_range=[-4, 4]
    )
    assert ids.tolist() == [0, 0, 1, 1, 1, 2, 2]
    # A 1..5 scale with two classes cut at 3: 3 is the middle and joins the lower class.
    assert tasks.score_class_ids([1, 3, 3.5], cuts=[3], score_range=[1, 5]).tolist() == [0, 0, 1]


def test_the_default_params_declare_the_bundled_tasks_and_no_branch_code_names_them(
    loaded, project_root
):
    classes = tasks.task_classes(loaded.adjudicate.tasks)
    assert classes == {
        "sentiment": ("negative", "neutral", "positive"),
        "polarization": ("non_polarized", "objective", "partisan"),
    }
    names = [*classes, *(c for names in classes.values() for c in names)]
    stages = ("import_adjudications", "adjudicate", "finetune", "evaluate_adjudications")
    branch = [
        *(project_root / "src/lensforge/adjudication").glob("*.py"),
        *(project_root / "src/lensforge/stages" / f"{name}.py" for name in stages),
        project_root / "src/lensforge/core/paths.py",
    ]
    for path in branch:
        code = path.read_text()
        for name in names:
            assert f'"{name}"' not in code and f"'{name}'" not in code, (path, name)


def test_task_classes_keep_their_declaration_order_on_disk(tmp_path):
    """The heads are built (and initialised) in this order; JSON keys are written sorted."""
    declared = {"zeta": ("b", "a"), "alpha": ("y", "x", "z")}
    tasks.write_task_classes(tmp_path / "tasks.json", declared)
    read = tasks.read_task_classes(tmp_path / "tasks.json")
    assert list(read.items()) == list(declared.items())


def test_project_finetune_params_pass_the_class_key_checks(loaded):
    tasks.check_finetune_params(loaded.finetune, tasks.task_classes(loaded.adjudicate.tasks))


def _with_loss(config, task: str, **changes) -> params.FinetuneParams:
    losses = dict(config.losses)
    losses[task] = dataclasses.replace(losses[task], **changes)
    return dataclasses.replace(config, losses=losses)


def test_a_misspelled_class_in_class_weight_multipliers_is_rejected_with_its_key(loaded):
    classes = tasks.task_classes(loaded.adjudicate.tasks)
    broken = _with_loss(
        loaded.finetune,
        "sentiment",
        class_weight_multipliers={"negative": 1, "netural": 2, "positive": 1},
    )
    with pytest.raises(ParamsError, match="netural") as caught:
        tasks.check_finetune_params(broken, classes)
    message = str(caught.value)
    assert "finetune.losses.sentiment.class_weight_multipliers" in message
    assert "rule class keys" in message


def test_losses_must_have_one_entry_per_task_and_boosts_every_class(loaded):
    classes = tasks.task_classes(loaded.adjudicate.tasks)
    with pytest.raises(ParamsError, match="one entry per task"):
        tasks.check_finetune_params(loaded.finetune, {**classes, "stance": ("a", "b")})
    boosts = _with_loss(loaded.finetune, "polarization", oversample_boosts={"objective": 3.0})
    with pytest.raises(ParamsError, match="finetune.losses.polarization.oversample_boosts"):
        tasks.check_finetune_params(boosts, classes)


def _task(**changes) -> dict:
    raw = {
        "classes": ["against", "none", "favor"],
        "label_source": "labels",
        "score_range": [],
        "cuts": [],
        "mapping": {},
    }
    raw.update(changes)
    return raw


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"classes": ["only"]}, "classes"),
        ({"label_source": "scores", "score_range": [1, 5], "cuts": [2]}, "cuts"),
        ({"label_source": "scores", "score_range": [1, 5], "cuts": [4, 2]}, "cuts"),
        ({"label_source": "scores", "score_range": [1, 5], "cuts": [0, 2]}, "cuts"),
        ({"cuts": [0.5]}, "unused"),
        ({"label_source": "mapping", "mapping": {"x": "pro"}}, "mapping"),
    ],
)
def test_a_task_declaration_that_cannot_work_is_a_params_error_naming_the_task(
    loaded, project_root, changes, rule
):
    import yaml

    raw = yaml.safe_load((project_root / "params.yaml").read_text())
    raw["adjudicate"]["tasks"] = {"stance": _task(**changes)}
    with pytest.raises(ParamsError, match="adjudicate.tasks.stance") as caught:
        params.parse(raw)
    assert f"rule {rule}" in str(caught.value)
