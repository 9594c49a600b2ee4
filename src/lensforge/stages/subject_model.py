"""subject_model stage: packaged GGUF (or local HF model) -> cached HF folder + model card.

The folder (weights, tokenizer, card) is a function of the source alone, so a repro keeps its
hash; the timings go to ``metrics/subject_model.json``, written after the folder is in place.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from lensforge.activations import subject
from lensforge.core import paths
from lensforge.core.artifacts import atomic_dir, write_json
from lensforge.core.params import Params

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    started = time.perf_counter()
    out_dir = paths.under(root, paths.SUBJECT_MODEL_DIR)
    with (
        atomic_dir(out_dir) as tmp_dir,
        tempfile.TemporaryDirectory(prefix="lensforge-gguf-") as work_dir,
    ):
        loaded = subject.load_source(params.model, work_dir=Path(work_dir))
        subject.save_subject(loaded, tmp_dir)
        card = subject.build_card(loaded, tmp_dir)
        write_json(tmp_dir / paths.MODEL_CARD_NAME, card)
    metrics = subject.conversion_metrics(
        card, load_seconds=loaded.load_seconds, seconds=time.perf_counter() - started
    )
    write_json(paths.under(root, paths.SUBJECT_MODEL_METRICS), metrics)
    log.info(
        "subject model %s: %d layers x %d, converted in %.1f s -> %s",
        card.get("gguf_file") or card.get("name_or_path"),
        card["n_layers"],
        card["d_model"],
        metrics["conversion_seconds"],
        out_dir,
    )
