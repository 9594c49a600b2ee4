"""concept_activations stage: the concept prompt pool -> one vector per prompt and layer of ``model.layers``.

The same extractor, settings and cache format as the simplex ``activations`` stage
(``activations.pipeline``); one cached vector serves every concept lens, since a prompt's label
for a lens is only whether it belongs to that lens's concept.
"""

from __future__ import annotations

from pathlib import Path

from lensforge.activations import pipeline
from lensforge.core import paths
from lensforge.core.params import Params


def run(params: Params, *, root: Path) -> None:
    pipeline.extract_pool(
        root,
        paths.under(root, paths.CONCEPT_PROMPT_POOL),
        columns=None,
        out_dir=paths.under(root, paths.CONCEPT_ACTIVATIONS_DIR),
        metrics_path=paths.under(root, paths.CONCEPT_ACTIVATIONS_METRICS),
        layers=params.model.layers,
        config=params.activations,
    )
