"""Atomic writes: a failure inside leaves the previous version (or nothing), never a torn one,
and no temporary file or folder; success replaces the whole artifact. Plus ``read_json``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lensforge.core import artifacts
from lensforge.core.errors import ArtifactError


class Boom(Exception):
    """Stands for a crash (or any error) in the middle of a write."""


def names(folder) -> list[str]:
    """Every entry under ``folder``, relative, hidden ones included."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_atomic_path_replaces_the_file_only_on_success_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old", encoding="utf-8")
    with artifacts.atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new", encoding="utf-8")
        assert target.read_text(encoding="utf-8") == "old"  # not yet visible
    assert target.read_text(encoding="utf-8") == "new"
    assert names(tmp_path) == ["out.json"]


def test_a_failure_inside_atomic_path_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(Boom), artifacts.atomic_path(target) as tmp:
        tmp.write_text("half of the n", encoding="utf-8")
        raise Boom
    assert target.read_text(encoding="utf-8") == "old"
    assert names(tmp_path) == ["out.json"]


def test_a_failure_inside_atomic_path_with_no_old_file_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    with pytest.raises(Boom), artifacts.atomic_path(target) as tmp:
        tmp.write_text("a,b\n", encoding="utf-8")
        raise Boom
    assert not target.exists()
    assert names(tmp_path) == ["sub"]  # the parent folder may stay, empty


def test_safetensors_metadata_is_one_key_so_the_bytes_never_change(tmp_path):
    path = tmp_path / "w.safetensors"
    digests = set()
    for _ in range(10):
        artifacts.write_safetensors(path, {"w": torch.zeros(2)}, {"lensforge": '{"a": 1}'})
        digests.add(artifacts.file_sha256(path))
    assert len(digests) == 1
    with pytest.raises(ValueError, match="one key"):
        artifacts.write_safetensors(path, {"w": torch.zeros(2)}, {"a": "1", "b": "2"})


def test_safetensors_files_get_the_umask_permissions_too(tmp_path):
    artifacts.write_safetensors(tmp_path / "w.safetensors", {"w": torch.zeros(2)})
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~artifacts._UMASK


def test_atomic_path_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    artifacts.write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~artifacts._UMASK


def test_write_helpers_give_the_same_bytes_for_the_same_content(tmp_path):
    obj = {"b": 1, "a": [1.5, "x"]}
    artifacts.write_json(tmp_path / "one.json", obj)
    artifacts.write_json(tmp_path / "two.json", dict(reversed(list(obj.items()))))
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    with pytest.raises(ValueError):
        artifacts.write_json(tmp_path / "nan.json", {"x": float("nan")})
    assert not (tmp_path / "nan.json").exists()
    tensor = torch.arange(6, dtype=torch.float16).reshape(2, 3)
    artifacts.write_safetensors(tmp_path / "a.safetensors", {"t": tensor})
    artifacts.write_safetensors(tmp_path / "b.safetensors", {"t": tensor.clone()})
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert torch.equal(load_file(tmp_path / "a.safetensors")["t"], tensor)


def make_version(folder, version: str) -> None:
    (folder / "nested").mkdir(parents=True, exist_ok=True)
    (folder / f"only_in_{version}.txt").write_text(version, encoding="utf-8")
    (folder / "nested" / "value.txt").write_text(version, encoding="utf-8")


def test_atomic_dir_replaces_the_whole_folder_on_success(tmp_path):
    target = tmp_path / "cache"
    make_version(target, "v1")
    with artifacts.atomic_dir(target) as tmp:
        assert tmp == tmp_path / "cache.tmp" and names(tmp) == []
        make_version(tmp, "v2")
        assert (target / "nested" / "value.txt").read_text(encoding="utf-8") == "v1"
    assert names(target) == ["nested", "nested/value.txt", "only_in_v2.txt"]
    assert (target / "nested" / "value.txt").read_text(encoding="utf-8") == "v2"
    assert names(tmp_path) == ["cache", *(f"cache/{n}" for n in names(target))]


def test_a_failure_inside_atomic_dir_keeps_the_old_folder_and_removes_the_temp(tmp_path):
    target = tmp_path / "cache"
    make_version(target, "v1")
    before = {n: (target / n).read_bytes() for n in names(target) if (target / n).is_file()}
    with pytest.raises(Boom), artifacts.atomic_dir(target) as tmp:
        make_version(tmp, "v2")
        raise Boom
    after = {n: (target / n).read_bytes() for n in names(target) if (target / n).is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_failure_inside_atomic_dir_with_no_old_folder_leaves_nothing(tmp_path):
    with pytest.raises(Boom), artifacts.atomic_dir(tmp_path / "models" / "lenses") as tmp:
        (tmp / "weights.safetensors").write_bytes(b"half")
        raise Boom
    assert names(tmp_path) == ["models"]


def test_atomic_dir_clears_what_a_killed_run_left_behind(tmp_path):
    target = tmp_path / "cache"
    make_version(target, "v1")
    make_version(tmp_path / "cache.tmp", "torn")  # a kill while the folder was being built
    make_version(tmp_path / "cache.old", "v0")  # a kill while the replaced version was deleted
    with artifacts.atomic_dir(target) as tmp:
        assert names(tmp) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
            "cache",
            tmp.name,
        ]
        make_version(tmp, "v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert (target / "only_in_v2.txt").is_file()


def test_a_kill_between_the_two_renames_gets_the_previous_version_back(tmp_path):
    # The kill fell after ``cache`` -> ``cache.old`` and before ``cache.tmp`` -> ``cache``.
    make_version(tmp_path / "cache.old", "v1")
    make_version(tmp_path / "cache.tmp", "v2")
    with pytest.raises(Boom), artifacts.atomic_dir(tmp_path / "cache"):
        assert (tmp_path / "cache" / "only_in_v1.txt").is_file()  # back before any new write
        raise Boom
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert names(tmp_path / "cache") == ["nested", "nested/value.txt", "only_in_v1.txt"]


def test_read_json_returns_the_value(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"a": [1, 2]}), encoding="utf-8")
    assert artifacts.read_json(tmp_path / "m.json", what="balance metrics") == {"a": [1, 2]}


def test_read_json_of_a_missing_file_is_an_artifact_error_naming_it(tmp_path):
    with pytest.raises(ArtifactError, match="balance metrics missing") as info:
        artifacts.read_json(tmp_path / "m.json", what="balance metrics")
    assert info.value.path == tmp_path / "m.json" and info.value.rule == "file exists"
    assert str(tmp_path / "m.json") in str(info.value)


@pytest.mark.parametrize("content", [b'{"a": 1', b"", b"\xff\xfe{}"])
def test_read_json_of_a_torn_or_binary_file_is_an_artifact_error_naming_it(tmp_path, content):
    (tmp_path / "m.json").write_bytes(content)
    with pytest.raises(ArtifactError, match="balance metrics is not") as info:
        artifacts.read_json(tmp_path / "m.json", what="balance metrics")
    assert info.value.path == tmp_path / "m.json" and info.value.rule == "valid JSON"
