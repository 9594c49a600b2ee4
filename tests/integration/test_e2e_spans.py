"""End to end: `dvc repro` and `dvc exp run` of the span branch in a temp git copy.

Real stages as processes (train_spans under `accelerate launch`) on a small synthetic series
(tests/helpers/bars.py, 2,000 daily bars with calm and volatile regimes) given as a user CSV in
data/raw/bars, plus a second synthetic instrument held out; two seeds, a few epochs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers.bars import write_synthetic_bars
from tests.helpers.dvc_project import copy_project, ran_stages, run

BRANCH = ["windows", "train_spans", "evaluate_spans"]


def _params(root: Path) -> None:
    path = root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["windows"].update(
        {"instruments": ["data/raw/bars/synthetic.csv"], "holdout": "data/raw/bars/other.csv"}
    )
    raw["train_spans"].update({"seeds": [0, 1], "max_epochs": 4, "patience": 2})
    raw["train_spans"]["encoder"].update({"hidden": 8, "n_layers": 2})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def repo(project_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e_spans") / "project"
    root.mkdir()
    copy_project(project_root, root)
    write_synthetic_bars(root / "data/raw/bars/synthetic.csv", 2000, seed=0)
    write_synthetic_bars(root / "data/raw/bars/other.csv", 900, seed=1)
    _params(root)
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny span project"], root)
    first = run(["dvc", "repro", "evaluate_spans"], root)
    (root / "first_repro.log").write_text(first.stdout)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "first repro"], root)
    return root


def test_repro_runs_the_branch_and_writes_its_metrics_and_plots(repo):
    assert ran_stages((repo / "first_repro.log").read_text()) == BRANCH
    windows = json.loads((repo / "metrics/windows.json").read_text())
    assert windows["bars_in_two_splits"] == 0
    assert set(windows["windows_per_split"]) == {"train", "validation", "test", "holdout"}
    train = json.loads((repo / "metrics/train_spans.json").read_text())
    assert sorted(train["runs"]) == ["seed_0", "seed_1"]
    assert 0.0 <= train["runs"]["seed_0"]["loss_share"]["countdown"] <= 1.0
    evaluate = json.loads((repo / "metrics/evaluate_spans.json").read_text())
    assert evaluate["seeds"] == [0, 1] and sorted(evaluate["runs"]) == ["seed_0", "seed_1"]
    assert 0.0 <= evaluate["runs"]["seed_0"]["test"]["span_f1"] <= 1.0
    assert evaluate["test"]["span_f1_std"] is not None  # two seeds: a spread
    assert (repo / "models/spans/seed_1/model.safetensors").is_file()
    targets = ["span_test_windows", "span_loss_share", "metrics/spans/train"]
    shown = json.loads(run(["dvc", "plots", "show", "--json", *targets], repo).stdout)
    assert not shown.get("errors"), shown.get("errors")  # only this branch's plots were made
    for plot in targets:
        assert (
            shown["data"][plot]
            if plot in shown["data"]
            else any(key.startswith(plot) for key in shown["data"])
        ), plot
    again = run(["dvc", "repro", "evaluate_spans"], repo)
    assert ran_stages(again.stdout) == []


def test_a_countdown_scale_trial_reruns_training_only_and_diffs_the_metrics(repo):
    out = run(
        ["dvc", "exp", "run", "evaluate_spans", "-S", "train_spans.countdown_scale=raw"], repo
    )
    assert ran_stages(out.stdout) == ["train_spans", "evaluate_spans"]
    diff = run(["dvc", "metrics", "diff", "--json"], repo)
    changed = json.loads(diff.stdout)
    assert "metrics/train_spans.json" in changed
    assert "metrics/evaluate_spans.json" in changed
    card = json.loads((repo / "models/spans/seed_0/card.json").read_text())
    assert card["countdown_scale"] == "raw"
