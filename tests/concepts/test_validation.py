"""``lensforge.concepts.validation`` on broken copies of real first-light concept files and on
the real archive: every failure names the archive member, the term and the rule."""

from __future__ import annotations

import copy
import json
import tarfile

import pandas as pd
import pytest

from lensforge.concepts import pack, validation
from tests.concepts.test_pack import REAL_ARCHIVE, write_archive

# A real branch of the pack: a root, one layer-1 child, its three layer-2 children.
ROOT = "first-light/concepts/layer0/physicalworld.json"
REGION = "first-light/concepts/layer1/region.json"
PHYSICAL = "first-light/concepts/layer2/physicalgeography.json"
POLITICAL = "first-light/concepts/layer2/politicalgeography.json"
SPACE = "first-light/concepts/layer2/spaceregion.json"
MAX_DEFINITION_CHARS = 4000


@pytest.fixture(scope="module")
def real_files() -> dict[str, dict]:
    """The five concept files, parsed from the real archive."""
    with tarfile.open(REAL_ARCHIVE, "r:gz") as archive:
        return {
            name: json.loads(archive.extractfile(name).read())
            for name in (ROOT, REGION, PHYSICAL, POLITICAL, SPACE)
        }


def _validate(tmp_path, files: dict[str, dict], **limits):
    read = pack.read_pack(write_archive(tmp_path / "copy.tar.gz", files))
    options = {"max_definition_chars": MAX_DEFINITION_CHARS, **limits}
    return validation.validate_pack(read, **options)


def _broken(real_files: dict[str, dict], member: str, change) -> dict[str, dict]:
    files = copy.deepcopy(real_files)
    change(files[member])
    return files


def _named(report) -> set[tuple[str, str, str]]:
    return {(f.file, f.row, f.rule) for f in report.failures}


def test_the_real_files_pass_and_are_counted_per_layer(tmp_path, real_files):
    report = _validate(tmp_path, real_files)
    assert report.success, report.summary(n_shown=5)
    assert report.counts["pack_layer_0/n_concepts"] == 1
    assert report.counts["pack_layer_2/n_concepts"] == 3
    assert report.counts["n_with_synsets"] == 2  # SpaceRegion and Region
    assert report.counts["hierarchy_json/found"] == 0


def test_a_missing_parent_fails_naming_member_term_and_rule(tmp_path, real_files):
    files = _broken(real_files, PHYSICAL, lambda d: d.update(parent_concepts=["Atlantis"]))
    report = _validate(tmp_path, files)
    assert _named(report) == {(PHYSICAL, "PhysicalGeography", "parent exists")}
    assert "'Atlantis'" in report.failures[0].message


def test_a_parent_on_a_deeper_layer_fails(tmp_path, real_files):
    files = _broken(real_files, REGION, lambda d: d.update(parent_concepts=["SpaceRegion"]))
    report = _validate(tmp_path, files)
    assert _named(report) == {(REGION, "Region", "parent on a lower layer")}
    assert "pack layer 2" in report.failures[0].message


def test_a_parent_on_the_same_layer_fails(tmp_path, real_files):
    files = _broken(real_files, SPACE, lambda d: d.update(parent_concepts=["PhysicalGeography"]))
    assert _named(_validate(tmp_path, files)) == {(SPACE, "SpaceRegion", "parent on a lower layer")}


def test_an_empty_or_overlong_definition_fails(tmp_path, real_files):
    longest = max(len(doc["definition"]) for doc in real_files.values())
    files = _broken(real_files, POLITICAL, lambda d: d.update(definition="  "))
    files[SPACE]["definition"] = "x" * (longest + 1)
    report = _validate(tmp_path, files, max_definition_chars=longest)
    assert _named(report) == {
        (POLITICAL, "PoliticalGeography", "definition non-empty string"),
        (SPACE, "SpaceRegion", "definition length"),
    }


def test_a_duplicate_term_names_both_files(tmp_path, real_files):
    files = copy.deepcopy(real_files)
    twin = "first-light/concepts/layer2/spaceregion_copy.json"
    files[twin] = copy.deepcopy(files[SPACE])
    assert _named(_validate(tmp_path, files)) == {
        (SPACE, "SpaceRegion", "unique term"),
        (twin, "SpaceRegion", "unique term"),
    }


