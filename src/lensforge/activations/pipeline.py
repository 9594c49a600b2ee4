"""One prompt pool -> one activation cache: the run shared by the ``activations`` stage (simplex
pool) and the ``concept_activations`` stage (concept pool), so there is one extraction path.

Runs as one process or data-parallel under ``accelerate launch``: every process plans the same
length-sorted batches, runs its own share and writes its shards into the folder the main process
opened; after a barrier the main process writes index and manifest, the folder replaces the cache
in one rename (a killed run leaves the previous cache or none), and only then are the metrics
(with the timing, which the cache never holds) written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import parse_flag_from_env

from lensforge.activations import cache, extraction
from lensforge.core import paths, runtime, sequences
from lensforge.core.artifacts import file_sha256, shared_atomic_dir, write_json
from lensforge.core.params import ActivationsParams

log = logging.getLogger(__name__)


def extract_pool(
    root: Path,
    pool_path: Path,
    *,
    columns: list[str] | None,
    out_dir: Path,
    metrics_path: Path,
    layers: Sequence[int],
    config: ActivationsParams,
) -> None:
    """Cache one vector per prompt of the pool at ``pool_path`` (its ``columns`` go to the index)
    and per layer of ``layers`` of the subject model under ``root`` (one forward pass), into
    ``out_dir``; metrics last."""
    # PartialState alone ignores ACCELERATE_USE_CPU (Accelerator reads it): without the flag, a
    # CPU launch of N processes would run N unconnected copies, each believing it is rank 0.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    runtime.share_cpu(state.device, state.num_processes)
    world = state.num_processes
    model_dir = paths.under(root, paths.SUBJECT_MODEL_DIR)
    pool = cache.read_pool(pool_path, columns=columns)
    cut, tokenizer, card = extraction.load_cut(
        model_dir, layers=layers, compute_dtype=config.compute_dtype
    )
    cut = cut.to(state.device)
    plan = extraction.plan(tokenizer, pool["text"].tolist(), max_length=config.max_length,
                           batch_size=config.batch_size)  # fmt: skip

    started = time.perf_counter()
    with shared_atomic_dir(out_dir, state=state) as tmp_dir:
        extraction.extract_to_shards(
            cut, plan.token_ids, plan.batches, tmp_dir, rank=state.process_index,
            world_size=world, shard_size=config.shard_size, pooling=config.pooling,
            dtype=config.dtype, pad_id=sequences.pad_id_of(tokenizer),
            prompt_ids=pool["prompt_id"].tolist(), device=state.device,
        )  # fmt: skip
        state.wait_for_everyone()
        if state.is_main_process:
            index = extraction.build_index(pool, plan.batches, world_size=world,
                                           shard_size=config.shard_size)  # fmt: skip
            manifest = cache.build_manifest(
                card, index, card_sha256=file_sha256(model_dir / paths.MODEL_CARD_NAME),
                pool_sha256=file_sha256(pool_path), layers=cut.layers, settings=config,
                compute_dtype=str(cut.decoder.dtype).removeprefix("torch."),
                padding_side=extraction.PADDING_SIDE, n_truncated=plan.n_truncated,
                n_processes=world,
            )  # fmt: skip
            cache.finish(tmp_dir, index, manifest=manifest)
    seconds = time.perf_counter() - started
    if state.is_main_process:
        summary = extraction.summary(index, d_model=card["d_model"], seconds=seconds,
                                     n_truncated=plan.n_truncated, n_processes=world)  # fmt: skip
        write_json(metrics_path, summary)
        log.info("activations: %d prompts at layers %s (%s pooling, %s) in %.1f s, %d shard(s), "
                 "%d process(es)", len(pool), list(cut.layers), config.pooling, config.dtype,
                 seconds, summary["n_shards"], world)  # fmt: skip
