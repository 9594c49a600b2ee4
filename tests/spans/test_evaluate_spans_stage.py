"""The evaluate_spans stage on a tmp project: synthetic windows in the windows stage's format and
two small untrained span models saved through the model API, with their training records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.numpy import load_file

from lensforge.cli import main
from lensforge.core import artifacts, curves, params, paths
from lensforge.core.errors import ArtifactError
from lensforge.spans import model as span_model
from lensforge.stages import evaluate_spans
from tests.helpers.span_windows import synthetic_windows

LENGTH = 16
FEATURES = ["back_vol_ratio", "return_z", "range"]
TASKS = ["class", "pointers", "span", "countdown"]
SPLITS = ["train", "validation", "test", "holdout"]
SEEDS = (0, 1)
N_EPOCHS = 3


def _write_windows(root: Path) -> None:
    n_per_split = 24
    windows = synthetic_windows(n_per_split * len(SPLITS), length=LENGTH, seed=5)
    noise = np.random.default_rng(5).uniform(0.0, 0.5, windows["membership"].shape)
    windows["features"][..., 0] = 2.5 * windows["membership"] + noise  # the volatility ratio
    artifacts.write_safetensors(
        root / paths.SPAN_WINDOWS, {k: torch.from_numpy(v) for k, v in windows.items()}
    )
    split = np.repeat(SPLITS, n_per_split)
    n = len(split)
    index = pd.DataFrame(
        {
            "window_id": np.arange(n),
            "instrument": np.where(split == "holdout", "goog", "sp500"),
            "split": split,
            "first_bar": np.arange(n) * 5,
            "first_time": "2000-01-01",
            "last_time": "2000-02-01",
            "window_class": windows["window_class"],
            "start": windows["start"],
            "end": windows["end"],
        }
    )
    artifacts.write_csv(root / paths.SPAN_WINDOW_INDEX, index)
    artifacts.write_json(
        root / paths.SPAN_FEATURES,
        {
            "features": FEATURES,
            "label": {"horizon": 3},
            "instruments": {},
            "baseline_feature": FEATURES[0],
        },
    )


def _write_models(root: Path) -> None:
    sha = artifacts.file_sha256(root / paths.SPAN_WINDOWS)
    config = span_model.SpanModelConfig(
        n_features=len(FEATURES),
        window=LENGTH,
        kind="conv",
        hidden=8,
        n_layers=1,
        kernel=3,
        dropout=0.0,
        causal=False,
    )
    runs = {}
    for seed in SEEDS:
        card = {
            "seed": seed,
            "tasks": TASKS,
            "countdown_scale": "raw",
            "countdown_clip": 20.0,
            "windows_sha256": sha,
            "feature_names": FEATURES,
        }
        model = span_model.build_model(config, seed=seed)
        span_model.save_span_model(paths.span_model_dir(root, seed), model, card)
        history = [
            {"epoch": e, **{f"train/{t}/weighted": float(i + e) for i, t in enumerate(TASKS)}}
            for e in range(1, N_EPOCHS + 1)
        ]
        curves.write_curves(history, paths.train_spans_live_dir(root, seed), step_key="epoch")
        runs[f"seed_{seed}"] = {"best_epoch": N_EPOCHS, "best": history[-1], "last": history[-1]}
    artifacts.write_json(root / paths.TRAIN_SPANS_METRICS, {"seeds": list(SEEDS), "runs": runs})


@pytest.fixture
def project(tmp_path, single_torch_thread) -> Path:
    _write_windows(tmp_path)
    _write_models(tmp_path)
    return tmp_path


def _params():
    return params.load()


def test_stage_scores_every_seed_and_writes_metrics_and_plots(project):
    config = _params()
    evaluate_spans.run(config, root=project)
    report = json.loads((project / paths.EVALUATE_SPANS_METRICS).read_text())
    assert report["seeds"] == list(SEEDS)
    assert set(report["runs"]) == {"seed_0", "seed_1"}
    for seed_run in report["runs"].values():
        assert seed_run["threshold"] in config.evaluate_spans.thresholds
        assert seed_run["test"]["n_windows"] == 24 and seed_run["holdout"]["n_windows"] == 24
        # the best epoch's weighted components are 3, 4, 5, 6: countdown 6 of 18
        assert seed_run["countdown_share"] == pytest.approx(6 / 18)
    assert report["chosen_threshold"] == {s: r["threshold"] for s, r in report["runs"].items()}
    f1 = [r["test"]["span_f1"] for r in report["runs"].values()]
    assert report["test"]["span_f1"] == pytest.approx(np.mean(f1))
    assert report["test"]["span_f1_std"] == pytest.approx(np.std(f1, ddof=1))
    assert "holdout" in report and report["countdown_share"] == pytest.approx(6 / 18)
    rule = report["baselines"]["volatility_rule"]
    assert rule["test"]["span_f1"] > 0.9 and rule["holdout"]["span_f1"] > 0.9
    assert report["baselines"]["logistic"]["test"]["span_f1"] > 0.9
    assert all(isinstance(m, str) for m in report["diagnostics"])

    windows_plot = pd.read_csv(project / paths.EVALUATE_SPANS_WINDOWS_PLOT)
    assert list(windows_plot.columns) == [
        "window",
        "position",
        "bar",
        "in_span",
        "predicted_probability",
        "predicted",
    ]
    assert windows_plot["window"].nunique() == config.evaluate_spans.plot_windows
    assert len(windows_plot) == config.evaluate_spans.plot_windows * LENGTH
    assert set(windows_plot["window"]) <= set(range(48, 72))  # test windows only

    shares = pd.read_csv(project / paths.EVALUATE_SPANS_LOSS_SHARE_PLOT)
    assert list(shares.columns) == ["epoch", "class", "pointers", "span", "countdown"]
    assert shares["epoch"].tolist() == list(range(1, N_EPOCHS + 1))
    np.testing.assert_allclose(shares.drop(columns="epoch").sum(axis=1), 1.0)
    assert shares.loc[0, "countdown"] == pytest.approx(4 / 10)  # weighted 1, 2, 3, 4 at epoch 1


def test_stage_refuses_when_no_model_was_trained(project):
    shutil.rmtree(project / paths.SPAN_MODELS_DIR)
    with pytest.raises(ArtifactError, match="no trained span model"):
        evaluate_spans.run(_params(), root=project)
    assert not (project / paths.EVALUATE_SPANS_METRICS).exists()


def test_stage_refuses_a_model_trained_on_other_windows(project):
    tensors_path = project / paths.SPAN_WINDOWS
    tensors = load_file(str(tensors_path))
    tensors["features"][0, 0, 1] += 0.5  # the windows were rebuilt after training
    artifacts.write_safetensors(tensors_path, {k: torch.from_numpy(v) for k, v in tensors.items()})
    with pytest.raises(ArtifactError, match="sha256"):
        evaluate_spans.run(_params(), root=project)
    assert not (project / paths.EVALUATE_SPANS_METRICS).exists()


def test_cli_reports_a_missing_model_with_exit_code_2(project, project_root):
    shutil.rmtree(project / paths.SPAN_MODELS_DIR)
    shutil.copy(project_root / paths.PARAMS, project / paths.PARAMS)
    result = CliRunner().invoke(main, ["--root", str(project), "evaluate_spans"])
    assert result.exit_code == 2
    assert "no trained span model" in result.output
