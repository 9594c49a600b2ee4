"""End to end: real `dvc repro` and `dvc exp run` in a temp git copy of the project, tiny model.

One module-scoped repro feeds every test here (it is the slow part: a few stages, each a process).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "HF_HUB_OFFLINE": "1",
            "GIT_AUTHOR_NAME": "lensforge test",
            "GIT_AUTHOR_EMAIL": "test@lensforge.invalid",
            "GIT_COMMITTER_NAME": "lensforge test",
            "GIT_COMMITTER_EMAIL": "test@lensforge.invalid",
            "DVC_NO_ANALYTICS": "1",
        }
    )
    return env


def run(cmd: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode})\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def copy_project(project_root: Path, dest: Path) -> None:
    """Copy what git tracks (plus untracked, non-ignored files) into ``dest``: a fresh clone's view."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=project_root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in listed:
        src = project_root / rel
        if not src.is_file() or rel.startswith(("data/prompts", "metrics/", "models/")):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def tiny_params(params_path: Path, model_dir: Path) -> None:
    raw = yaml.safe_load(params_path.read_text())
    raw["data"]["simplexes"] = ["taste_development"]
    raw["prompts"]["per_synset"] = 6
    raw["model"].update({"source": "hf", "name_or_path": str(model_dir), "layer": 2})
    raw["activations"]["dtype"] = "float32"
    raw["train"]["seeds"] = [0, 1]
    raw["train"]["max_epochs"] = 15
    raw["train"]["patience"] = 5
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def repo(project_root, tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e") / "project"
    root.mkdir()
    copy_project(project_root, root)
    tiny_params(root / "params.yaml", tiny_model_dir)
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny project"], root)
    first = run(["dvc", "repro"], root)
    root.joinpath("first_repro.log").write_text(first.stdout)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first repro"], root)
    return root


def test_repro_runs_every_stage_in_order(repo):
    order = ran_stages((repo / "first_repro.log").read_text())
    assert order == [
        "validate",
        "prompts",
        "subject_model",
        "activations",
        "balance",
        "train",
        "evaluate",
    ]
    manifest = json.loads((repo / "data/activations/manifest.json").read_text())
    assert manifest["layer"] == 2
    assert json.loads((repo / "metrics/validate.json").read_text())["success"] is True


def test_second_repro_runs_nothing(repo):
    again = run(["dvc", "repro"], repo)
    assert ran_stages(again.stdout) == []
    status = run(["dvc", "status"], repo)
    assert "up to date" in status.stdout.lower()


def test_exp_run_with_a_balance_variant_recomputes_no_activation(repo):
    exp = run(["dvc", "exp", "run", "-n", "imbalanced", "-S", "balance.strategy=none"], repo)
    assert ran_stages(exp.stdout) == ["balance", "train", "evaluate"]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    assert "imbalanced" in json.dumps(shown)
    diff = json.loads(run(["dvc", "metrics", "diff", "--json", "HEAD", "imbalanced"], repo).stdout)
    assert "metrics/balance.json" in diff
    plots = json.loads(run(["dvc", "plots", "diff", "--json", "HEAD", "imbalanced"], repo).stdout)
    assert plots, "dvc plots diff produced nothing"
