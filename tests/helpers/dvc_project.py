"""Helpers for tests that drive real DVC in a temp git copy of the project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def dvc_env() -> dict[str, str]:
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
    result = subprocess.run(cmd, cwd=cwd, env=dvc_env(), capture_output=True, text=True)
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
        generated = rel.startswith(("data/", "metrics/", "models/")) and not rel.startswith(
            ("data/raw/hatcat/", "data/raw/concepts/")
        )
        if not src.is_file() or generated or rel == "dvc.lock":
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def tiny_params(params_path: Path, model_dir: Path) -> None:
    """Shrink the default params to one simplex, two seeds and the tiny random model."""
    raw = yaml.safe_load(params_path.read_text())
    raw["data"]["simplexes"] = ["taste_development"]
    raw["prompts"]["per_synset"] = 6
    raw["model"].update({"source": "hf", "name_or_path": str(model_dir), "layers": [1, 2]})
    raw["train"]["layer"] = 2
    raw["train_concepts"]["layer"] = 2
    raw["activations"]["dtype"] = "float32"
    raw["train"]["seeds"] = [0, 1]
    raw["train"]["max_epochs"] = 15
    raw["train"]["patience"] = 5
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))


def make_project(project_root: Path, root: Path, model_dir: Path) -> Path:
    """A committed git + DVC copy of the project at ``root`` with tiny params."""
    root.mkdir(parents=True, exist_ok=True)
    copy_project(project_root, root)
    tiny_params(root / "params.yaml", model_dir)
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny project"], root)
    return root
