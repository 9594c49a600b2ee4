"""validate stage: Great Expectations suites on every raw HatCat input -> metrics/validate.json.

The report is written whether or not the data pass; a failure then raises ``DataError`` naming
file, row and rule of the first failures, so the pipeline stops (exit 2, no traceback).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.core import artifacts, paths
from lensforge.core.errors import DataError
from lensforge.core.params import Params
from lensforge.lenses import validation
from lensforge.lenses.hatcat import POLES

log = logging.getLogger(__name__)

N_FAILURES_SHOWN = 5  # failures quoted in the error message; the report holds them all


def run(params: Params, *, root: Path) -> None:
    files = validation.RawFiles(
        definitions=paths.under(root, paths.SIMPLEX_DEFINITIONS),
        synsets=paths.under(root, paths.SYNSETS[params.data.synsets]),
        experiential=paths.under(root, paths.EXPERIENTIAL_PROMPTS),
    )
    inputs = validation.load_inputs(files)
    report = validation.validate_inputs(
        inputs,
        files,
        simplexes=params.data.simplexes,
        limits=params.validate,
    )
    artifacts.write_json(paths.under(root, paths.VALIDATE_METRICS), report.to_dict())
    if not report.success:
        raise DataError(
            f"{report.summary(n_shown=N_FAILURES_SHOWN)}\n"
            f"full report: {paths.under(root, paths.VALIDATE_METRICS)}"
        )
    log.info(
        "validate: %s synsets + experiential prompts pass for %s (synsets per pole: %s)",
        params.data.synsets,
        ", ".join(params.data.simplexes),
        "; ".join(
            f"{s} " + "/".join(str(report.counts[f"{s}/{pole}/n_synsets"]) for pole in POLES)
            for s in params.data.simplexes
        ),
    )
