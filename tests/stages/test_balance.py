"""Smoke tests of the balance stage on a tiny hand-made activation cache (d_model 16).

``write_tiny_cache`` lives in ``tests/helpers/lens_data.py``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lensforge.core import paths
from lensforge.core.errors import DataError
from lensforge.lenses.balancing import ROW_COLUMNS
from lensforge.lenses.hatcat import POLES
from lensforge.stages import balance
from tests.helpers.lens_data import project_params, write_tiny_cache


def test_balance_stage_writes_train_rows_and_counts_for_median_target(tmp_path, project_root):
    index = write_tiny_cache(tmp_path / paths.ACTIVATIONS_DIR)

    balance.run(project_params(project_root, strategy="median_target"), root=tmp_path)

    rows = pd.read_csv(tmp_path / paths.BALANCED_ROWS, keep_default_na=False)
    assert list(rows.columns) == ROW_COLUMNS
    assert set(rows["split"]) == {"train"}
    assert set(rows["prompt_id"]) <= set(index.loc[index["split"] == "train", "prompt_id"])
    metrics = json.loads((tmp_path / paths.BALANCE_SUMMARY).read_text())
    counts = metrics["taste_development"]
    headline = json.loads((tmp_path / paths.BALANCE_METRICS).read_text())
    assert headline["strategy"] == "median_target"
    assert headline["taste_development"] == {
        "imbalance_ratio": 1.0,
        "contradictory_texts": 0,
        "negative_rows": 22,
        "neutral_rows": 22,
        "positive_rows": 22,
    }
    # 4 / 2 / 4 synsets, base 5: median 4 -> target 20 -> 5 / 10 / 5 prompts per synset,
    # plus 2 experiential rows per pole.
    assert metrics["strategy"] == "median_target"
    assert [counts[p]["prompts_per_synset"] for p in POLES] == [5, 10, 5]
    assert [counts[p]["n_template_rows"] for p in POLES] == [20, 20, 20]
    assert [counts[p]["n_rows"] for p in POLES] == [22, 22, 22]
    assert counts["imbalance_ratio"] == 1.0
    assert (rows["weight"] == 1.0).all()
    assert not list(tmp_path.glob("data/*.tmp"))


def test_balance_stage_class_weight_gives_equal_weight_mass_per_pole(tmp_path, project_root):
    write_tiny_cache(tmp_path / paths.ACTIVATIONS_DIR)

    balance.run(project_params(project_root, strategy="class_weight"), root=tmp_path)

    rows = pd.read_csv(tmp_path / paths.BALANCED_ROWS, keep_default_na=False)
    mass = rows.groupby("pole")["weight"].sum()
    assert mass.to_numpy() == pytest.approx([len(rows) / 3] * 3)
    assert rows["weight"].mean() == pytest.approx(1.0)


def test_balance_stage_refuses_a_pool_too_small_for_the_strategy(tmp_path, project_root):
    write_tiny_cache(tmp_path / paths.ACTIVATIONS_DIR, train_prompts=6)

    with pytest.raises(DataError, match=r"neutral.*has 6 prompts.*needs 10"):
        balance.run(project_params(project_root, strategy="median_target"), root=tmp_path)
    assert not (tmp_path / paths.BALANCE_METRICS).exists()
    assert not (tmp_path / paths.BALANCED_ROWS).exists()
