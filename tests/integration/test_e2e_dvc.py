"""End to end: real `dvc repro` and `dvc exp run` in a temp git copy of the project, tiny model.

One module-scoped repro feeds every test here (it is the slow part: a few stages, each a process).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers.dvc_project import make_project, ran_stages, run


@pytest.fixture(scope="module")
def repo(project_root, tiny_model_dir, tmp_path_factory) -> Path:
    root = make_project(project_root, tmp_path_factory.mktemp("e2e") / "project", tiny_model_dir)
    first = run(["dvc", "repro", "evaluate"], root)
    root.joinpath("first_repro.log").write_text(first.stdout)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first repro"], root)
    return root


def test_repro_runs_every_stage_in_order(repo):
    order = ran_stages((repo / "first_repro.log").read_text())
    stages = ["validate", "prompts", "subject_model", "activations", "balance", "train", "evaluate"]
    assert sorted(order) == sorted(stages)
    # subject_model does not read validate's or prompts' outputs: DVC may run it before them.
    for before, after in zip(stages, stages[1:], strict=False):
        if {before, after} != {"prompts", "subject_model"}:
            assert order.index(before) < order.index(after), (before, after, order)
    manifest = json.loads((repo / "data/activations/manifest.json").read_text())
    assert manifest["layers"] == [1, 2]
    assert json.loads((repo / "metrics/validate.json").read_text())["success"] is True


def test_second_repro_runs_nothing(repo):
    again = run(["dvc", "repro", "evaluate"], repo)
    assert ran_stages(again.stdout) == []
    status = run(["dvc", "status", "evaluate"], repo)
    assert "up to date" in status.stdout.lower()


def test_exp_run_with_a_balance_variant_recomputes_no_activation(repo):
    exp = run(
        ["dvc", "exp", "run", "evaluate", "-n", "imbalanced", "-S", "balance.strategy=none"], repo
    )
    assert ran_stages(exp.stdout) == ["balance", "train", "evaluate"]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    assert "imbalanced" in json.dumps(shown)
    diff = json.loads(run(["dvc", "metrics", "diff", "--json", "HEAD", "imbalanced"], repo).stdout)
    assert "metrics/balance.json" in diff
    plots = json.loads(run(["dvc", "plots", "diff", "--json", "HEAD", "imbalanced"], repo).stdout)
    assert plots, "dvc plots diff produced nothing"


def test_exp_run_at_another_cached_layer_reruns_no_extraction(repo):
    exp = run(["dvc", "exp", "run", "evaluate", "-n", "layer1", "-S", "train.layer=1"], repo)
    assert ran_stages(exp.stdout) == ["train", "evaluate"]
    diff = json.loads(run(["dvc", "metrics", "diff", "--json", "HEAD", "layer1"], repo).stdout)
    assert "metrics/evaluate.json" in diff


def test_the_layer_sweep_reads_every_cached_layer(repo):
    swept = run(["dvc", "repro", "layer_sweep"], repo)
    assert ran_stages(swept.stdout) == ["layer_sweep"]
    summary = json.loads((repo / "metrics/layer_sweep.json").read_text())
    assert summary["layers"] == [1, 2]
    assert summary["taste_development/best_layer"] in (1, 2)


def test_lensforge_score_and_generate_read_the_trained_lenses_token_by_token(repo):
    text = "What would you notice if a friend were bitter?"
    scored = json.loads(run(["lensforge", "score", text, "--json"], repo).stdout)
    assert scored["text"] == text and scored["poles"] == ["negative", "neutral", "positive"]
    rows = scored["simplexes"]["taste_development"]
    assert len(rows) == len(scored["tokens"]) > 5 and scored["seeds"]["taste_development"] == [0, 1]
    assert all(len(row) == 3 and abs(sum(row) - 1) < 1e-5 for row in rows)
    table = run(["lensforge", "score", text, "--seed", "1"], repo).stdout.strip().splitlines()
    assert table[0] == text and len(table) == 3 + len(scored["tokens"])
    generated = json.loads(
        run(
            ["lensforge", "generate", "I think that", "--max-new-tokens", "4", "--json"], repo
        ).stdout
    )
    first = generated["first_generated_token"]
    assert 0 < first < len(generated["tokens"]) <= first + 4
    assert len(generated["simplexes"]["taste_development"]) == len(generated["tokens"])


def test_lensforge_score_refuses_lenses_of_another_cache(repo, tmp_path):
    copy = tmp_path / "copy"
    for part in ("models/subject", "data/activations", "models/lenses"):
        (copy / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(repo / part, copy / part)
    card_path = copy / "models/lenses/taste_development/seed_0/card.json"
    card = json.loads(card_path.read_text())
    card["cache_key"] = "0" * 64
    card_path.write_text(json.dumps(card))
    result = run(["lensforge", "score", "a sour taste"], copy, check=False)
    assert result.returncode == 2
    assert "another activation cache" in result.stderr and "Traceback" not in result.stderr
