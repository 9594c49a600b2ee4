"""Reading the activation cache: safetensors shards + ``index.csv`` + ``manifest.json``.

The writer lives in ``stages/activations.py`` (via ``extraction``); readers (balance, train,
evaluate) go through here so the on-disk layout is known in one place.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from safetensors import safe_open

from lensforge.core import paths
from lensforge.core.errors import ArtifactError

INDEX_COLUMNS = [
    "prompt_id",
    "simplex",
    "pole",
    "label",
    "synset_key",
    "group",
    "kind",
    "split",
    "rank",
    "shard",
    "row",
]
SHARD_TENSOR = "activations"


def shard_name(shard: int, *, rank: int = 0) -> str:
    return f"shard_r{rank:02d}_{shard:05d}.safetensors"


def read_index(act_dir: Path) -> pd.DataFrame:
    index_path = Path(act_dir) / paths.ACTIVATION_INDEX_NAME
    if not index_path.exists():
        raise ArtifactError("activation index missing: run the activations stage", path=index_path)
    return pd.read_csv(index_path, keep_default_na=False)


def read_manifest(act_dir: Path) -> dict:
    manifest_path = Path(act_dir) / paths.ACTIVATION_MANIFEST_NAME
    if not manifest_path.exists():
        raise ArtifactError(
            "activation manifest missing: run the activations stage", path=manifest_path
        )
    return json.loads(manifest_path.read_text(encoding="utf-8"))


def read_vectors(act_dir: Path, rows: pd.DataFrame) -> torch.Tensor:
    """Vectors for ``rows`` (which carry ``shard`` file names and ``row`` numbers), in row order.

    Returns float32 ``(len(rows), d_model)``; only the shards the rows touch are opened.
    """
    act_dir = Path(act_dir)
    if rows.empty:
        raise ArtifactError("no activation rows selected", path=act_dir)
    out: torch.Tensor | None = None
    positions = pd.Series(range(len(rows)), index=rows.index)
    for shard, part in rows.groupby("shard", sort=True):
        shard_path = act_dir / str(shard)
        if not shard_path.exists():
            raise ArtifactError("activation shard missing", path=shard_path)
        with safe_open(str(shard_path), framework="pt") as handle:
            block = handle.get_tensor(SHARD_TENSOR)  # (shard_rows, d_model)
        if out is None:
            out = torch.empty(len(rows), block.shape[1], dtype=torch.float32)
        take = torch.as_tensor(part["row"].to_numpy(copy=True), dtype=torch.long)
        out[torch.as_tensor(positions[part.index].to_numpy(copy=True))] = block[take].float()
    return out
