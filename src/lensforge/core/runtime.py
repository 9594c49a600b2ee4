"""The Accelerate runtime every multi-process stage shares.

How many processes run is a launch setting (``accelerate launch`` flags or its config file), never
a param. One trap handled here: ``accelerate launch`` without a config on a CPU-only machine sets
``OMP_NUM_THREADS=1`` for its child, so a single process would use one core of many. We give each
local process its share of the cores instead (an explicit ``LENSFORGE_THREADS`` wins).
"""

from __future__ import annotations

import logging
import os

import torch
from accelerate import Accelerator

log = logging.getLogger(__name__)


def threads_per_process(n_local_processes: int) -> int:
    """Cores for each of ``n_local_processes`` processes on this machine (at least one)."""
    explicit = os.environ.get("LENSFORGE_THREADS")
    if explicit:
        return max(1, int(explicit))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, n_local_processes))


def share_cpu(device: torch.device, n_processes: int) -> None:
    """On CPU, give this process its share of the machine's cores (see the module docstring)."""
    if device.type == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", n_processes))
        torch.set_num_threads(threads_per_process(local))


def make_accelerator(**kwargs) -> Accelerator:
    """An ``Accelerator`` on GPU when one is visible, else CPU (gloo when several processes)."""
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), **kwargs)
    share_cpu(accelerator.device, accelerator.num_processes)
    log.debug(
        "accelerate: %d process(es), device %s, %d threads",
        accelerator.num_processes,
        accelerator.device,
        torch.get_num_threads(),
    )
    return accelerator


def rank_share(rows, *, rank: int, world_size: int):
    """This process's share of one global batch: every ``world_size``-th row from ``rank``.

    Shares differ by at most one row and may be empty (a last batch smaller than the process
    count); losses must then use the global batch's denominator, so that N processes compute the
    gradient of one process for any row count (no row is duplicated to even the shares out).
    """
    return rows[rank::world_size]
