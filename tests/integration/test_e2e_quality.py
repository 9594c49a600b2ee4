"""End to end: the data-quality branch as real `dvc repro` on top of the concept branch's e2e
project (pack layers 0-1 of the real first-light pack, the tiny random model), judged by the
packaged MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers.dvc_project import ran_stages, run
from tests.integration.test_e2e_concepts import repo  # noqa: F401  (the concept branch, built)

QUALITY_STAGES = ["quality_samples", "data_quality"]


@pytest.fixture(scope="module")
def quality_repo(repo: Path) -> Path:  # noqa: F811
    params_path = repo / "params.yaml"
    raw = yaml.safe_load(params_path.read_text())
    raw["quality_samples"].update({"per_quadrant": 2, "n_positive": 3, "n_negative": 3,
                                   "max_new_tokens": 8})  # fmt: skip
    raw["data_quality"].update({"n_bootstrap": 200})
    raw["data_quality"]["judge"]["calibration_concepts"] = 100
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    run(["git", "commit", "-qam", "quality slice"], repo)
    first = run(["dvc", "repro", "data_quality"], repo)
    repo.joinpath("quality_repro.log").write_text(first.stdout)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "quality repro"], repo)
    return repo


def test_repro_runs_only_the_quality_stages_after_the_concept_branch(quality_repo):
    ran = ran_stages((quality_repo / "quality_repro.log").read_text())
    assert ran == QUALITY_STAGES


def test_quadrants_shortfalls_and_samples_are_reported(quality_repo):
    counts = json.loads((quality_repo / "metrics/quality_samples.json").read_text())
    table = pd.read_csv(quality_repo / "data/quality/quadrants.csv", keep_default_na=False)
    assert len(table) == counts["n_pack_concepts"] == 28
    for q in "ABCD":
        assert counts[f"n_{q}"] == int((table["quadrant"] == q).sum())
        assert counts[f"short_{q}"] == max(0, 2 - counts[f"n_{q}"])
    samples = pd.read_csv(quality_repo / "metrics/data_quality/samples.csv")
    n_concepts = sum(min(2, counts[f"n_{q}"]) for q in "ABCD")
    assert samples["concept"].nunique() == n_concepts and len(samples) == 6 * n_concepts
    assert set(samples["grade"]) <= {"empty", "short", "repetitive", "good"}
    assert samples["relevance"].between(1, 5).all()
    metrics = json.loads((quality_repo / "metrics/data_quality.json").read_text())
    assert metrics["n_samples"] == len(samples)
    assert all(isinstance(v, int | float) or v is None for v in metrics.values())
    assert metrics["calibration_related_cosine"] > metrics["calibration_unrelated_cosine"]
    words = (quality_repo / "metrics/data_quality/diagnostics.txt").read_text()
    assert "ceiling method" in words and "Spearman relevance_gap_f1" in words
    for q in "ABCD":
        if counts[f"short_{q}"]:
            assert f"quadrant {q}: only {counts[f'n_{q}']} concept(s)" in words


def test_dvc_sees_the_metrics_and_plots(quality_repo):
    shown = run(["dvc", "metrics", "show", "--json"], quality_repo).stdout
    assert "data_quality.json" in shown and "quality_samples.json" in shown
    plots = run(["dvc", "plots", "show", "--json", "--split"], quality_repo).stdout
    assert "metrics/data_quality/gap_vs_f1.csv" in plots
    assert "metrics/data_quality/quality_by_quadrant.csv" in plots


def test_second_repro_runs_nothing(quality_repo):
    assert ran_stages(run(["dvc", "repro", "data_quality"], quality_repo).stdout) == []


def test_a_grading_trial_reruns_only_data_quality(quality_repo):
    exp = run(
        ["dvc", "exp", "run", "data_quality", "-n", "strict",
         "-S", "data_quality.grading.max_repetition=0.1"],
        quality_repo,
    )  # fmt: skip
    assert ran_stages(exp.stdout) == ["data_quality"]
