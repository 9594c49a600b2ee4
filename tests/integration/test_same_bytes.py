"""Same inputs, same bytes (issue 8, section 7): every stage that has DVC outputs, run twice on
the same inputs, writes byte-identical outputs.

Timings and other run-specific values belong in metrics files (which DVC does not hash into the
outputs); an output that changed on every run would give ``models/subject`` and everything
downstream a new hash at each ``dvc repro``. The whole pipeline chain (the stages of dvc.yaml
that declare ``outs``, in dvc.yaml order) runs on tiny settings, twice, each time in its own
process with its own ``PYTHONHASHSEED`` (a set or dict ordered by string hashes would differ
between processes, never within one) and in its own project folder (so an absolute path of the
run leaking into an output shows up too). Then every file of every output is compared by
sha256; metrics and plots are not compared.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from accelerate.state import AcceleratorState

from lensforge.core import params as params_mod
from lensforge.core import paths
from tests.conftest import PROJECT_ROOT
from tests.helpers import tiny_encoder
from tests.helpers.adjudication_setup import link_archives, tiny_adjudication_params

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir

DRIVER = (
    "import sys; from pathlib import Path; "
    "from tests.integration.test_same_bytes import run_chain; run_chain(Path(sys.argv[1]))"
)


def output_stages(project_root: Path) -> dict[str, list[str]]:
    """Stage name -> its declared ``outs``, for every dvc.yaml stage that has any, in order."""
    stages = yaml.safe_load((project_root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {
        name: [next(iter(out)) if isinstance(out, dict) else out for out in stage["outs"]]
        for name, stage in stages.items()
        if stage.get("outs")
    }


def all_stages(project_root: Path) -> list[str]:
    """Every dvc.yaml stage, in order (the ones without outputs feed the others: evaluate_concepts
    writes the per-concept table the lens pack reads)."""
    return list(yaml.safe_load((project_root / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def run_chain(root: Path) -> None:
    """Run every stage's ``run`` on ``root``, in dvc.yaml order (in a fresh process)."""
    params = params_mod.load(root / paths.PARAMS)
    for stage in all_stages(PROJECT_ROOT):
        try:
            importlib.import_module(f"lensforge.stages.{stage}").run(params, root=root)
        finally:
            AcceleratorState._reset_state(True)  # train and finetune each build their own


def tiny_params(project_root: Path, *, model_dir: Path, encoder_dir: Path) -> dict:
    """The project's params.yaml shrunk to seconds: one simplex, the tiny subject model and
    encoder, several activation shards, two lens seeds, few adjudication items."""
    raw = yaml.safe_load((project_root / paths.PARAMS).read_text(encoding="utf-8"))
    raw["data"]["simplexes"] = ["taste_development"]
    raw["model"].update({"source": "hf", "name_or_path": str(model_dir), "layers": [1, 2]})
    raw["train"]["layer"] = 2
    raw["train_concepts"]["layer"] = 2
    raw["activations"].update({"batch_size": 16, "shard_size": 256})
    raw["train"].update({"seeds": [0, 1], "max_epochs": 6, "patience": 3})
    raw["concept_prompts"].update({"pack_layers": [0, 1], "per_concept": 8})
    raw["quality_samples"].update({"per_quadrant": 2, "n_positive": 3, "n_negative": 3})
    raw["quality_samples"]["max_new_tokens"] = 6
    raw["data_quality"].update({"n_bootstrap": 200})
    raw["data_quality"]["judge"]["calibration_concepts"] = 100
    raw["train_spans"].update({"max_epochs": 2, "patience": 2})
    raw["train_spans"]["encoder"].update({"hidden": 8, "n_layers": 2})
    return tiny_adjudication_params(raw, encoder_dir)


def make_root(root: Path, project_root: Path, raw_params: dict) -> Path:
    """A project folder holding the raw inputs (HatCat files, archives) and the params."""
    shutil.copytree(project_root / paths.RAW_DIR, root / paths.RAW_DIR)
    shutil.copytree(project_root / paths.CONCEPTS_RAW_DIR, root / paths.CONCEPTS_RAW_DIR)
    link_archives(project_root, root)
    (root / paths.PARAMS).write_text(yaml.safe_dump(raw_params), encoding="utf-8")
    return root


def run_in_fresh_process(root: Path, *, hash_seed: int) -> None:
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed), "HF_HUB_OFFLINE": "1"}
    env["LENSFORGE_THREADS"] = "1"  # the same threads in both runs (sums split alike)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(root)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        raise AssertionError(f"pipeline chain failed in {root}:\n{done.stderr[-4000:]}")


def output_hashes(root: Path, outs: list[str]) -> dict[str, str]:
    """Relative path -> sha256 of every file of ``outs`` under ``root``."""
    hashes = {}
    for out in outs:
        top = root / out
        assert top.exists(), f"output {out} was not written"
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        assert files, f"output {out} is empty"
        for path in files:
            hashes[path.relative_to(root).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return hashes


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, project_root, tiny_model_dir, tiny_encoder_dir) -> dict:
    raw = tiny_params(project_root, model_dir=tiny_model_dir, encoder_dir=tiny_encoder_dir)
    roots = {}
    for hash_seed, name in ((1, "first"), (2, "second")):
        root = make_root(tmp_path_factory.mktemp(name), project_root, raw)
        run_in_fresh_process(root, hash_seed=hash_seed)
        roots[name] = root
    return roots


def test_the_chain_covers_every_stage_that_has_outputs(project_root):
    assert list(output_stages(project_root)) == [
        "prompts", "subject_model", "activations", "balance", "train", "evaluate", "layer_sweep",
        "import_adjudications", "adjudicate", "finetune",
        "concept_prompts", "concept_activations", "train_concepts", "lens_pack",
        "quality_samples", "data_quality", "windows", "train_spans", "evaluate_spans", "report",
    ]  # fmt: skip


@pytest.mark.slow
def test_every_output_stage_run_twice_writes_the_same_bytes(two_runs, project_root):
    changed = {}
    for stage, outs in output_stages(project_root).items():
        first = output_hashes(two_runs["first"], outs)
        second = output_hashes(two_runs["second"], outs)
        assert sorted(first) == sorted(second), f"{stage}: different files"
        changed[stage] = sorted(name for name in first if first[name] != second[name])
    changed = {stage: files for stage, files in changed.items() if files}
    assert not changed, f"outputs that differ between two runs on the same inputs: {changed}"


@pytest.mark.slow
def test_timings_live_in_the_metrics_files(two_runs):
    for name in ("first", "second"):
        root = two_runs[name]
        subject_metrics = yaml.safe_load((root / paths.SUBJECT_MODEL_METRICS).read_text())
        activation_metrics = yaml.safe_load((root / paths.ACTIVATIONS_METRICS).read_text())
        assert subject_metrics["conversion_seconds"] > 0 and activation_metrics["seconds"] > 0
        assert not [p for p in root.rglob("*") if p.name.endswith((".tmp", ".old"))]
