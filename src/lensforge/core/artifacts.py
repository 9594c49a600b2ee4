"""Atomic artifact writes: temp file in the same folder, fsync, ``os.replace``.

A stage killed mid-write leaves either the previous artifact or none, never a torn one.
Directories are built as ``<out>.tmp`` and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from lensforge.core.errors import ArtifactError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 (and a writer that recreates the file, as safetensors does, may
        # too); a shared team cache needs the umask's permissions: set them on what was written
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path | str, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_csv(path: Path | str, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_safetensors(path: Path | str, tensors: dict, metadata: dict[str, str] | None = None):
    """Tensors (and at most one metadata entry) to ``path``, atomically. safetensors writes its
    metadata from a Rust hash map: with two keys their order, and so the file's bytes, change from
    call to call, which would give DVC a new hash for the same output. Put several values in one
    key (e.g. a JSON object)."""
    from safetensors.torch import save_file

    if metadata is not None and len(metadata) > 1:
        raise ValueError(
            f"safetensors metadata with {len(metadata)} keys is not byte-stable; use one key"
        )
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield an empty ``<path>.tmp`` folder; on success it replaces ``path`` as a whole.

    The swap is two renames (``path`` -> ``<path>.old``, ``<path>.tmp`` -> ``path``). What a
    killed run left is settled first: a ``.tmp`` folder is torn and goes; an ``.old`` folder
    beside a missing ``path`` is the previous complete version (the kill fell between the two
    renames) and is put back, so a failure in this run, too, leaves that version in place.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    if tmp.exists():
        shutil.rmtree(tmp)
    if old.exists() and not path.exists():
        os.replace(old, path)
    elif old.exists():
        shutil.rmtree(old)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def shared_atomic_dir(path: Path | str, *, state) -> Iterator[Path]:
    """``atomic_dir`` for data-parallel writers: every process of ``state`` (an Accelerate
    ``PartialState``) gets the main process's ``<path>.tmp`` folder to write its own files into.

    Broadcasting the folder's path is also the barrier before anyone writes into it; the body
    must end in a barrier (``state.wait_for_everyone()``) so that only complete folders are
    renamed into place, by the main process alone.
    """
    from accelerate.utils import broadcast_object_list

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_dir(path)) if state.is_main_process else None
        yield Path(broadcast_object_list([tmp])[0])


def read_json(path: Path | str, *, what: str) -> object:
    """The JSON value in ``path``; ``ArtifactError`` naming the file when it is missing or is not
    valid JSON. ``what`` says what the file is (and which stage makes it) in the message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{what} missing", path=path, rule="file exists") from None
    except UnicodeDecodeError:
        raise ArtifactError(f"{what} is not UTF-8 text", path=path, rule="valid JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            path=path,
            rule="valid JSON",
        ) from None


def file_sha256(path: Path | str, *, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path | str, expected: str, *, what: str, source: str, rule: str) -> None:
    """Raise ``ArtifactError`` unless ``path`` hashes to ``expected`` (e.g. a card's record)."""
    actual = file_sha256(path)
    if actual != expected:
        raise ArtifactError(
            f"{what} sha256 {actual} differs from {source} {expected}", path=path, rule=rule
        )


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
