"""windows stage: price bars -> rule-labelled expansion spans -> windows with time splits.

Reads every instrument of ``windows.instruments`` and the held-out one (bundled names or CSV
paths; ``lensforge.spans.sources``), computes the causal features (``spans.features``) and the
expansion labels (``spans.labels``), splits each instrument by time with a purge gap and cuts
windows (``spans.windows``). Writes ``data/spans/`` as one folder (the window tensors, the window
index, features.json, one bar table per instrument, PROVENANCE.md) and, last,
``metrics/windows.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch

from lensforge.core import artifacts, paths
from lensforge.core.errors import ParamsError
from lensforge.core.params import Params
from lensforge.spans import features, sources, windows

log = logging.getLogger(__name__)


def _read(params: Params, *, root: Path) -> list[sources.Instrument]:
    config = params.windows
    entries = [*config.instruments, *([config.holdout] if config.holdout else [])]
    names = [sources.instrument_name(e) for e in entries]
    if len(set(names)) != len(names):
        raise ParamsError(
            f"windows.instruments and holdout must name distinct instruments, got {names}",
            row="windows.instruments",
            rule="distinct instrument names (a CSV goes by its file stem)",
        )
    instruments = []
    for entry in entries:
        log.info("reading %s", entry)
        instruments.append(sources.read_instrument(entry, root=root))
    return instruments


def run(params: Params, *, root: Path) -> None:
    config = params.windows
    instruments = _read(params, root=root)
    tables, window_set, dropped = windows.build(instruments, config)
    tensors = {k: torch.from_numpy(v) for k, v in window_set.tensors().items()}
    description = {"features": list(features.FEATURE_NAMES), "classes": list(windows.CLASSES)}
    metadata = {"lensforge": json.dumps(description, sort_keys=True)}  # one key: byte-stable
    with artifacts.atomic_dir(paths.under(root, paths.SPANS_DATA_DIR)) as out_dir:

        def inside(path: Path) -> Path:
            return out_dir / path.relative_to(paths.SPANS_DATA_DIR)

        artifacts.write_safetensors(inside(paths.SPAN_WINDOWS), tensors, metadata)
        artifacts.write_csv(inside(paths.SPAN_WINDOW_INDEX), window_set.index)
        artifacts.write_json(
            inside(paths.SPAN_FEATURES), windows.describe(instruments, tables, config)
        )
        for name, table in tables.items():
            artifacts.write_csv(inside(paths.SPAN_BARS_DIR) / f"{name}.csv", table)
        note = sources.provenance_note(instruments, label=dataclasses.asdict(config.label))
        artifacts.write_text(inside(paths.SPAN_PROVENANCE), note)
    summary = windows.summary(tables, window_set, dropped, config)
    artifacts.write_json(paths.under(root, paths.WINDOWS_METRICS), summary)
    log.info(
        "%d windows (%s); in-span bar fraction %.3f",
        summary["n_windows"],
        ", ".join(f"{s} {n}" for s, n in summary["windows_per_split"].items()),
        summary["in_span_fraction"],
    )
