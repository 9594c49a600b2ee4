"""End to end: `dvc repro` and `dvc exp run` of the adjudications branch in temp git copies.

Real stages as processes (finetune under `accelerate launch`), a tiny random BERT encoder and a
tiny subject model: the bundled archives with two seeds (one repro feeds two tests), and a user's
CSV project with a task lensforge never saw (stance), tracked with `dvc add`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lensforge.adjudication import tasks
from lensforge.core import paths
from tests.helpers import tiny_encoder
from tests.helpers.adjudication_setup import (
    link_archives,
    stance_params,
    write_params,
    write_stance_csv,
)
from tests.helpers.dvc_project import copy_project, ran_stages, run

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir

BRANCH = ["import_adjudications", "adjudicate", "finetune", "evaluate_adjudications"]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LENSFORGE_THREADS", "1")  # a tiny model: one thread per stage is fastest
        yield patch


def _project(project_root, root, encoder_dir, model_dir) -> Path:
    root.mkdir(parents=True)
    copy_project(project_root, root)
    link_archives(project_root, root)
    # data/raw/adjudications holds the user's files and their .dvc files: not ignored by git.
    ignore = root / "data/raw/.gitignore"
    if ignore.is_file():
        kept = [line for line in ignore.read_text().splitlines() if line != "/adjudications"]
        ignore.write_text("".join(f"{line}\n" for line in kept))
    write_params(project_root, root, encoder_dir, model_dir=model_dir, seeds=[0, 1])
    run(["git", "init", "-q"], root)
    return root


def _commit_and_repro(root: Path) -> str:
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny adjudications project"], root)
    first = run(["dvc", "repro", "evaluate_adjudications"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first repro"], root)
    return first.stdout


@pytest.fixture(scope="module")
def repo(
    project_root, tiny_encoder_dir, tiny_model_dir, tmp_path_factory, monkeypatch_module
) -> Path:
    root = _project(
        project_root,
        tmp_path_factory.mktemp("e2e_adjudications") / "project",
        tiny_encoder_dir,
        tiny_model_dir,
    )
    (root / "first_repro.log").write_text(_commit_and_repro(root))
    return root


@pytest.fixture(scope="module")
def stance_repo(
    project_root, tiny_encoder_dir, tiny_model_dir, tmp_path_factory, monkeypatch_module
) -> Path:
    root = _project(
        project_root,
        tmp_path_factory.mktemp("e2e_stance") / "project",
        tiny_encoder_dir,
        tiny_model_dir,
    )
    params_path = root / paths.PARAMS
    params_path.write_text(
        yaml.safe_dump(stance_params(yaml.safe_load(params_path.read_text())), sort_keys=False)
    )
    write_stance_csv(root)
    run(
        ["dvc", "add", str(paths.ADJUDICATIONS_USER_ITEMS), str(paths.ADJUDICATIONS_USER_RATINGS)],
        root,
    )
    (root / "first_repro.log").write_text(_commit_and_repro(root))
    return root


def _metrics(root: Path) -> dict:
    return json.loads((root / paths.EVALUATE_ADJUDICATIONS_METRICS).read_text())


def test_repro_runs_the_branch_in_order_and_evaluates_every_seed(repo):
    ran = ran_stages((repo / "first_repro.log").read_text())
    assert [s for s in ran if s in BRANCH] == BRANCH
    assert ran.index("subject_model") < ran.index("finetune")  # a declared dependency
    report = _metrics(repo)
    assert report["seeds"] == ["seed_0", "seed_1"]
    for seed in (0, 1):
        card = json.loads((paths.adjudicator_dir(repo, seed) / "card.json").read_text())
        assert report["runs"][f"seed_{seed}"]["weights_sha256"] == card["weights_sha256"]
    assert {"tfidf_logreg", "majority", "domain_only"} == set(report["sentiment"]["baselines"])
    status = run(["dvc", "status", "evaluate_adjudications"], repo)
    assert "up to date" in status.stdout.lower()


def test_exp_run_with_dawid_skene_reruns_from_adjudicate_and_shows_skills_seeds_baselines(repo):
    exp = run(
        [
            "dvc",
            "exp",
            "run",
            "evaluate_adjudications",
            "-n",
            "ds",
            "-S",
            "adjudicate.method=dawid_skene",
        ],
        repo,
    )
    assert ran_stages(exp.stdout) == ["adjudicate", "finetune", "evaluate_adjudications"]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    experiments = [
        e for entry in shown for e in (entry.get("experiments") or []) if e.get("name") == "ds"
    ]
    revision = experiments[0]["revs"][0]["data"]
    adjudicated = revision["metrics"]["metrics/adjudicate.json"]["data"]
    assert adjudicated["method"] == "dawid_skene"
    assert len(adjudicated["rater_skills"]["sentiment"]) >= 5
    assert adjudicated["changed_from_mean_threshold"]["sentiment"] >= 0
    evaluated = revision["metrics"]["metrics/evaluate_adjudications.json"]["data"]
    for task, classes in (
        ("sentiment", ("negative", "neutral", "positive")),
        ("polarization", ("non_polarized", "objective", "partisan")),
    ):
        for name in classes:
            assert 0.0 <= evaluated[task][name]["f1"] <= 1.0
            assert evaluated[task][name]["f1_std"] >= 0.0
        assert "tfidf_logreg" in evaluated[task]["baselines"]
    finetuned = revision["metrics"]["metrics/finetune.json"]["data"]
    assert finetuned["val_macro_f1"]["n"] == 2  # two seeds (dvc shows numbers, not lists)


def test_a_users_stance_csv_tracked_with_dvc_add_runs_through_evaluation(stance_repo):
    ran = ran_stages((stance_repo / "first_repro.log").read_text())
    assert [s for s in ran if s in BRANCH] == BRANCH
    assert (stance_repo / "data/raw/adjudications/items.csv.dvc").is_file()
    declared = tasks.read_task_classes(stance_repo / paths.ADJUDICATED_TASKS)
    assert declared == {"stance": ("against", "none", "favor")}
    report = _metrics(stance_repo)
    assert set(report["stance"]["baselines"]) == {"tfidf_logreg", "majority", "domain_only"}
    assert set(report["stance"]["by_domain"]) == {"forum", "tweets"}
    skills = json.loads((stance_repo / paths.ADJUDICATE_METRICS).read_text())["rater_skills"]
    assert skills["stance"]["cy"] < min(skills["stance"]["ann"], skills["stance"]["bob"])
    # A changed rating reruns the branch from the import.
    ratings = stance_repo / paths.ADJUDICATIONS_USER_RATINGS
    ratings.write_text(ratings.read_text().replace("s0,cy,stance,", "s0,dee,stance,", 1))
    status = run(["dvc", "status", "import_adjudications"], stance_repo)
    assert "changed" in status.stdout.lower() or "modified" in status.stdout.lower()
