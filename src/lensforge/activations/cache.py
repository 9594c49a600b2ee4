"""The activation cache format: safetensors shards + ``index.csv`` + ``manifest.json``.

The prompt pool goes in (``read_pool``); the activations stage writes shards through
``extraction`` and finishes the folder here (``finish``: index + manifest with its cache key);
readers (balance, train, evaluate) go through ``read_*`` so the on-disk layout is known in one
place. Everything in the folder is a function of its inputs (no timings, no dates): the same
pool, model and settings give the same bytes, so ``dvc repro`` keeps the cache's hash.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from safetensors import safe_open

from lensforge.core import paths
from lensforge.core.artifacts import read_json, text_sha256, write_csv, write_json
from lensforge.core.errors import ArtifactError, DataError, ParamsError
from lensforge.core.params import ActivationsParams

INDEX_COLUMNS = [
    "prompt_id",
    "simplex",
    "pole",
    "label",
    "poles",
    "synset_key",
    "group",
    "kind",
    "split",
    "rank",
    "shard",
    "row",
]
POOL_COLUMNS = [c for c in INDEX_COLUMNS if c not in ("shard", "row")] + ["text"]
# Card fields naming where the subject model came from, copied into the manifest when present.
ORIGIN_FIELDS = (
    "source",
    "package",
    "package_version",
    "gguf_file",
    "gguf_sha256",
    "name_or_path",
    "revision",
)


def shard_name(shard: int, *, rank: int = 0) -> str:
    return f"shard_r{rank:02d}_{shard:05d}.safetensors"


def read_pool(pool_path: Path, *, columns: list[str] | None = POOL_COLUMNS) -> pd.DataFrame:
    """A prompt pool's ``columns`` (the simplex pool's by default; None: every column the file
    has, which must include ``prompt_id``, ``split`` and ``text``), checked: rows present, unique
    ids, non-empty texts."""
    pool_path = Path(pool_path)
    if not pool_path.is_file():
        raise ArtifactError("prompt pool missing: run its prompts stage", path=pool_path)
    pool = pd.read_csv(pool_path, keep_default_na=False)
    columns = list(pool.columns) if columns is None else columns
    required = dict.fromkeys([*columns, "prompt_id", "split", "text"])
    missing = [c for c in required if c not in pool.columns]
    if missing:
        raise DataError(f"prompt pool lacks columns {missing}", path=pool_path, rule="columns")
    duplicated = pool.loc[pool["prompt_id"].duplicated(), "prompt_id"].tolist()
    if duplicated:
        raise DataError(
            f"duplicate prompt ids {duplicated[:5]}",
            path=pool_path,
            row=duplicated[0],
            rule="unique ids",
        )
    empty = pool.loc[pool["text"].astype(str).str.strip() == "", "prompt_id"].tolist()
    if empty:
        raise DataError("empty prompt text", path=pool_path, row=empty[0], rule="non-empty text")
    if pool.empty:
        raise DataError("prompt pool has no rows", path=pool_path, rule="non-empty pool")
    return pool[columns]


def cache_key(
    *,
    card_sha256: str,
    weights_sha256: dict,
    pool_sha256: str,
    layers: Sequence[int],
    settings: ActivationsParams,
    compute_dtype: str,
) -> dict:
    """The inputs and settings that change a vector, plus ``cache_key``, their sha256 (the list
    of layers included: a cache holds exactly those layers).

    Batch size, shard size and the process count are left out: they move vectors between
    shards, never change one (the tests check every layout against one process).
    """
    key = {
        "model_card_sha256": card_sha256,
        "weights_sha256": weights_sha256,
        "layers": list(layers),
        "pooling": settings.pooling,
        "dtype": settings.dtype,
        "max_length": settings.max_length,
        "compute_dtype": compute_dtype,
        "prompt_pool_sha256": pool_sha256,
    }
    return {**key, "cache_key": text_sha256(json.dumps(key, sort_keys=True))}


def build_manifest(
    card: dict,
    index: pd.DataFrame,
    *,
    card_sha256: str,
    pool_sha256: str,
    layers: Sequence[int],
    settings: ActivationsParams,
    compute_dtype: str,
    padding_side: str,
    n_truncated: int,
    n_processes: int,
) -> dict:
    """What produced this cache: the ``cache_key`` fields (``card`` is the subject model's card,
    ``card_sha256`` its file's hash), the model's origin and dims, and the layout (batch and shard
    size, processes, shard files). Holds no timing."""
    key = cache_key(
        card_sha256=card_sha256,
        weights_sha256=card["weights_sha256"],
        pool_sha256=pool_sha256,
        layers=layers,
        settings=settings,
        compute_dtype=compute_dtype,
    )
    return {
        **key,
        "model": {k: card[k] for k in ORIGIN_FIELDS if card.get(k) is not None},
        "n_layers": card["n_layers"],
        "d_model": card["d_model"],
        "n_prompts": len(index),
        "batch_size": settings.batch_size,
        "shard_size": settings.shard_size,
        "padding_side": padding_side,
        "n_truncated": n_truncated,
        "n_processes": n_processes,
        "shards": sorted(set(index["shard"])),
    }


def finish(act_dir: Path, index: pd.DataFrame, *, manifest: dict) -> None:
    """Complete a cache folder whose shards are written: check them, write index and manifest."""
    act_dir = Path(act_dir)
    missing = sorted(name for name in set(index["shard"]) if not (act_dir / name).is_file())
    if missing:
        raise ArtifactError(f"shards missing after extraction: {missing}", path=act_dir)
    write_csv(act_dir / paths.ACTIVATION_INDEX_NAME, index)
    write_json(act_dir / paths.ACTIVATION_MANIFEST_NAME, manifest)


def read_index(act_dir: Path) -> pd.DataFrame:
    index_path = Path(act_dir) / paths.ACTIVATION_INDEX_NAME
    if not index_path.exists():
        raise ArtifactError("activation index missing: run the activations stage", path=index_path)
    return pd.read_csv(index_path, keep_default_na=False)


def read_manifest(act_dir: Path) -> dict:
    return read_json(Path(act_dir) / paths.ACTIVATION_MANIFEST_NAME, what="activations manifest")


def check_layer(manifest: dict, layer: int, *, key: str, path: Path | None = None) -> None:
    """Raise ``ParamsError`` unless ``layer`` (the value of param ``key``) is cached."""
    if layer not in manifest["layers"]:
        raise ParamsError(
            f"{key} is {layer}, but the activation cache holds layers {manifest['layers']}: "
            "pick one of them or add it to model.layers (one more extraction)",
            path=path,
            row=key,
            rule="layer is cached",
        )


def read_vectors(act_dir: Path, rows: pd.DataFrame, *, layer: int) -> torch.Tensor:
    """Vectors of ``layer`` for ``rows`` (which carry ``shard`` file names and ``row`` numbers),
    in row order.

    Returns float32 ``(len(rows), d_model)``; only the shards the rows touch are opened, and only
    the layer's tensor is read from each.
    """
    act_dir = Path(act_dir)
    if rows.empty:
        raise ArtifactError("no activation rows selected", path=act_dir)
    name = tensor_name(layer)
    out: torch.Tensor | None = None
    positions = pd.Series(range(len(rows)), index=rows.index)
    for shard, part in rows.groupby("shard", sort=True):
        shard_path = act_dir / str(shard)
        if not shard_path.exists():
            raise ArtifactError("activation shard missing", path=shard_path)
        with safe_open(str(shard_path), framework="pt") as handle:
            names = list(handle.keys())
            if name not in names:
                raise ArtifactError(
                    f"shard holds no vectors of layer {layer} (it has {sorted(names)})",
                    path=shard_path,
                    rule="layer is cached",
                )
            block = handle.get_tensor(name)  # (shard_rows, d_model)
        if out is None:
            out = torch.empty(len(rows), block.shape[1], dtype=torch.float32)
        take = torch.as_tensor(part["row"].to_numpy(copy=True), dtype=torch.long)
        out[torch.as_tensor(positions[part.index].to_numpy(copy=True))] = block[take].float()
    return out


def tensor_name(layer: int) -> str:
    """The safetensors key of ``layer``'s vectors in a cache shard."""
    return f"layer_{layer:03d}"
