"""Smoke tests of the balance stage on a tiny hand-made activation cache (d_model 16).

``write_tiny_cache`` is shared with ``tests/stages/test_train.py``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from lensforge import cache, paths
from lensforge import params as params_mod
from lensforge.balancing import ROW_COLUMNS
from lensforge.errors import DataError
from lensforge.params import POLES
from lensforge.stages import balance

TRAIN_SYNSETS = {"negative": 4, "neutral": 2, "positive": 4}  # a small seed-000 shape
HELD_OUT_SYNSETS = 2  # per pole, in validation and in test
EXPERIENTIAL = {"train": 2, "validation": 1, "test": 1}  # per pole


def _index_rows(simplex: str, *, train_prompts: int, held_out_prompts: int) -> list[dict]:
    rows = []

    def add(pole, synset_key, group, kind, split, rank):
        rows.append(
            {
                "prompt_id": f"{simplex}|{pole}|{synset_key}|{rank}",
                "simplex": simplex,
                "pole": pole,
                "label": POLES.index(pole),
                "synset_key": synset_key,
                "group": group,
                "kind": kind,
                "split": split,
                "rank": rank,
            }
        )

    for pole in POLES:
        synsets = [("train", i, train_prompts) for i in range(TRAIN_SYNSETS[pole])]
        for split in ("validation", "test"):
            synsets += [(split, i, held_out_prompts) for i in range(HELD_OUT_SYNSETS)]
        for split, i, n_prompts in synsets:
            key = f"{pole}.{split}.{i}.n.01"
            for rank in range(n_prompts):
                kind = "behavioral" if rank % 2 else "definitional"
                add(pole, key, f"synset:{key}", kind, split, rank)
        for split, n_items in EXPERIENTIAL.items():
            for i in range(n_items):
                group = f"experiential:{pole}:{split}{i}"
                add(pole, group, group, "experiential", split, 0)
    return rows


def write_tiny_cache(
    act_dir: Path,
    *,
    simplexes: tuple[str, ...] = ("taste_development",),
    d_model: int = 16,
    train_prompts: int = 12,
    held_out_prompts: int = 3,
    shard_size: int = 100,
) -> pd.DataFrame:
    """A hand-made activation cache: fp16 shards, ``index.csv`` and ``manifest.json``.

    Each pole's vectors are a pole centre (distinct per simplex) plus unit noise, so a linear lens
    can learn them. Returns the index.
    """
    rng = np.random.default_rng(0)
    rows = []
    for simplex in simplexes:
        rows += _index_rows(simplex, train_prompts=train_prompts, held_out_prompts=held_out_prompts)
    index = pd.DataFrame(rows)
    centres = {s: rng.normal(scale=2.0, size=(len(POLES), d_model)) for s in simplexes}
    vectors = np.stack(
        [centres[r.simplex][r.label] + rng.normal(size=d_model) for r in index.itertuples()]
    ).astype(np.float16)  # (n_rows, d_model)
    act_dir.mkdir(parents=True, exist_ok=True)
    shard_ids = np.arange(len(index)) // shard_size
    for shard in np.unique(shard_ids):
        block = torch.from_numpy(vectors[shard_ids == shard])  # (<= shard_size, d_model)
        save_file({cache.SHARD_TENSOR: block}, str(act_dir / cache.shard_name(int(shard))))
    index["shard"] = [cache.shard_name(int(s)) for s in shard_ids]
    index["row"] = np.arange(len(index)) % shard_size
    index[cache.INDEX_COLUMNS].to_csv(act_dir / paths.ACTIVATION_INDEX_NAME, index=False)
    manifest = {"d_model": d_model, "dtype": "float16", "note": "hand-made test cache"}
    (act_dir / paths.ACTIVATION_MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    return index[cache.INDEX_COLUMNS]


def project_params(project_root: Path, *, strategy: str, base_prompts: int = 5):
    base = params_mod.load(project_root / paths.PARAMS)
    return dataclasses.replace(
        base, balance=params_mod.BalanceParams(strategy=strategy, base_prompts=base_prompts)
    )


def test_balance_stage_writes_train_rows_and_counts_for_median_target(tmp_path, project_root):
    index = write_tiny_cache(tmp_path / paths.ACTIVATIONS_DIR)

    balance.run(project_params(project_root, strategy="median_target"), root=tmp_path)

    rows = pd.read_csv(tmp_path / paths.BALANCED_ROWS, keep_default_na=False)
    assert list(rows.columns) == ROW_COLUMNS
    assert set(rows["split"]) == {"train"}
    assert set(rows["prompt_id"]) <= set(index.loc[index["split"] == "train", "prompt_id"])
    metrics = json.loads((tmp_path / paths.BALANCE_METRICS).read_text())
    counts = metrics["taste_development"]
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
