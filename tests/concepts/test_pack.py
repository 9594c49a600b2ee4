"""``lensforge.concepts.pack``: a concept pack archive read member by member into one table."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pandas as pd

from lensforge.concepts import pack

REAL_ARCHIVE = Path(__file__).resolve().parents[2] / "data/raw/concepts/first-light.tar.gz"


def write_archive(path: Path, members: dict[str, object]) -> Path:
    """A .tar.gz holding ``members`` (a dict or list is written as JSON, bytes as they are)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def concept_doc(term: str, layer: int, parents: list[str], **extra) -> dict:
    """A minimal concept object with every required key."""
    doc = {
        "term": term,
        "layer": layer,
        "definition": f"the {term} concept",
        "wordnet": {"synsets": [], "canonical_synset": "", "lemmas": [term.lower()], "pos": ""},
        "relationships": {"related": [], "antonyms": [], "has_part": [], "part_of": []},
        "training_hints": {"positive_examples": [], "negative_examples": []},
    }
    if layer > 0:
        doc["parent_concepts"] = parents
    doc.update(extra)
    return doc


def test_each_concept_file_becomes_one_row_with_its_layer_folder(tmp_path):
    root = concept_doc("Thing", 0, [])
    child = concept_doc("Tool", 1, ["Thing"], aliases=["implement"], domain="CreatedThings")
    child["relationships"]["opposite"] = ["Toy"]
    child["wordnet"]["synsets"] = ["04451818.n"]
    path = write_archive(
        tmp_path / "p.tar.gz",
        {
            "p/concepts/layer0/thing.json": root,
            "p/concepts/layer1/tool.json": child,
            "p/README.md": b"not a concept",
            "p/hierarchy.json": {"child_to_parent": {"Tool:1": "Thing:0"}},
        },
    )
    read = pack.read_pack(path)
    assert read.load_failures == ()
    table = read.concepts.set_index("term")
    assert list(read.concepts.columns) == pack.CONCEPT_COLUMNS
    assert table.loc["Tool", "file"] == "p/concepts/layer1/tool.json"
    assert table.loc["Tool", "pack_layer"] == 1
    assert table.loc["Tool", "parent_concepts"] == ["Thing"]
    assert table.loc["Tool", "synsets"] == ["04451818.n"]
    assert table.loc["Tool", "aliases"] == ["implement"]
    assert table.loc["Tool", "opposite"] == ["Toy"]
    assert table.loc["Tool", "lemmas"] == ["tool"]
    # a root has no parent_concepts key: an empty list, not a missing key
    assert table.loc["Thing", "parent_concepts"] == []
    assert table.loc["Thing", "aliases"] == []
    assert table.loc["Thing", "missing_keys"] is None
    # the top-level hierarchy.json is not hierarchy/hierarchy.json
    assert read.hierarchy is None


def test_missing_required_keys_are_listed_and_raw_wrong_types_kept(tmp_path):
    doc = concept_doc("Tool", 2, ["Thing"], definition=7)
    del doc["wordnet"]["lemmas"]
    del doc["parent_concepts"]
    read = pack.read_pack(write_archive(tmp_path / "p.tar.gz", {"concepts/layer2/t.json": doc}))
    row = read.concepts.iloc[0]
    assert row["missing_keys"] == "wordnet.lemmas, parent_concepts"
    assert row["definition"] == 7
    assert row["lemmas"] is None


def test_broken_members_are_load_failures_and_the_rest_is_read(tmp_path):
    members = {
        "p/concepts/layer1/good.json": concept_doc("Good", 1, ["Thing"]),
        "p/concepts/layer1/syntax.json": b'{"term": "Broken",',
        "p/concepts/layer1/list.json": [1, 2],
        "p/concepts/layer1/twice.json": b'{"term": "A", "term": "B"}',
        "p/concepts/layer1/latin1.json": '{"term": "Caf\xe9"}'.encode("latin-1"),
    }
    read = pack.read_pack(write_archive(tmp_path / "p.tar.gz", members))
    assert list(read.concepts["term"]) == ["Good"]
    by_file = {f.file: f for f in read.load_failures}
    assert set(by_file) == set(members) - {"p/concepts/layer1/good.json"}
    assert {f.rule for f in read.load_failures} == {"readable concept file"}
    assert {f.row for f in read.load_failures} == {pack.WHOLE_FILE}
    assert "malformed JSON" in by_file["p/concepts/layer1/syntax.json"].message
    assert "must hold an object" in by_file["p/concepts/layer1/list.json"].message
    assert "appears twice" in by_file["p/concepts/layer1/twice.json"].message
    assert "UTF-8" in by_file["p/concepts/layer1/latin1.json"].message


def test_an_unreadable_archive_or_one_without_concepts_is_a_failure_not_a_crash(tmp_path):
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is no archive")
    read = pack.read_pack(garbage)
    assert read.concepts.empty
    assert [(f.file, f.rule) for f in read.load_failures] == [(str(garbage), "readable archive")]
    empty = write_archive(tmp_path / "empty.tar.gz", {"p/README.md": b"hello"})
    assert [f.rule for f in pack.read_pack(empty).load_failures] == ["concept files present"]


def test_hierarchy_links_parse_layer_tags_and_a_broken_hierarchy_is_only_absent(tmp_path):
    links = pack.hierarchy_links({"child_to_parent": {"AAM:4": "GuidedMissile:4", "X": "Y:1"}})
    assert list(links["child"]) == ["AAM", "X"]
    assert list(links["parent"]) == ["GuidedMissile", "Y"]
    assert links["child_tag"].iloc[0] == 4 and pd.isna(links["child_tag"].iloc[1])
    assert list(links["parent_tag"]) == [4, 1]
    path = write_archive(
        tmp_path / "p.tar.gz",
        {
            "p/concepts/layer0/thing.json": concept_doc("Thing", 0, []),
            "p/hierarchy/hierarchy.json": b"{not json",
        },
    )
    read = pack.read_pack(path)
    assert read.hierarchy is None
    assert read.load_failures == ()


def test_the_real_first_light_archive_holds_7947_concepts_in_seven_layers():
    read = pack.read_pack(REAL_ARCHIVE)
    assert read.load_failures == ()
    assert len(read.concepts) == 7947
    assert pack.layer_counts(read.concepts) == {
        0: 5,
        1: 23,
        2: 241,
        3: 1283,
        4: 2603,
        5: 2687,
        6: 1105,
    }
    assert int(read.concepts["synsets"].map(len).gt(0).sum()) == 6760
    assert read.concepts["term"].is_unique
    assert len(read.hierarchy) == 7679
