"""Smoke tests of the train stage on a tiny hand-made activation cache (d_model 16).

Also: the dvclive curves render in a real ``dvc plots show``, and ``accelerate launch`` with two
CPU processes really runs two processes and matches the one-process lenses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from lensforge.activations import cache
from lensforge.core import artifacts, paths
from lensforge.core import params as params_mod
from lensforge.core.errors import ArtifactError
from lensforge.lenses import models
from lensforge.lenses.hatcat import POLES
from lensforge.stages import train
from tests.helpers.dvc_project import BIN  # noqa: E402
from tests.helpers.lens_data import LAYER, SEEDS, SIMPLEXES, make_project


@pytest.fixture(scope="module")
def trained(tmp_path_factory, project_root) -> Path:
    root = tmp_path_factory.mktemp("trained")
    train.run(make_project(root, project_root), root=root)
    return root


def test_train_stage_saves_a_loadable_lens_with_its_card_per_simplex_and_seed(trained):
    index = cache.read_index(trained / paths.ACTIVATIONS_DIR)
    for simplex in SIMPLEXES:
        val = index[(index["simplex"] == simplex) & (index["split"] == "validation")]
        val_x = cache.read_vectors(trained / paths.ACTIVATIONS_DIR, val, layer=LAYER)
        for seed in SEEDS:
            lens, card = models.load_lens(paths.lens_dir(trained, simplex, seed))
            assert (card["simplex"], card["seed"], card["lens_kind"]) == (simplex, seed, "tripole")
            assert card["d_model"] == 16 and card["balance_strategy"] == "median_target"
            assert card["balanced_rows_sha256"] == artifacts.file_sha256(
                trained / paths.BALANCED_ROWS
            )
            assert card["activation_manifest_sha256"] == artifacts.file_sha256(
                trained / paths.ACTIVATIONS_DIR / paths.ACTIVATION_MANIFEST_NAME
            )
            assert card["train_params"]["max_epochs"] == 8
            assert 1 <= card["best_epoch"] <= card["epochs_run"] <= 8
            assert set(card["best_val_f1"]) == set(POLES)
            probs = models.pole_probabilities(lens, val_x)
            assert probs.shape == (len(val), 3)
            assert torch.allclose(probs.sum(dim=1), torch.ones(len(val)))
    assert not list(trained.glob("**/*.tmp"))


def test_train_stage_writes_dvclive_curves_one_row_per_epoch(trained):
    for simplex in SIMPLEXES:
        for seed in SEEDS:
            card = json.loads(
                (paths.lens_dir(trained, simplex, seed) / models.CARD_NAME).read_text()
            )
            plots = paths.train_live_dir(trained, simplex, seed) / "plots" / "metrics"
            names = ["train/ce", "train/margin", "train/ortho", "train/total", "val/macro_f1"]
            names += [f"val/{kind}_{pole}" for kind in ("f1", "margin") for pole in POLES]
            for name in names:
                curve = pd.read_csv(plots / f"{name}.tsv", sep="\t")
                assert curve["step"].tolist() == list(range(1, card["epochs_run"] + 1))
            macro = pd.read_csv(plots / "val/macro_f1.tsv", sep="\t")["macro_f1"]
            assert macro.iloc[card["best_epoch"] - 1] == pytest.approx(card["best_val_macro_f1"])


def test_train_stage_summary_has_mean_and_std_over_seeds(trained):
    summary = json.loads((trained / paths.TRAIN_METRICS).read_text())
    assert summary["n_processes"] == 1
    for simplex in SIMPLEXES:
        cards = [
            json.loads((paths.lens_dir(trained, simplex, s) / models.CARD_NAME).read_text())
            for s in SEEDS
        ]
        scores = [card["best_val_macro_f1"] for card in cards]
        assert summary[simplex]["val_macro_f1_mean"] == pytest.approx(sum(scores) / len(scores))
        assert summary[simplex]["val_macro_f1_std"] == pytest.approx(pd.Series(scores).std())
        assert summary[simplex]["seconds"] > 0


def test_train_stage_gives_identical_lenses_for_the_same_seeds(trained, tmp_path, project_root):
    again = tmp_path / "again"
    train.run(make_project(again, project_root), root=again)
    for simplex in SIMPLEXES:
        for seed in SEEDS:
            first = json.loads(
                (paths.lens_dir(trained, simplex, seed) / models.CARD_NAME).read_text()
            )
            second = json.loads(
                (paths.lens_dir(again, simplex, seed) / models.CARD_NAME).read_text()
            )
            assert first == second  # same weights hash, best epoch and validation scores


def test_train_stage_refuses_to_run_without_balanced_rows(tmp_path, project_root):
    params = make_project(tmp_path, project_root)
    shutil.rmtree(tmp_path / paths.BALANCED_DIR)
    with pytest.raises(ArtifactError, match="balanced rows missing"):
        train.run(params, root=tmp_path)
    assert not (tmp_path / paths.LENSES_DIR).exists()


def test_dvc_plots_show_renders_the_train_curves_without_errors(trained, tmp_path, project_root):
    repo = tmp_path / "repo"
    shutil.copytree(trained / paths.TRAIN_LIVE_DIR, repo / paths.TRAIN_LIVE_DIR)
    shutil.copy(project_root / "dvc.yaml", repo / "dvc.yaml")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([BIN / "dvc", "init", "--no-scm", "-q"], cwd=repo, check=True, env=env)

    shown = subprocess.run(
        [BIN / "dvc", "plots", "show", "--json", str(paths.TRAIN_LIVE_DIR)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    plots = json.loads(shown.stdout)
    assert plots.get("errors", []) == []
    live = paths.train_live_dir(Path("."), SIMPLEXES[0], SEEDS[0])
    curve = plots["data"][str(live / "plots/metrics/val/macro_f1.tsv")]
    assert curve and curve[0]["content"]["data"]["values"]


def test_train_never_reads_test_rows_perturbed_test_vectors_give_bit_identical_lenses(
    trained, tmp_path
):
    """Overwrite every TEST vector in the shards with large noise: retraining must give the very
    same lens files, so no test row reaches training, standardisation or early stopping."""
    root = tmp_path / "perturbed"
    shutil.copytree(trained, root, ignore=shutil.ignore_patterns(paths.LENSES_DIR.name))
    act_dir = root / paths.ACTIVATIONS_DIR
    index = cache.read_index(act_dir)
    test_rows = index[index["split"] == "test"]
    assert len(test_rows) > 0
    generator = torch.Generator().manual_seed(0)
    for shard, rows in test_rows.groupby("shard"):
        tensors = load_file(str(act_dir / shard))
        block = tensors[cache.tensor_name(LAYER)].clone()  # (n_shard_rows, d_model)
        take = torch.tensor(rows["row"].tolist())
        block[take] = (100 * torch.randn(len(take), block.shape[1], generator=generator)).to(
            block.dtype
        )
        save_file({cache.tensor_name(LAYER): block}, str(act_dir / shard))
    changed = cache.read_vectors(act_dir, test_rows, layer=LAYER)
    before = cache.read_vectors(trained / paths.ACTIVATIONS_DIR, test_rows, layer=LAYER)
    assert not torch.equal(changed, before)

    train.run(params_mod.load(root / paths.PARAMS), root=root)
    for simplex in SIMPLEXES:
        for seed in SEEDS:
            name = models.WEIGHTS_NAME
            before = paths.lens_dir(trained, simplex, seed) / name
            after = paths.lens_dir(root, simplex, seed) / name
            assert before.read_bytes() == after.read_bytes(), (simplex, seed)
