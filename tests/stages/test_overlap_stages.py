"""balance -> train -> evaluate on a tiny cache holding overlap synsets: the contradictory-label
count, soft training, the MLP lens kind through evaluate's checks, and the overlap-aware scores."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pandas as pd
import pytest

from lensforge.core import paths
from lensforge.core.errors import ArtifactError
from lensforge.lenses import models
from lensforge.stages import balance, evaluate, train
from tests.helpers.lens_data import project_params, write_tiny_cache

SIMPLEX = "taste_development"


def _params(project_root, *, overlap: str, kind: str = "tripole"):
    params = project_params(project_root, strategy="median_target")
    fast = dataclasses.replace(
        params.train,
        seeds=(0,),
        max_epochs=30,
        patience=30,
        lens=dataclasses.replace(params.train.lens, kind=kind, hidden=16, dropout=0.1),
        optimizer=dataclasses.replace(params.train.optimizer, lr=0.05),
    )
    prompts = dataclasses.replace(params.prompts, overlap=overlap, overlap_primary="neutral")
    return dataclasses.replace(params, train=fast, prompts=prompts)


def _balance_metrics(root) -> dict:
    """The balance summary (every count) with the metrics file's diagnostics."""
    summary = json.loads((root / paths.BALANCE_SUMMARY).read_text(encoding="utf-8"))
    metrics = json.loads((root / paths.BALANCE_METRICS).read_text(encoding="utf-8"))
    assert all(
        metrics[s]["contradictory_texts"] == summary[s]["contradictory_texts"]
        for s in summary
        if isinstance(summary[s], dict)
    )
    return {**summary, "diagnostics": metrics["diagnostics"]}


def test_duplicate_reports_contradictory_train_texts_and_primary_has_none(tmp_path, project_root):
    write_tiny_cache(tmp_path / paths.ACTIVATIONS_DIR, d_model=8, overlap=True)

    balance.run(_params(project_root, overlap="duplicate"), root=tmp_path)
    duplicate = _balance_metrics(tmp_path)
    balance.run(_params(project_root, overlap="primary"), root=tmp_path)
    primary = _balance_metrics(tmp_path)

    # the overlap synset's two row sets share their rank-0 text, labelled neutral and positive
    assert duplicate[SIMPLEX]["contradictory_texts"] == 1
    assert "1 train text(s) carry two pole labels" in duplicate["diagnostics"][0]
    assert primary[SIMPLEX]["contradictory_texts"] == 0 and primary["diagnostics"] == []
    assert duplicate[SIMPLEX]["overlap_rows"] > primary[SIMPLEX]["overlap_rows"] > 0


def test_soft_balanced_rows_flag_only_overlap_train_rows(tmp_path, project_root):
    write_tiny_cache(tmp_path / paths.ACTIVATIONS_DIR, d_model=8, overlap=True)

    balance.run(_params(project_root, overlap="soft"), root=tmp_path)

    rows = pd.read_csv(tmp_path / paths.BALANCED_ROWS, keep_default_na=False)
    assert set(rows.loc[rows["soft"], "poles"]) == {"neutral+positive"}
    assert set(rows.loc[rows["soft"], "pole"]) == {"neutral"}  # the primary copy only
    assert not rows.loc[rows["poles"] != "neutral+positive", "soft"].any()


@pytest.fixture(scope="module")
def mlp_project(tmp_path_factory, project_root):
    root = tmp_path_factory.mktemp("mlp")
    write_tiny_cache(root / paths.ACTIVATIONS_DIR, d_model=8, overlap=True)
    params = _params(project_root, overlap="soft", kind="mlp")
    balance.run(params, root=root)
    train.run(params, root=root)
    evaluate.run(params, root=root)
    return root, params


def test_a_soft_trained_mlp_lens_round_trips_into_evaluate(mlp_project):
    root, _ = mlp_project
    lens, card = models.load_lens(paths.lens_dir(root, SIMPLEX, 0))
    assert isinstance(lens, models.MLPLens) and card["lens_config"] == {
        "hidden": 16,
        "dropout": 0.1,
    }
    scores = json.loads((root / paths.EVALUATE_METRICS).read_text(encoding="utf-8"))
    scores.update(json.loads((root / paths.EVALUATE_DETAIL).read_text(encoding="utf-8")))
    assert scores[f"{SIMPLEX}/macro_f1_mean"] > 0.8  # separable centres: a trained lens is good
    # one overlap synset in test, primary copy only: held_out_prompts (3) rows
    assert scores[f"{SIMPLEX}/overlap_rows"] == 3
    assert scores[f"{SIMPLEX}/set/macro_f1_mean"] >= scores[f"{SIMPLEX}/macro_f1_mean"] - 1e-12
    assert 0.0 <= scores[f"{SIMPLEX}/single_pole/macro_f1_mean"] <= 1.0


def test_evaluate_refuses_a_tampered_mlp_lens(mlp_project, tmp_path):
    root, params = mlp_project
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    weights = paths.lens_dir(copy, SIMPLEX, 0) / models.WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ArtifactError, match="sha256"):
        evaluate.run(params, root=copy)