def test_a_bad_synset_id_fails_and_quotes_the_id(tmp_path, real_files):
    def change(doc):
        doc["wordnet"]["synsets"][1] = "0002900.n"  # seven digits

    report = _validate(tmp_path, _broken(real_files, SPACE, change))
    assert _named(report) == {(SPACE, "SpaceRegion", "synset id format")}
    assert "'0002900.n'" in report.failures[0].message


def test_synset_ids_are_wordnet_offsets_or_synset_names():
    import re

    good = ("05553486.n", "00029007.s", "work.n.01", "ai_artifact.n.01", "o'clock.r.02")
    bad = ("5553486.n", "05553486.x", "work.n.1", "Work", "work.n.01 ", "")
    assert all(re.match(validation.SYNSET_ID, s) for s in good)
    assert not any(re.match(validation.SYNSET_ID, s) for s in bad)


def test_missing_keys_layer_mismatch_and_bad_list_items_fail_their_rules(tmp_path, real_files):
    files = _broken(real_files, PHYSICAL, lambda d: d["wordnet"].pop("lemmas"))
    files[POLITICAL]["layer"] = 3
    files[REGION]["aliases"] = ["region", ""]
    files[SPACE]["wordnet"]["canonical_synset"] = "99999999.n"
    files[ROOT]["parent_concepts"] = ["Region"]
    report = _validate(tmp_path, files)
    assert _named(report) == {
        (PHYSICAL, "PhysicalGeography", "required keys"),
        (POLITICAL, "PoliticalGeography", "layer matches folder"),
        (REGION, "Region", "aliases strings"),
        (SPACE, "SpaceRegion", "canonical synset listed"),
        (ROOT, "PhysicalWorld", "parents by layer"),
        # a root whose parent is deeper also breaks the layer order
        (ROOT, "PhysicalWorld", "parent on a lower layer"),
    }


def test_a_broken_member_is_reported_with_the_others(tmp_path, real_files):
    files = _broken(real_files, PHYSICAL, lambda d: d.update(parent_concepts=["Atlantis"]))
    path = write_archive(tmp_path / "copy.tar.gz", {**files, POLITICAL: b"{"})
    report = validation.validate_pack(
        pack.read_pack(path), max_definition_chars=MAX_DEFINITION_CHARS
    )
    assert _named(report) == {
        (POLITICAL, pack.WHOLE_FILE, "readable concept file"),
        (PHYSICAL, "PhysicalGeography", "parent exists"),
    }


def test_hierarchy_disagreements_are_counted_by_its_own_layer_tags():
    concepts = pd.DataFrame(
        {
            "term": ["Root", "A", "B", "C"],
            "pack_layer": [0, 1, 2, 2],
            "parent_concepts": [[], ["Root"], ["A"], ["A"]],
        }
    )
    links = pack.hierarchy_links(
        {
            "child_to_parent": {
                "A:1": "Root:0",  # agrees
                "B:2": "C:2",  # same layer, and not B's parent
                "C:1": "B:2",  # inverted, tagged with another layer than C's folder
                "Ghost:3": "A:1",  # unknown child
            }
        }
    )
    assert validation.hierarchy_counts(concepts, links) == {
        "hierarchy_json/found": 1,
        "hierarchy_json/n_links": 4,
        "hierarchy_json/n_same_layer_links": 1,
        "hierarchy_json/n_inverted_links": 1,
        "hierarchy_json/n_unknown_term_links": 1,
        "hierarchy_json/n_parent_disagreements": 2,
        "hierarchy_json/n_layer_tag_disagreements": 1,
        "hierarchy_json/n_concepts_absent": 0,
    }


def test_the_real_archive_passes_and_counts_the_hierarchy_file_disagreements():
    report = validation.validate_pack(
        pack.read_pack(REAL_ARCHIVE), max_definition_chars=MAX_DEFINITION_CHARS
    )
    assert report.success, report.summary(n_shown=5)
    assert report.counts["n_concepts"] == 7947
    assert report.counts["n_with_synsets"] == 6760
    assert [report.counts[f"pack_layer_{k}/n_concepts"] for k in range(7)] == [
        5,
        23,
        241,
        1283,
        2603,
        2687,
        1105,
    ]
    assert report.counts["hierarchy_json/n_links"] == 7679
    assert report.counts["hierarchy_json/n_same_layer_links"] == 2722
    assert report.counts["hierarchy_json/n_inverted_links"] == 116
