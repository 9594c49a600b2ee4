"""balance stage: activation index -> the balanced train rows and their per-pole counts.

Reads only the index (no vectors) and the pool's texts, so changing ``balance`` params or
``prompts.overlap`` never recomputes an activation. The overlap mode picks and labels the rows
first (``overlap.labelled_rows``); the metrics count, per simplex, the train texts that carry two
labels among the selected rows (``contradictory_texts``), with a plain-words diagnostic.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.activations import cache
from lensforge.core import artifacts, paths
from lensforge.core.params import Params
from lensforge.lenses import balancing, overlap
from lensforge.lenses.hatcat import POLES

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    index = overlap.labelled_rows(
        cache.read_index(paths.under(root, paths.ACTIVATIONS_DIR)),
        mode=params.prompts.overlap,
        primary=params.prompts.overlap_primary,
    )
    rows, summary = balancing.select_train_rows(
        index, strategy=params.balance.strategy, base_prompts=params.balance.base_prompts
    )
    texts = cache.read_pool(paths.under(root, paths.PROMPT_POOL), columns=["prompt_id", "text"])
    with_text = rows.merge(texts, on="prompt_id", how="left", validate="one_to_one")
    contradictory = overlap.contradictory_texts(with_text)
    overlap_rows = overlap.overlap_counts(rows)
    diagnostics = [
        f"{simplex}: {count} train text(s) carry two pole labels (the same prompt taught as two "
        f"poles; prompts.overlap={params.prompts.overlap})"
        for simplex, count in contradictory.items()
        if count
    ]
    for simplex in summary:
        summary[simplex]["contradictory_texts"] = contradictory.get(simplex, 0)
        summary[simplex]["overlap_rows"] = overlap_rows.get(simplex, 0)

    settings = {
        "strategy": params.balance.strategy,
        "base_prompts": params.balance.base_prompts,
        "overlap": params.prompts.overlap,
    }
    with artifacts.atomic_dir(paths.under(root, paths.BALANCED_DIR)) as out_dir:
        rows.to_csv(out_dir / paths.BALANCED_ROWS.name, index=False)
        artifacts.write_json(out_dir / paths.BALANCE_SUMMARY.name, {**settings, **summary})
    metrics = {**settings, **balancing.headline(summary), "diagnostics": diagnostics}
    for message in diagnostics:
        log.warning(message)
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
