"""activations stage: prompt pool -> one vector per prompt at ``model.layer`` (shards + index).

Runs as one process or data-parallel under ``accelerate launch``: every process reads the pool
and plans the same length-sorted batches, runs its own share and writes its own shards into the
folder the main process opened; after a barrier the main process writes index and manifest, and
the folder replaces ``data/activations`` in one rename (a killed run leaves no partial cache).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, parse_flag_from_env

from lensforge.activations import cache, extraction, subject
from lensforge.core import paths, runtime
from lensforge.core.artifacts import atomic_dir, file_sha256, text_sha256, write_csv, write_json
from lensforge.core.errors import ArtifactError, DataError
from lensforge.core.params import Params

log = logging.getLogger(__name__)

POOL_COLUMNS = [c for c in cache.INDEX_COLUMNS if c not in ("shard", "row")] + ["text"]


def run(params: Params, *, root: Path) -> None:
    # PartialState alone ignores ACCELERATE_USE_CPU (Accelerator reads it): without the flag, a
    # CPU launch of N processes would run N unconnected copies, each believing it is rank 0.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    runtime.share_cpu(state.device, state.num_processes)
    settings, layer = params.activations, params.model.layer
    pool_path = paths.under(root, paths.PROMPT_POOL)
    pool = _read_pool(pool_path)
    model_dir = paths.under(root, paths.SUBJECT_MODEL_DIR)
    card = subject.read_card(model_dir)
    extraction.validate_layer(layer, n_layers=card["n_layers"])

    loaded = subject.load_for_extraction(
        model_dir, dtype=extraction.compute_dtype(settings.compute_dtype)
    )
    cut = extraction.CutModel(loaded.model, layer).to(state.device)
    token_ids, n_truncated = extraction.tokenize(
        loaded.tokenizer, pool["text"].tolist(), max_length=settings.max_length
    )
    batches = extraction.plan_batches(
        [len(ids) for ids in token_ids], batch_size=settings.batch_size
    )

    started = time.perf_counter()
    with _shared_atomic_dir(state, paths.under(root, paths.ACTIVATIONS_DIR)) as tmp_dir:
        extraction.extract_to_shards(
            cut,
            token_ids,
            batches,
            tmp_dir,
            rank=state.process_index,
            world_size=state.num_processes,
            shard_size=settings.shard_size,
            pooling=settings.pooling,
            dtype=settings.dtype,
            pad_id=extraction.pad_id_of(loaded.tokenizer),
            prompt_ids=pool["prompt_id"].tolist(),
            device=state.device,
        )
        state.wait_for_everyone()
        seconds = time.perf_counter() - started
        if state.is_main_process:
            index = extraction.build_index(
                pool, batches, world_size=state.num_processes, shard_size=settings.shard_size
            )
            _check_shards(tmp_dir, index)
            write_csv(tmp_dir / paths.ACTIVATION_INDEX_NAME, index)
            manifest = _manifest(
                params, card, model_dir, pool_path, index,
                compute_dtype=str(cut.decoder.dtype).removeprefix("torch."),
                n_truncated=n_truncated,
                n_processes=state.num_processes,
            )  # fmt: skip
            write_json(tmp_dir / paths.ACTIVATION_MANIFEST_NAME, manifest)
    if state.is_main_process:
        _write_metrics(root, index, card, seconds=seconds, n_truncated=n_truncated,
                       n_processes=state.num_processes)  # fmt: skip
        log.info(
            "activations: %d prompts at layer %d (%s pooling, %s) in %.1f s (%.1f prompts/s), "
            "%d shard(s), %d process(es)",
            len(pool), layer, settings.pooling, settings.dtype, seconds, len(pool) / seconds,
            index["shard"].nunique(), state.num_processes,
        )  # fmt: skip


@contextlib.contextmanager
def _shared_atomic_dir(state: PartialState, out_dir: Path) -> Iterator[Path]:
    """The main process's ``atomic_dir`` for ``out_dir``, shared with every process.

    Broadcasting the folder's path is also the barrier before anyone writes into it; only the
    main process renames it into place, once the body (ending in a barrier) has run.
    """
    with contextlib.ExitStack() as stack:
        tmp_dir = stack.enter_context(atomic_dir(out_dir)) if state.is_main_process else None
        yield Path(broadcast_object_list([tmp_dir])[0])


def _check_shards(tmp_dir: Path, index: pd.DataFrame) -> None:
    missing = sorted(name for name in set(index["shard"]) if not (tmp_dir / name).is_file())
    if missing:
        raise ArtifactError(f"shards missing after extraction: {missing}", path=tmp_dir)


def _write_metrics(
    root: Path,
    index: pd.DataFrame,
    card: dict,
    *,
    seconds: float,
    n_truncated: int,
    n_processes: int,
) -> None:
    metrics = {
        "n_prompts": len(index),
        "d_model": card["d_model"],
        "n_shards": int(index["shard"].nunique()),
        "n_truncated": n_truncated,
        "n_processes": n_processes,
        "seconds": round(seconds, 3),
        "prompts_per_second": round(len(index) / seconds, 2),
    }
    write_json(paths.under(root, paths.ACTIVATIONS_METRICS), metrics)


def _read_pool(pool_path: Path) -> pd.DataFrame:
    """The prompt pool with its columns checked: unique ids and non-empty texts."""
    if not pool_path.is_file():
        raise ArtifactError("prompt pool missing: run `lensforge prompts`", path=pool_path)
    pool = pd.read_csv(pool_path, keep_default_na=False)
    missing = [c for c in POOL_COLUMNS if c not in pool.columns]
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
    empty = pool.loc[pool["text"].str.strip() == "", "prompt_id"].tolist()
    if empty:
        raise DataError("empty prompt text", path=pool_path, row=empty[0], rule="non-empty text")
    if pool.empty:
        raise DataError("prompt pool has no rows", path=pool_path, rule="non-empty pool")
    return pool[POOL_COLUMNS]


def _manifest(
    params: Params,
    card: dict,
    model_dir: Path,
    pool_path: Path,
    index: pd.DataFrame,
    *,
    compute_dtype: str,
    n_truncated: int,
    n_processes: int,
) -> dict:
    """What produced this cache; ``cache_key`` hashes the settings that change a vector."""
    settings = params.activations
    key = {
        "model_card_sha256": file_sha256(model_dir / paths.MODEL_CARD_NAME),
        "weights_sha256": card["weights_sha256"],
        "layer": params.model.layer,
        "pooling": settings.pooling,
        "dtype": settings.dtype,
        "max_length": settings.max_length,
        "compute_dtype": compute_dtype,
        "prompt_pool_sha256": file_sha256(pool_path),
    }
    origin = {k: card.get(k) for k in ("source", "package", "package_version", "gguf_file",
                                       "gguf_sha256", "name_or_path", "revision")}  # fmt: skip
    return {
        **key,
        "cache_key": text_sha256(json.dumps(key, sort_keys=True)),
        "model": {k: v for k, v in origin.items() if v is not None},
        "n_layers": card["n_layers"],
        "d_model": card["d_model"],
        "n_prompts": len(index),
        "batch_size": settings.batch_size,
        "shard_size": settings.shard_size,
        "padding_side": extraction.PADDING_SIDE,
        "n_truncated": n_truncated,
        "n_processes": n_processes,
        "shards": sorted(set(index["shard"])),
    }
