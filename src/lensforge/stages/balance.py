"""balance stage: activation index -> the balanced train rows and their per-pole counts.

Reads only the index (no vectors), so changing ``balance`` params never recomputes an activation.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.activations import cache
from lensforge.core import artifacts, paths
from lensforge.core.params import Params
from lensforge.lenses import balancing
from lensforge.lenses.hatcat import POLES

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    index = cache.read_index(paths.under(root, paths.ACTIVATIONS_DIR))

    rows, summary = balancing.select_train_rows(
        index, strategy=params.balance.strategy, base_prompts=params.balance.base_prompts
    )

    with artifacts.atomic_dir(paths.under(root, paths.BALANCED_DIR)) as out_dir:
        rows.to_csv(out_dir / paths.BALANCED_ROWS.name, index=False)
    metrics = {
        "strategy": params.balance.strategy,
        "base_prompts": params.balance.base_prompts,
        **summary,
    }
    artifacts.write_json(paths.under(root, paths.BALANCE_METRICS), metrics)
    log.info(
        "balance %s: %d train rows (%s)",
        params.balance.strategy,
        len(rows),
        "; ".join(
            f"{simplex} {'/'.join(str(counts[p]['n_rows']) for p in POLES)}"
            f" ratio {counts['imbalance_ratio']:.2f}"
            for simplex, counts in summary.items()
        ),
    )
