"""Builders of tiny lens-branch inputs shared by tests: a hand-made activation cache, a prompt
pool, and a tmp project with balanced rows (no model needed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from safetensors.torch import save_file

from lensforge.activations import cache
from lensforge.core import params as params_mod
from lensforge.core import paths
from lensforge.lenses.hatcat import POLES
from lensforge.stages import balance

TRAIN_SYNSETS = {
    "negative": 4,
    "neutral": 2,
    "positive": 4,
}  # a small version of the balancing experiment's shape
HELD_OUT_SYNSETS = 2  # per pole, in validation and in test
EXPERIENTIAL = {"train": 2, "validation": 1, "test": 1}  # per pole
LAYER = 6  # the one layer of the hand-made cache: params.yaml's train.layer


# With ``overlap``: one synset per split applying to neutral and positive, one prompt set per
# pole (as the pool draws them); both sets share their rank-0 text (a contradictory label).
OVERLAP_POLES = "neutral+positive"


def _index_rows(
    simplex: str, *, train_prompts: int, held_out_prompts: int, overlap: bool = False
) -> list[dict]:
    rows = []

    def add(pole, synset_key, group, kind, split, rank, poles=None):
        text = f"{simplex} {synset_key} prompt {rank}"
        rows.append(
            {
                "prompt_id": f"{simplex}|{pole}|{synset_key}|{rank}",
                "simplex": simplex,
                "pole": pole,
                "label": POLES.index(pole),
                "poles": poles or pole,
                "synset_key": synset_key,
                "group": group,
                "kind": kind,
                "split": split,
                "rank": rank,
                "text": text if rank == 0 or poles is None else f"{text} as {pole}",
            }
        )

    if overlap:
        for split in ("train", "validation", "test"):
            key = f"overlap.{split}.n.01"
            n_prompts = train_prompts if split == "train" else held_out_prompts
            for pole in OVERLAP_POLES.split("+"):
                for rank in range(n_prompts):
                    add(pole, key, f"synset:{key}", "definitional", split, rank, OVERLAP_POLES)

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
    overlap: bool = False,
    noise_layers: tuple[int, ...] = (),
) -> pd.DataFrame:
    """A hand-made activation cache: fp16 shards, ``index.csv`` and ``manifest.json``, and the
    prompt pool with its texts at ``data/prompts/pool.csv`` of the project holding ``act_dir``.

    Each pole's vectors are a pole centre (distinct per simplex) plus unit noise, so a linear lens
    can learn them; an overlap synset's vectors sit between its poles' centres. They are the
    cache's ``LAYER``; each of ``noise_layers`` holds pure noise (nothing to learn). Returns the
    index.
    """
    rng = np.random.default_rng(0)
    rows = []
    for simplex in simplexes:
        rows += _index_rows(
            simplex,
            train_prompts=train_prompts,
            held_out_prompts=held_out_prompts,
            overlap=overlap,
        )
    index = pd.DataFrame(rows)
    centres = {s: rng.normal(scale=2.0, size=(len(POLES), d_model)) for s in simplexes}

    def centre(row) -> np.ndarray:
        members = [POLES.index(pole) for pole in row.poles.split("+")]
        return centres[row.simplex][members].mean(axis=0)

    vectors = np.stack([centre(r) + rng.normal(size=d_model) for r in index.itertuples()]).astype(
        np.float16
    )  # (n_rows, d_model)
    root = act_dir.parents[len(paths.ACTIVATIONS_DIR.parts) - 1]
    pool_path = root / paths.PROMPT_POOL
    pool_path.parent.mkdir(parents=True, exist_ok=True)
    index[cache.POOL_COLUMNS].to_csv(pool_path, index=False)
    act_dir.mkdir(parents=True, exist_ok=True)
    shard_ids = np.arange(len(index)) // shard_size
    for shard in np.unique(shard_ids):
        block = torch.from_numpy(vectors[shard_ids == shard])  # (<= shard_size, d_model)
        tensors = {cache.tensor_name(LAYER): block}
        for layer in noise_layers:
            noise = rng.normal(size=tuple(block.shape)).astype(np.float16)
            tensors[cache.tensor_name(layer)] = torch.from_numpy(noise)
        save_file(tensors, str(act_dir / cache.shard_name(int(shard))))
    index["shard"] = [cache.shard_name(int(s)) for s in shard_ids]
    index["row"] = np.arange(len(index)) % shard_size
    index[cache.INDEX_COLUMNS].to_csv(act_dir / paths.ACTIVATION_INDEX_NAME, index=False)
    manifest = {
        "d_model": d_model,
        "dtype": "float16",
        "layers": sorted([LAYER, *noise_layers]),
        "pooling": "last",
        "cache_key": "hand-made",
        "model_card_sha256": "hand-made",
        "note": "hand-made test cache",
    }
    (act_dir / paths.ACTIVATION_MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    return index[cache.INDEX_COLUMNS]


def project_params(project_root: Path, *, strategy: str, base_prompts: int = 5):
    base = params_mod.load(project_root / paths.PARAMS)
    return dataclasses.replace(
        base, balance=params_mod.BalanceParams(strategy=strategy, base_prompts=base_prompts)
    )


TEXTS = [
    "i feel happy about the sweet food",
    "bitter",
    "you think it is good or bad when people act like that",
    "what does it mean to love someone",
    "a sad day",
    "they want new friends",
    "the taste of sour food is bad",
]


def write_pool(root, texts=TEXTS) -> pd.DataFrame:
    poles = ["negative", "neutral", "positive"]
    pool = pd.DataFrame(
        {
            "prompt_id": [f"taste|{poles[i % 3]}|syn{i}|0" for i in range(len(texts))],
            "simplex": "taste",
            "pole": [poles[i % 3] for i in range(len(texts))],
            "label": [i % 3 for i in range(len(texts))],
            "poles": [poles[i % 3] for i in range(len(texts))],
            "synset_key": [f"syn{i}" for i in range(len(texts))],
            "group": [f"syn{i}" for i in range(len(texts))],
            "kind": "definitional",
            "split": ["train", "validation", "test", "train", "train", "test", "validation"][
                : len(texts)
            ],
            "rank": 0,
            "text": texts,
        }
    )
    pool_path = root / paths.PROMPT_POOL
    pool_path.parent.mkdir(parents=True)
    pool.to_csv(pool_path, index=False)
    return pool


SIMPLEXES = ("taste_development", "social_evaluation")
SEEDS = [0, 1]
# median_target on the tiny cache selects 22 rows per pole (66 per simplex): a global batch of
# 22 splits evenly over one or two processes with no partial batch.
TRAIN_OVERRIDES = {"seeds": SEEDS, "batch_size": 22, "max_epochs": 8, "patience": 3}


def make_project(root: Path, project_root: Path, **train_overrides) -> params_mod.Params:
    """A tmp project: the project's params.yaml with small train settings, plus a tiny cache."""
    raw = yaml.safe_load((project_root / paths.PARAMS).read_text(encoding="utf-8"))
    raw["balance"]["strategy"] = "median_target"
    raw["train"].update({**TRAIN_OVERRIDES, **train_overrides})
    root.mkdir(parents=True, exist_ok=True)
    (root / paths.PARAMS).write_text(yaml.safe_dump(raw), encoding="utf-8")
    write_tiny_cache(root / paths.ACTIVATIONS_DIR, simplexes=SIMPLEXES)
    params = params_mod.load(root / paths.PARAMS)
    balance.run(params, root=root)
    return params
