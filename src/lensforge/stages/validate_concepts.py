"""validate_concepts stage: Great Expectations suites on the concept pack -> metrics file.

The concept files are the one source of truth for the hierarchy: ``hierarchy/hierarchy.json``
disagrees with them, and the report counts how (never used, never a failure). The report is
written whether or not the pack passes; a failure then raises ``DataError`` naming archive member,
concept and rule of the first failures (exit 2, no traceback).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.concepts import pack, validation
from lensforge.core import artifacts, paths
from lensforge.core.errors import DataError
from lensforge.core.params import Params

log = logging.getLogger(__name__)

N_FAILURES_SHOWN = 5  # failures quoted in the error message; the report holds them all


def run(params: Params, *, root: Path) -> None:
    concept_pack = pack.read_pack(paths.under(root, paths.CONCEPT_PACK))
    report = validation.validate_pack(
        concept_pack, max_definition_chars=params.validate_concepts.max_definition_chars
    )
    metrics_path = paths.under(root, paths.VALIDATE_CONCEPTS_METRICS)
    artifacts.write_json(metrics_path, report.to_dict())
    if not report.success:
        raise DataError(f"{report.summary(n_shown=N_FAILURES_SHOWN)}\nfull report: {metrics_path}")
    log.info(
        "validate_concepts: %d concepts pass (per pack layer: %s)",
        len(concept_pack.concepts),
        ", ".join(f"{k}={v}" for k, v in pack.layer_counts(concept_pack.concepts).items()),
    )
