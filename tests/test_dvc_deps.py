"""A stage whose code changed must rerun: every lensforge module a stage can reach is a DVC dep.

For each stage in dvc.yaml, the modules ``lensforge.stages.<name>`` imports, transitively
(function-level imports included, read from the source by ``tests.helpers.imports``), must each
be covered by one of the stage's deps: the file itself or a folder above it. A package
``__init__.py`` that holds only a docstring runs no code and needs no dep. ``lensforge.cli`` only
parses arguments and loads params for the stage, so it is not part of a stage's code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.helpers.imports import lensforge_closure


def _stages(project_root: Path) -> dict:
    return yaml.safe_load((project_root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _only_docstring(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return (
        len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    )


def _deps(stage: dict) -> list[str]:
    return [next(iter(d)) if isinstance(d, dict) else d for d in stage.get("deps", [])]


def uncovered(project_root: Path, stage_name: str, stage: dict) -> list[str]:
    deps = [Path(d) for d in _deps(stage)]
    missing = []
    for path in lensforge_closure(project_root / "src", f"lensforge.stages.{stage_name}"):
        if path.name == "__init__.py" and _only_docstring(path):
            continue
        relative = path.relative_to(project_root)
        if not any(relative == dep or dep in relative.parents for dep in deps):
            missing.append(relative.as_posix())
    return sorted(missing)


def test_every_module_a_stage_imports_is_one_of_its_deps(project_root):
    problems = {
        name: missing
        for name, stage in _stages(project_root).items()
        if (missing := uncovered(project_root, name, stage))
    }
    assert problems == {}, f"add these to the stages' deps in dvc.yaml: {problems}"


def test_every_source_dep_of_a_stage_exists(project_root):
    for name, stage in _stages(project_root).items():
        for dep in _deps(stage):
            if dep.startswith("src/"):
                assert (project_root / dep).exists(), f"{name}: dep {dep} does not exist"


@pytest.mark.parametrize("stage_name", ["train", "finetune"])
def test_the_check_fails_when_a_used_module_is_not_a_dep(project_root, stage_name):
    stage = _stages(project_root)[stage_name]
    trimmed = {**stage, "deps": [d for d in _deps(stage) if not d.endswith("core/metrics.py")]}
    assert "src/lensforge/core/metrics.py" in uncovered(project_root, stage_name, trimmed)
