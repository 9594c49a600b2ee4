"""End to end: `dvc repro` and `dvc exp run` of the adjudications branch in a temp git copy.

Real archives, real stages as processes (the finetune stage under `accelerate launch`), a tiny
random BERT encoder; one module-scoped repro feeds both tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import tiny_encoder
from tests.helpers.adjudication_setup import link_archives, write_params
from tests.helpers.dvc_project import copy_project, ran_stages, run

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir

BRANCH = ["import_adjudications", "adjudicate", "finetune", "evaluate_adjudications"]


@pytest.fixture(scope="module")
def repo(project_root, tiny_encoder_dir, tmp_path_factory, monkeypatch_module) -> Path:
    root = tmp_path_factory.mktemp("e2e_adjudications") / "project"
    root.mkdir()
    copy_project(project_root, root)
    link_archives(project_root, root)
    write_params(project_root, root, tiny_encoder_dir)
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny adjudications project"], root)
    first = run(["dvc", "repro", "evaluate_adjudications"], root)
    (root / "first_repro.log").write_text(first.stdout)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first repro"], root)
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LENSFORGE_THREADS", "1")  # a tiny model: one thread per stage is fastest
        yield patch


def test_repro_runs_the_branch_in_order_and_evaluates_the_saved_model(repo):
    assert ran_stages((repo / "first_repro.log").read_text()) == BRANCH
    report = json.loads((repo / "metrics/evaluate_adjudications.json").read_text())
    card = json.loads((repo / "models/adjudicator/card.json").read_text())
    assert report["weights_sha256"] == card["weights_sha256"]
    status = run(["dvc", "status", "evaluate_adjudications"], repo)
    assert "up to date" in status.stdout.lower()


def test_exp_run_with_focal_loss_reruns_only_finetune_and_shows_per_class_f1(repo):
    exp = run(
        [
            "dvc",
            "exp",
            "run",
            "evaluate_adjudications",
            "-n",
            "focal",
            "-S",
            "finetune.sentiment.loss=focal",
            "-S",
            "finetune.polarization.loss=focal",
        ],
        repo,
    )
    assert ran_stages(exp.stdout) == ["finetune", "evaluate_adjudications"]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    text = json.dumps(shown)
    assert '"focal"' in text
    experiments = [
        e for entry in shown for e in (entry.get("experiments") or []) if e.get("name") == "focal"
    ]
    revision = experiments[0]["revs"][0]["data"]
    metrics = revision["metrics"]["metrics/evaluate_adjudications.json"]["data"]
    for task, classes in (
        ("sentiment", ("negative", "neutral", "positive")),
        ("polarization", ("non_polarized", "objective", "partisan")),
    ):
        for name in classes:
            assert 0.0 <= metrics[task][name]["f1"] <= 1.0
    assert revision["params"]["params.yaml"]["data"]["finetune"]["sentiment"]["loss"] == "focal"
