"""lens_pack stage: trained and evaluated concept lenses -> ``models/lens_pack/`` (one
safetensors file with every lens, a manifest) and ``metrics/lens_pack.json`` (counts, size)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from lensforge.concepts import artifacts as lens_io
from lensforge.concepts import lens_pack
from lensforge.core import artifacts, paths
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    lens_dir = paths.under(root, paths.CONCEPT_LENSES_DIR)
    weights, records, card = lens_io.load_lenses(lens_dir)
    concepts = pd.read_csv(paths.under(root, paths.CONCEPT_TABLE), keep_default_na=False)
    tested_path = paths.under(root, paths.EVALUATE_CONCEPTS_PER_CONCEPT)
    tested = pd.read_csv(tested_path, keep_default_na=False)

    with artifacts.atomic_dir(paths.under(root, paths.LENS_PACK_DIR)) as out_dir:
        weights_path = out_dir / paths.LENS_PACK_WEIGHTS_NAME
        shutil.copyfile(lens_dir / paths.CONCEPT_WEIGHTS_NAME, weights_path)
        pack = lens_pack.manifest(
            records,
            concepts,
            tested,
            card=card,
            weights_sha256=artifacts.file_sha256(weights_path),
            evaluate_sha256=artifacts.file_sha256(tested_path),
        )
        artifacts.write_json(out_dir / paths.LENS_PACK_MANIFEST_NAME, pack)
    summary = {
        "n_lenses": pack["n_lenses"],
        "n_graduated": sum(entry["graduated"] for entry in pack["lenses"]),
        "weights_bytes": paths.under(root, paths.LENS_PACK_DIR / paths.LENS_PACK_WEIGHTS_NAME)
        .stat()
        .st_size,
    }
    artifacts.write_json(paths.under(root, paths.LENS_PACK_METRICS), summary)
    log.info("lens pack: %d lenses (%d graduated)", summary["n_lenses"], summary["n_graduated"])
