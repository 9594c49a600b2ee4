"""Where a pinned archive is read from: the project's .cache/archives, else $LENSFORGE_ARCHIVES."""

from __future__ import annotations

import hashlib

import pytest

from lensforge.core import archives, paths
from lensforge.core.errors import ArtifactError


def test_the_project_copy_wins_then_the_env_folder_then_the_error_names_both(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / paths.ARCH_WHEEL.name).write_bytes(b"wheel")
    project = tmp_path / "project"
    monkeypatch.delenv(archives.ENV, raising=False)
    assert archives.locate(project, paths.ARCH_WHEEL) == project / paths.ARCH_WHEEL
    monkeypatch.setenv(archives.ENV, str(shared))
    assert archives.locate(project, paths.ARCH_WHEEL) == shared / paths.ARCH_WHEEL.name
    own = project / paths.ARCH_WHEEL
    own.parent.mkdir(parents=True)
    own.write_bytes(b"wheel")
    assert archives.locate(project, paths.ARCH_WHEEL) == own
    missing = archives.locate(project, paths.VADER_SDIST)  # in neither place
    assert missing == project / paths.VADER_SDIST
    with pytest.raises(ArtifactError, match=archives.ENV):
        archives.check_archive(missing, sha256="0" * 64)


def test_an_archive_that_is_not_the_pinned_file_is_refused(tmp_path):
    path = tmp_path / "a.whl"
    path.write_bytes(b"not the wheel")
    archives.check_archive(path, sha256=hashlib.sha256(b"not the wheel").hexdigest())
    with pytest.raises(ArtifactError, match="sha256"):
        archives.check_archive(path, sha256="0" * 64)
