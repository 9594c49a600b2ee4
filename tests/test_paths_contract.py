"""dvc.yaml and paths.py must name the same artifacts (two truths must not drift)."""

from __future__ import annotations

from pathlib import Path

import yaml

from lensforge.cli import STAGES
from lensforge.core import paths


def _declared(entries) -> list[str]:
    names = []
    for entry in entries or []:
        names.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return names


def _dvc_stages(project_root: Path) -> dict:
    return yaml.safe_load((project_root / "dvc.yaml").read_text())["stages"]


def _path_constants() -> set[str]:
    values = set()
    for name in dir(paths):
        value = getattr(paths, name)
        if isinstance(value, Path):
            values.add(value.as_posix())
        elif isinstance(value, dict):
            values.update(v.as_posix() for v in value.values() if isinstance(v, Path))
    return values


def test_every_artifact_path_in_dvc_yaml_is_a_paths_constant(project_root):
    constants = _path_constants()
    for stage_name, stage in _dvc_stages(project_root).items():
        for key in ("deps", "outs", "metrics", "plots"):
            for declared in _declared(stage.get(key)):
                if declared.startswith("src/"):
                    assert (project_root / declared).exists(), f"{stage_name}: {declared} missing"
                    continue
                inside = declared in constants or any(
                    declared == (Path(c) / n).as_posix()
                    for c in constants
                    for n in (paths.ACTIVATION_INDEX_NAME, paths.ACTIVATION_MANIFEST_NAME)
                )
                assert inside, f"{stage_name}.{key}: {declared} is not in lensforge.core.paths"


def test_every_metrics_file_in_paths_is_declared_by_its_stage(project_root):
    stages = _dvc_stages(project_root)
    expected = {
        "validate": paths.VALIDATE_METRICS,
        "prompts": paths.PROMPTS_METRICS,
        "subject_model": paths.SUBJECT_MODEL_METRICS,
        "activations": paths.ACTIVATIONS_METRICS,
        "balance": paths.BALANCE_METRICS,
        "train": paths.TRAIN_METRICS,
        "evaluate": paths.EVALUATE_METRICS,
    }
    for stage_name, metrics_path in expected.items():
        assert metrics_path.as_posix() in _declared(stages[stage_name].get("metrics"))


def test_stage_outputs_match_paths(project_root):
    stages = _dvc_stages(project_root)
    assert _declared(stages["prompts"]["outs"]) == [paths.PROMPTS_DIR.as_posix()]
    assert _declared(stages["subject_model"]["outs"]) == [paths.SUBJECT_MODEL_DIR.as_posix()]
    assert _declared(stages["activations"]["outs"]) == [paths.ACTIVATIONS_DIR.as_posix()]
    assert _declared(stages["balance"]["outs"]) == [paths.BALANCED_DIR.as_posix()]
    assert _declared(stages["train"]["outs"]) == [paths.LENSES_DIR.as_posix()]
    assert paths.TRAIN_LIVE_DIR.as_posix() in _declared(stages["train"]["plots"])


def test_one_name_everywhere_stage_cli_params_section(project_root):
    stages = _dvc_stages(project_root)
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    assert list(stages) == list(STAGES)
    for name, stage in stages.items():
        assert f"lensforge.cli {name}" in stage["cmd"] or stage["cmd"] == f"lensforge {name}"
        assert (project_root / "src/lensforge/stages" / f"{name}.py").exists()
        sections = {p.split(".")[0] for p in stage.get("params", [])}
        assert sections <= set(params), f"{name} lists unknown params {sections - set(params)}"
