"""activations stage: the simplex prompt pool -> one vector per prompt and layer of ``model.layers``.

Shards, index and manifest in ``data/activations`` (``activations.pipeline``: one process or
data-parallel under ``accelerate launch``; a killed run leaves the previous cache or none), then
``metrics/activations.json`` with the timing the cache never holds.
"""

from __future__ import annotations

from pathlib import Path

from lensforge.activations import cache, pipeline
from lensforge.core import paths
from lensforge.core.params import Params


def run(params: Params, *, root: Path) -> None:
    pipeline.extract_pool(
        root,
        paths.under(root, paths.PROMPT_POOL),
        columns=cache.POOL_COLUMNS,
        out_dir=paths.under(root, paths.ACTIVATIONS_DIR),
        metrics_path=paths.under(root, paths.ACTIVATIONS_METRICS),
        layers=params.model.layers,
        config=params.activations,
    )
