"""One curve writer for every trainer: per-epoch records -> dvclive-format TSV plots.

Layout ``<live_dir>/plots/metrics/<name>.tsv`` with columns ``step`` (the epoch) and ``<name>``,
which is what ``dvclive.Live.log_metric`` writes and what dvc.yaml declares as plots with
``x: step``. ``Live`` itself is not used: its constructor opens the enclosing DVC/git repository
and crashes in a git repo without commits, runs ``dvc init`` in a git repo without DVC, and its
``end()`` git-adds the untracked files of its folder under ``dvc exp run``. The folder is written
whole at the end (temp folder + rename), so a killed run leaves the previous curves or none.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from lensforge.core.artifacts import atomic_dir

STEP = "step"


def write_curves(history: Sequence[Mapping[str, float]], live_dir: Path, *, step_key: str) -> None:
    """Replace ``live_dir`` as a whole with the curves of ``history`` (see ``write_curve_files``)."""
    with atomic_dir(live_dir) as tmp_dir:
        write_curve_files(history, tmp_dir, step_key=step_key)


def write_curve_files(
    history: Sequence[Mapping[str, float]], live_dir: Path, *, step_key: str
) -> None:
    """Write one TSV per metric of ``history`` (one record per step, ``record[step_key]`` its
    step) under ``live_dir``, which the caller writes atomically as part of a larger folder; a
    metric missing from some records gets rows only where it is present."""
    names: list[str] = []
    for record in history:
        names += [name for name in record if name != step_key and name not in names]
    for name in names:
        path = live_dir / "plots" / "metrics" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow([STEP, Path(name).name])
            for record in history:
                if name in record:
                    writer.writerow([int(record[step_key]), _number(record[name])])


def _number(value: float) -> float | str:
    value = float(value)
    return repr(value) if math.isfinite(value) else str(value)
