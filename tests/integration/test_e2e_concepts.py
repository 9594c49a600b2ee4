"""End to end: the concept branch as real `dvc repro` in a temp git copy of the project, on a
slice of the real first-light pack (pack layers 0-1: 28 concepts) and the tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open

from tests.helpers.dvc_project import make_project, ran_stages, run

CONCEPT_STAGES = [  # in an order DVC may run them
    "validate_concepts",
    "concept_prompts",
    "subject_model",
    "concept_activations",
    "train_concepts",
    "evaluate_concepts",
    "lens_pack",
]


@pytest.fixture(scope="module")
def repo(project_root, tiny_model_dir, tmp_path_factory) -> Path:
    root = make_project(project_root, tmp_path_factory.mktemp("e2e") / "project", tiny_model_dir)
    params_path = root / "params.yaml"
    raw = yaml.safe_load(params_path.read_text())
    raw["concept_prompts"].update({"pack_layers": [0, 1], "per_concept": 8})
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    run(["git", "commit", "-qam", "concept slice"], root)
    first = run(["dvc", "repro", "lens_pack"], root)
    root.joinpath("first_repro.log").write_text(first.stdout)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first repro"], root)
    return root


def test_repro_runs_the_concept_branch_in_order_and_packs_every_lens(repo):
    ran = ran_stages((repo / "first_repro.log").read_text())
    assert sorted(ran) == sorted(CONCEPT_STAGES)
    # subject_model and the first two concept stages are independent: DVC may order them either
    # way; every other stage runs after what it reads.
    for before, after in zip(CONCEPT_STAGES, CONCEPT_STAGES[1:], strict=False):
        if {before, after} != {"concept_prompts", "subject_model"}:
            assert ran.index(before) < ran.index(after), (before, after, ran)
    manifest = json.loads((repo / "models/lens_pack/manifest.json").read_text())
    assert manifest["n_lenses"] == 28 and len(manifest["lenses"]) == 28
    assert {entry["pack_layer"] for entry in manifest["lenses"]} == {0, 1}
    with safe_open(str(repo / "models/lens_pack/lenses.safetensors"), framework="pt") as handle:
        assert handle.get_tensor("weight").shape == (28, manifest["d_model"])
    summary = json.loads((repo / "metrics/evaluate_concepts.json").read_text())
    assert summary["n_concepts"] == 28 and 0.0 <= summary["test_f1_mean"] <= 1.0
    trained = json.loads((repo / "metrics/train_concepts.json").read_text())
    assert sum(trained["tier_counts"].values()) == 28


def test_second_repro_runs_nothing(repo):
    assert ran_stages(run(["dvc", "repro", "lens_pack"], repo).stdout) == []


def test_a_lens_kind_trial_recomputes_no_activation(repo):
    exp = run(
        ["dvc", "exp", "run", "lens_pack", "-n", "mlp", "-S", "train_concepts.kind=mlp"], repo
    )
    assert ran_stages(exp.stdout) == ["train_concepts", "evaluate_concepts", "lens_pack"]
