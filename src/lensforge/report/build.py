"""The report's recipe: read every section's inputs, then draw them, then render the page.

All inputs are read before any figure is drawn, so a missing file fails in a second, not after
a minute of plotting.

Every input of the simplex, adjudication and concept sections is a dep of the ``report`` stage:
a missing one is an ``ArtifactError`` naming the file. The layer sweep and data quality are
hooks (a ``Hook`` in ``SECTIONS``): their stages are not yet deps of the report, so each is
drawn when its file exists and otherwise shows a note saying which file is missing and what
writes it. Once their files are deps, drop their ``Hook`` so a missing one fails like the rest.
A hook's file that exists but is broken is an ``ArtifactError`` too, never a note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lensforge.core import paths
from lensforge.core.errors import ArtifactError
from lensforge.report import inputs, page, sections
from lensforge.report.page import Section

log = logging.getLogger(__name__)

TITLE = "lensforge report"


def read_simplexes(root: Path) -> dict:
    """The tier summary, balancing and, per simplex of metrics/evaluate.json, its rows of each
    plot table and its training curves; a simplex missing from a table is an ``ArtifactError``."""
    strategy, balance = inputs.balance(root)
    tiers = inputs.simplex_tiers(root)
    tables = {
        paths.EVALUATE_CONFUSION: inputs.simplex_confusion(root),
        paths.EVALUATE_F1_BY_SEED: inputs.simplex_f1_by_seed(root),
        paths.EVALUATE_CALIBRATION: inputs.simplex_calibration(root),
    }
    per_simplex = {}
    for simplex in tiers["simplex"]:
        rows = {path: table[table["simplex"] == simplex] for path, table in tables.items()}
        for path, part in rows.items():
            if part.empty:
                raise ArtifactError(
                    f"no rows for simplex {simplex!r}", path=paths.under(root, path), rule="simplex"
                )
        seeds = sorted(rows[paths.EVALUATE_F1_BY_SEED]["seed"].unique())
        per_simplex[simplex] = {
            "confusion": rows[paths.EVALUATE_CONFUSION],
            "f1_by_seed": rows[paths.EVALUATE_F1_BY_SEED],
            "calibration": rows[paths.EVALUATE_CALIBRATION],
            "curves": inputs.training_curves(root, simplex, seeds),
        }
    return {"strategy": strategy, "balance": balance, "tiers": tiers, "simplexes": per_simplex}


def draw_simplexes(data: dict) -> list[Section]:
    summary = sections.summary_section(data["strategy"], data["balance"], data["tiers"])
    return [summary] + [
        sections.simplex_section(simplex, **parts) for simplex, parts in data["simplexes"].items()
    ]


def read_adjudications(root: Path) -> dict:
    tasks, classes = inputs.adjudication_scores(root)
    return {
        "tasks": tasks,
        "classes": classes,
        "confusions": {task: inputs.adjudication_confusion(root, task) for task in tasks["task"]},
        "calibration": inputs.adjudication_calibration(root),
    }


def draw_adjudications(data: dict) -> list[Section]:
    return [sections.adjudication_section(data.pop("tasks"), data.pop("classes"), **data)]


def read_concepts(root: Path) -> dict:
    return {
        "summary": inputs.concept_summary(root),
        "tiers": inputs.concept_tiers(root),
        "f1_distribution": inputs.concept_f1_distribution(root),
        "f1_by_samples": inputs.concept_f1_by_samples(root),
    }


def draw_concepts(data: dict) -> list[Section]:
    return [sections.concept_section(data.pop("summary"), **data)]


def read_layer_sweep(root: Path) -> dict:
    return {"sweep": inputs.layer_sweep(root)}


def draw_layer_sweep(data: dict) -> list[Section]:
    return [sections.layer_sweep_section(data["sweep"])]


def read_data_quality(root: Path) -> dict:
    return {
        "quadrants": inputs.quality_quadrants(root),
        "grades": inputs.quality_grades(root),
        "gap_vs_f1": inputs.quality_gap_vs_f1(root),
    }


def draw_data_quality(data: dict) -> list[Section]:
    return [sections.data_quality_section(data.pop("quadrants"), **data)]


def read_spans(root: Path) -> dict:
    return {
        "scores": inputs.span_scores(root),
        "loss_share": inputs.span_loss_share(root),
        "windows": inputs.span_windows(root),
    }


def draw_spans(data: dict) -> list[Section]:
    return [sections.span_section(data.pop("scores"), **data)]


Reader = Callable[[Path], dict]
Drawer = Callable[[dict], list[Section]]


@dataclass(frozen=True)
class Hook:
    """An optional section: drawn when ``marker`` exists, a note naming it otherwise."""

    title: str
    marker: Path
    producer: str


# The page, in order: (section name, reader, drawer, hook or None for a required section).
SECTIONS: tuple[tuple[str, Reader, Drawer, Hook | None], ...] = (
    ("simplexes", read_simplexes, draw_simplexes, None),
    (
        "layer-sweep",
        read_layer_sweep,
        draw_layer_sweep,
        None,
    ),
    ("adjudications", read_adjudications, draw_adjudications, None),
    ("concepts", read_concepts, draw_concepts, None),
    (
        "data-quality",
        read_data_quality,
        draw_data_quality,
        None,
    ),
    ("spans", read_spans, draw_spans, None),
)


def build_report(root: Path) -> str:
    """The whole HTML page for the project under ``root``."""
    read: list[tuple[str, Drawer, dict | None, Hook | None]] = []
    for name, reader, drawer, hook in SECTIONS:
        if hook is not None and not paths.under(root, hook.marker).exists():
            log.warning("report: %s not found; the %s section shows a note", hook.marker, name)
            read.append((name, drawer, None, hook))
        else:
            read.append((name, drawer, reader(root), hook))
    parts: list[Section] = []
    for name, drawer, data, hook in read:
        if data is None:
            parts.append(
                sections.missing_input_section(
                    name, hook.title, path=hook.marker.as_posix(), producer=hook.producer
                )
            )
        else:
            parts += drawer(data)
    return page.render(
        parts,
        title=TITLE,
        subtitle="Built offline from the metrics of the last `dvc repro`; every figure is "
        "embedded in this file.",
    )
