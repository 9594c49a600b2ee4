"""Smoke tests of the evaluate stage on lenses trained by the real balance and train stages.

The cache is the hand-made one of ``test_balance`` at d_model 8 (separable pole centres), two
simplexes (one with a ``/`` in its name), two seeds. Training runs once per module; each test
works on its own copy of the trained project.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from lensforge.cli import main
from lensforge.core import paths
from lensforge.core.errors import ArtifactError
from lensforge.lenses import models
from lensforge.lenses.hatcat import POLES
from lensforge.stages import balance, evaluate, train
from tests.helpers.lens_data import project_params, write_tiny_cache

SIMPLEXES = ("taste_development", "aspiration/social_mobility")
SEEDS = (0, 1)
TIERS = {"A", "B+", "B", "C+", "C", "F"}


def _params(project_root: Path, **evaluate_changes):
    params = project_params(project_root, strategy="median_target")
    fast = dataclasses.replace(
        params.train,
        seeds=SEEDS,
        max_epochs=40,
        patience=40,
        optimizer=dataclasses.replace(params.train.optimizer, lr=0.05),
    )
    return dataclasses.replace(
        params, train=fast, evaluate=dataclasses.replace(params.evaluate, **evaluate_changes)
    )


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory, project_root) -> Path:
    root = tmp_path_factory.mktemp("trained")
    write_tiny_cache(root / paths.ACTIVATIONS_DIR, simplexes=SIMPLEXES, d_model=8)
    params = _params(project_root)
    balance.run(params, root=root)
    train.run(params, root=root)
    shutil.copy(project_root / paths.PARAMS, root / paths.PARAMS)
    return root


@pytest.fixture
def project(trained_project, tmp_path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(trained_project, root)
    return root


def _test_rows(root: Path) -> pd.DataFrame:
    index = pd.read_csv(root / paths.ACTIVATIONS_DIR / paths.ACTIVATION_INDEX_NAME)
    return index[index["split"] == "test"]


def _read_metrics(root: Path) -> dict:
    """The headline metrics and the detail file together (their keys never overlap)."""
    headline = json.loads((root / paths.EVALUATE_METRICS).read_text(encoding="utf-8"))
    detail = json.loads((root / paths.EVALUATE_DETAIL).read_text(encoding="utf-8"))
    assert not set(headline) & set(detail)
    return {**headline, **detail}


def test_evaluate_writes_every_summary_key_with_values_in_range(project, project_root):
    evaluate.run(_params(project_root), root=project)

    scores = _read_metrics(project)
    test = _test_rows(project)
    for simplex in SIMPLEXES:
        assert scores[f"{simplex}/n_seeds"] == len(SEEDS)
        assert scores[f"{simplex}/n_catastrophic"] == 0
        assert scores[f"{simplex}/tier"] in TIERS and scores[f"{simplex}/test_tier"] in TIERS
        # separable classes: a trained lens scores high, an untrained one would not
        assert scores[f"{simplex}/macro_f1_mean"] > 0.9
        for key in ("macro_f1", "accuracy", "ece_uniform", "ece_equal_mass", "val_macro_f1"):
            assert 0.0 <= scores[f"{simplex}/{key}_mean"] <= 1.0
            assert scores[f"{simplex}/{key}_std"] >= 0.0
        assert 0.0 <= scores[f"{simplex}/brier_mean"] <= 2.0
        for pole in POLES:
            assert 0.0 <= scores[f"{simplex}/{pole}/f1_mean"] <= 1.0
            assert scores[f"{simplex}/{pole}/f1_std"] >= 0.0
            assert -1.0 <= scores[f"{simplex}/margin_{pole}_mean"] <= 1.0
            n_rows = int(((test["simplex"] == simplex) & (test["pole"] == pole)).sum())
            assert scores[f"{simplex}/{pole}/support"] == n_rows
            assert sum(scores[f"{simplex}/confusion/{pole}/{p}"] for p in POLES) == n_rows * 2
        for seed in SEEDS:
            assert 0.0 <= scores[f"{simplex}/seed_{seed}/macro_f1"] <= 1.0
            assert scores[f"{simplex}/seed_{seed}/tier"] in TIERS
    assert all(isinstance(message, str) for message in scores["diagnostics"])


def test_the_metrics_file_keeps_only_the_headline_figures(project, project_root):
    evaluate.run(_params(project_root), root=project)

    headline = json.loads((project / paths.EVALUATE_METRICS).read_text(encoding="utf-8"))
    per_simplex = [k for k in headline if k != "diagnostics"]
    assert not [k for k in per_simplex if "seed_" in k or "confusion/" in k or "precision" in k]
    for simplex in SIMPLEXES:
        for key in ("macro_f1", "negative/f1", "neutral/f1", "positive/f1", "ece_uniform"):
            assert {f"{simplex}/{key}_mean", f"{simplex}/{key}_std"} <= set(headline)
        assert {f"{simplex}/tier", f"{simplex}/test_tier", f"{simplex}/n_catastrophic"} <= set(
            headline
        )
    assert len(per_simplex) <= 17 * len(SIMPLEXES)


def test_tier_grades_the_validation_macro_f1_recorded_in_the_cards(project, project_root):
    evaluate.run(_params(project_root), root=project)

    scores = _read_metrics(project)
    for simplex in SIMPLEXES:
        for seed in SEEDS:
            _, card = models.load_lens(paths.lens_dir(project, simplex, seed))
            assert scores[f"{simplex}/seed_{seed}/val_macro_f1"] == card["best_val_macro_f1"]


def test_plot_tables_carry_the_fields_dvc_yaml_plots_use(project, project_root):
    evaluate.run(_params(project_root), root=project)

    plots_dir = project / paths.EVALUATE_PLOTS_DIR
    declared = yaml.safe_load((project_root / "dvc.yaml").read_text())["stages"]["evaluate"]
    for entry in declared["plots"]:
        ((plot_path, spec),) = entry.items()
        table = pd.read_csv(project / plot_path)
        assert {spec["x"], spec["y"]} <= set(table.columns), plot_path
    n_test = len(_test_rows(project))
    confusion = pd.read_csv(plots_dir / "confusion.csv")
    assert len(confusion) == n_test * len(SEEDS)
    assert set(confusion["actual"]) == {f"{s}:{p}" for s in SIMPLEXES for p in POLES}
    f1_by_seed = pd.read_csv(plots_dir / "f1_by_seed.csv")
    assert list(f1_by_seed.columns) == ["run", "f1_score", "simplex", "pole", "seed"]
    assert len(f1_by_seed) == len(SIMPLEXES) * len(POLES) * len(SEEDS)
    assert f1_by_seed["run"].is_unique
    calibration = pd.read_csv(plots_dir / "calibration.csv")
    assert list(calibration.columns) == ["confidence", "accuracy", "simplex", "count"]
    assert calibration["count"].sum() == n_test * len(SEEDS)


def test_every_diagnostic_is_logged_as_a_warning_and_names_simplex_and_seed(
    project, project_root, caplog
):
    # with a threshold of 0 the largest of the (non-zero) loss terms always "dominates"
    params = _params(project_root, dominant_loss_fraction=0.0)
    with caplog.at_level("WARNING", logger="lensforge.stages.evaluate"):
        evaluate.run(params, root=project)

    diagnostics = _read_metrics(project)["diagnostics"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == diagnostics
    for simplex in SIMPLEXES:
        for seed in SEEDS:
            assert any(m.startswith(f"{simplex} seed {seed}: loss component") for m in diagnostics)


def test_evaluate_refuses_a_simplex_with_test_rows_but_no_lens(project, project_root):
    shutil.rmtree(project / paths.LENSES_DIR / "taste_development")

    with pytest.raises(ArtifactError, match="'taste_development' has test rows but no trained"):
        evaluate.run(_params(project_root), root=project)
    assert not (project / paths.EVALUATE_METRICS).exists()


def test_evaluate_refuses_lenses_of_a_simplex_without_test_rows(project, project_root):
    shutil.copytree(
        paths.lens_dir(project, "taste_development", 0),
        paths.lens_dir(project, "retired_simplex", 0),
    )

    with pytest.raises(ArtifactError, match=r"without test rows: \['retired_simplex'\]"):
        evaluate.run(_params(project_root), root=project)


def test_evaluate_refuses_a_lens_without_weights(project, project_root):
    (paths.lens_dir(project, "aspiration/social_mobility", 1) / models.WEIGHTS_NAME).unlink()

    with pytest.raises(ArtifactError, match="lens weights missing"):
        evaluate.run(_params(project_root), root=project)
    assert not (project / paths.EVALUATE_METRICS).exists()


def test_evaluate_refuses_tampered_weights(project, project_root):
    weights = paths.lens_dir(project, "taste_development", 0) / models.WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit pattern in the last weight byte
    weights.write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match="sha256 .* differs from the card"):
        evaluate.run(_params(project_root), root=project)
    assert not (project / paths.EVALUATE_METRICS).exists()


def test_the_cli_exits_2_without_a_traceback_on_tampered_weights(project):
    weights = paths.lens_dir(project, "taste_development", 1) / models.WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))

    result = CliRunner().invoke(main, ["--root", str(project), "evaluate"])

    assert result.exit_code == 2
    assert "differs from the card" in result.output
    assert "Traceback" not in result.output


def test_evaluate_refuses_a_lens_trained_on_other_activations(project, project_root):
    manifest = project / paths.ACTIVATIONS_DIR / paths.ACTIVATION_MANIFEST_NAME
    manifest.write_text(manifest.read_text() + "\n", encoding="utf-8")

    with pytest.raises(ArtifactError, match="trained on other activations"):
        evaluate.run(_params(project_root), root=project)


def test_same_inputs_give_identical_metrics_and_plots(project, project_root, tmp_path):
    other = tmp_path / "elsewhere"
    shutil.copytree(project, other)
    outputs = [paths.EVALUATE_METRICS] + [
        paths.EVALUATE_PLOTS_DIR / f"{name}.csv"
        for name in ("confusion", "f1_by_seed", "calibration")
    ]

    evaluate.run(_params(project_root), root=project)
    first = {out: (project / out).read_bytes() for out in outputs}
    evaluate.run(_params(project_root), root=project)
    evaluate.run(_params(project_root), root=other)

    for out in outputs:
        assert (project / out).read_bytes() == first[out]
        assert (other / out).read_bytes() == first[out]
