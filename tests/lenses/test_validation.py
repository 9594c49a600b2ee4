"""Rules of ``lensforge.lenses.validation`` on tiny hand-written HatCat files with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lensforge.core.checks import Failure, Report
from lensforge.core.errors import DataError
from lensforge.core.params import ValidateParams
from lensforge.lenses import hatcat, validation
from lensforge.lenses.validation import RawFiles, RawInputs

POLE_NAMES = ("negative", "neutral", "positive")
LIMITS = ValidateParams(
    min_synsets_per_pole=1,
    min_experiential_per_pole=1,
    max_definition_chars=100,
    max_name_chars=20,
    max_prompt_chars=40,
)
FILES = RawFiles(
    definitions=Path("defs.json"), synsets=Path("syn.json"), experiential=Path("exp.json")
)


def _write(folder: Path, name: str, doc: object) -> Path:
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def _rules(failures: list[Failure]) -> set[tuple[str, str]]:
    return {(f.row, f.rule) for f in failures}


# definitions ------------------------------------------------------------------------------


def _simplex(name: str = "taste") -> dict:
    body = {"dimension": name, "description": f"how {name} develops"}
    for pole, key in hatcat.DEFINITION_KEYS.items():
        body[key] = {"label": pole[:3], "definition": f"the {pole} pole"}
    return body


def _definitions_doc(**simplexes: dict) -> dict:
    return {"metadata": {"version": "1.0"}, "simplexes": simplexes or {"taste": _simplex()}}


def _check_definitions(tmp_path: Path, doc: dict, limits: ValidateParams = LIMITS) -> list:
    tables = hatcat.read_definitions(_write(tmp_path, "defs.json", doc))
    return validation.check_definitions(tables, file="defs.json", limits=limits)


def test_complete_definitions_pass(tmp_path):
    assert _check_definitions(tmp_path, _definitions_doc()) == []


def test_missing_pole_is_named_by_simplex_and_pole(tmp_path):
    body = _simplex()
    del body["neutral_homeostasis"]
    failures = _check_definitions(tmp_path, _definitions_doc(taste=body))
    assert _rules(failures) == {("taste/neutral", "pole present")}
    assert failures[0].file == "defs.json"
    assert "neutral_homeostasis" in failures[0].message


def test_blank_label_and_numeric_definition_fail_their_rules(tmp_path):
    body = _simplex()
    body["negative_pole"]["label"] = "  "
    body["positive_pole"]["definition"] = 5
    failures = _check_definitions(tmp_path, _definitions_doc(taste=body))
    assert _rules(failures) == {
        ("taste/negative", "label non-empty string"),
        ("taste/positive", "definition non-empty string"),
    }
    numeric = next(f for f in failures if f.row == "taste/positive")
    assert numeric.message == "pole definition must be a string, got 5"


def test_a_fourth_pole_is_an_unknown_key_of_its_simplex(tmp_path):
    body = _simplex() | {"mixed_pole": {"label": "mix", "definition": "both at once"}}
    failures = _check_definitions(tmp_path, _definitions_doc(taste=body))
    assert _rules(failures) == {("taste", "known keys")}
    assert failures[0].message.endswith("got 'mixed_pole'")
    assert "known: dimension, description, negative_pole" in failures[0].message


def test_a_misspelled_pole_key_is_unknown_and_leaves_its_pole_missing(tmp_path):
    body = _simplex()
    body["neutral_homeostatis"] = body.pop("neutral_homeostasis")
    failures = _check_definitions(tmp_path, _definitions_doc(taste=body))
    assert _rules(failures) == {("taste", "known keys"), ("taste/neutral", "pole present")}
    unknown = next(f for f in failures if f.rule == "known keys")
    assert "'neutral_homeostatis'" in unknown.message


def test_unknown_keys_of_a_pole_entry_and_of_the_top_level_fail(tmp_path):
    body = _simplex()
    body["positive_pole"]["lable"] = "typo"
    doc = _definitions_doc(taste=body) | {"simplexs": {}}
    failures = _check_definitions(tmp_path, doc)
    assert _rules(failures) == {
        (validation.TOP_LEVEL, "known keys"),
        ("taste/positive", "known keys"),
    }


def test_dimension_must_name_its_simplex_and_a_body_must_be_an_object(tmp_path):
    wrong = _simplex() | {"dimension": "tast"}
    doc = _definitions_doc(taste=wrong, social="a string, not an object")
    failures = _check_definitions(tmp_path, doc)
    assert _rules(failures) == {
        ("taste", "dimension names its simplex"),
        ("social", "simplex object"),
    }


def test_a_definition_of_two_million_characters_fails_naming_its_row(tmp_path):
    body = _simplex()
    body["neutral_homeostasis"]["definition"] = "x" * 2_000_000
    failures = _check_definitions(tmp_path, _definitions_doc(taste=body))
    assert _rules(failures) == {("taste/neutral", "definition length")}
    message = failures[0].message
    assert "params.validate.max_definition_chars = 100" in message
    assert "(2000000 characters)" in message
    assert len(message) < 300  # the value is quoted, cut, not copied


def test_label_and_description_are_bounded_by_their_params(tmp_path):
    body = _simplex() | {"description": "d" * 101}
    body["negative_pole"]["label"] = "L" * 21
    failures = _check_definitions(tmp_path, _definitions_doc(taste=body))
    assert _rules(failures) == {
        ("taste", "description length"),
        ("taste/negative", "label length"),
    }
    label = next(f for f in failures if f.rule == "label length")
    assert "params.validate.max_name_chars = 20" in label.message


# synsets ----------------------------------------------------------------------------------


def _synset(synset_id: str, *poles: str, **fields) -> dict:
    """An entry applying to ``taste_<pole>`` for each of ``poles`` (default: neutral)."""
    entry = {
        "synset_id": synset_id,
        "lemmas": [synset_id.split(".")[0]],
        "definition": f"meaning of {synset_id}",
        "pos": "n",
        "applies_to_poles": [f"taste_{pole}" for pole in poles or ("neutral",)],
    }
    entry.update(fields)
    return entry


def _synsets_doc(**groups: list) -> dict:
    return {"metadata": {"total_pairs": len(groups)}, "overlaps": groups}


def _clean_groups() -> dict[str, list]:
    return {
        f"taste_{pole}": [_synset(f"{pole}.n.0{i}", pole) for i in range(2)] for pole in POLE_NAMES
    }


def _check_synsets(tmp_path: Path, doc: dict) -> list:
    tables = hatcat.read_synsets(_write(tmp_path, "syn.json", doc))
    return validation.check_synsets(tables, file="syn.json", limits=LIMITS)


def test_clean_synsets_pass(tmp_path):
    assert _check_synsets(tmp_path, _synsets_doc(**_clean_groups())) == []


def test_every_optional_key_of_the_real_files_passes(tmp_path):
    entry = _synset(
        "a.n.01",
        label="a",
        cultural_note="a note",
        source="api",
        generated_date="2025-11-23",
        is_synthetic=True,
        is_enriched=False,
    )
    assert _check_synsets(tmp_path, _synsets_doc(grp=[entry])) == []


def test_lemmas_as_a_string_an_empty_list_or_a_blank_lemma_fail(tmp_path):
    doc = _synsets_doc(
        grp=[
            _synset("a.n.01", lemmas="a"),
            _synset("b.n.01", lemmas=[]),
            _synset("c.n.01", lemmas=["c", ""]),
            _synset("d.n.01", lemmas=["d", 7]),
            _synset("e.n.01", lemmas=["e", None]),
        ]
    )
    assert _rules(_check_synsets(tmp_path, doc)) == {
        ("a.n.01@grp#0", "lemmas non-empty list"),
        ("b.n.01@grp#1", "lemmas non-empty list"),
        ("c.n.01@grp#2", "lemma non-empty string"),
        ("d.n.01@grp#3", "lemma non-empty string"),
        ("e.n.01@grp#4", "lemma non-empty string"),
    }


def test_missing_id_empty_definition_and_numeric_pos_fail(tmp_path):
    doc = _synsets_doc(
        grp=[
            _synset("a.n.01") | {"synset_id": None},
            _synset("b.n.01", definition=""),
            _synset("c.n.01", pos=3),
        ]
    )
    assert _rules(_check_synsets(tmp_path, doc)) == {
        ("?@grp#0", "synset_id non-empty string"),
        ("b.n.01@grp#1", "definition non-empty string"),
        ("c.n.01@grp#2", "pos string"),
    }


def test_an_overlap_entry_with_a_bad_field_is_reported_once(tmp_path):
    doc = _synsets_doc(grp=[_synset("a.n.01", "neutral", "positive", definition="")])
    failures = _check_synsets(tmp_path, doc)
    assert [(f.row, f.rule) for f in failures] == [("a.n.01@grp#0", "definition non-empty string")]


def test_exact_duplicate_within_a_pole_fails_naming_both_entries(tmp_path):
    doc = _synsets_doc(g1=[_synset("x.n.01", "positive")], g2=[_synset("x.n.01", "positive")])
    assert _rules(_check_synsets(tmp_path, doc)) == {
        ("x.n.01@g1#0", "no duplicate synset in a pole"),
        ("x.n.01@g2#0", "no duplicate synset in a pole"),
    }


def test_reused_id_with_another_definition_or_in_another_pole_is_not_a_failure(tmp_path):
    doc = _synsets_doc(
        g1=[_synset("x.n.01", "positive")],
        g2=[_synset("x.n.01", "positive", definition="another sense")],
        g3=[_synset("y.n.01", "negative")],
        g4=[_synset("y.n.01", "neutral")],
    )
    path = _write(tmp_path, "syn.json", doc)
    tables = hatcat.read_synsets(path)
    assert validation.check_synsets(tables, file="syn.json", limits=LIMITS) == []
    assert validation.n_reused_ids(tables.usable_poles()) == 1


@pytest.mark.parametrize("value", [["a", "b"], {"k": 1}])
def test_unhashable_definition_is_a_type_failure_not_a_crash(tmp_path, value):
    doc = _synsets_doc(grp=[_synset("a.n.01", definition=value)])
    assert _rules(_check_synsets(tmp_path, doc)) == {
        ("a.n.01@grp#0", "definition non-empty string")
    }


def test_a_misspelled_key_of_a_synset_record_is_unknown_and_its_field_missing(tmp_path):
    entry = _synset("a.n.01")
    entry["definiton"] = entry.pop("definition")
    failures = _check_synsets(tmp_path, _synsets_doc(grp=[entry]))
    assert _rules(failures) == {
        ("a.n.01@grp#0", "known keys"),
        ("a.n.01@grp#0", "definition non-empty string"),
    }
    unknown = next(f for f in failures if f.rule == "known keys")
    assert unknown.message.endswith("got 'definiton'")


def test_optional_keys_of_the_wrong_type_fail(tmp_path):
    doc = _synsets_doc(grp=[_synset("a.n.01", is_synthetic="yes", label=5, cultural_note=[])])
    assert _rules(_check_synsets(tmp_path, doc)) == {
        ("a.n.01@grp#0", "is_synthetic type"),
        ("a.n.01@grp#0", "label type"),
        ("a.n.01@grp#0", "cultural_note type"),
    }


def test_synset_texts_are_bounded_by_their_params(tmp_path):
    doc = _synsets_doc(
        grp=[
            _synset("a.n.01", definition="x" * 2_000_000),
            _synset("b.n.01", lemmas=["b", "l" * 21]),
            _synset("c" * 21 + ".n.01"),
            _synset("d.n.01", cultural_note="n" * 101),
        ]
    )
    long_id = "c" * 21 + ".n.01"
    assert _rules(_check_synsets(tmp_path, doc)) == {
        ("a.n.01@grp#0", "definition length"),
        ("b.n.01@grp#1", "lemma length"),
        (f"{long_id}@grp#2", "synset_id length"),
        (f"{long_id}@grp#2", "lemma length"),  # its lemma is the id's head word
        ("d.n.01@grp#3", "cultural_note length"),
    }


def test_three_different_bad_records_are_all_reported_each_naming_its_row(tmp_path):
    """Each of these used to stop the loader at the first one; now every record is checked."""
    groups = _clean_groups()
    groups["taste_neutral"] += [
        "not an object",
        _synset("b.n.01", applies_to_poles=None),
        _synset("c.n.01", applies_to_poles=["taste_nuetral"]),
        _synset("d.n.01", pos=None, colour="red"),
    ]
    groups["taste_broken"] = {"synset_id": "e.n.01"}
    failures = _check_synsets(tmp_path, _synsets_doc(**groups))
    assert _rules(failures) == {
        ("?@taste_neutral#2", "synset object"),
        ("b.n.01@taste_neutral#3", "applies_to_poles non-empty list"),
        ("c.n.01@taste_neutral#4", "pole name"),
        ("d.n.01@taste_neutral#5", "known keys"),
        ("d.n.01@taste_neutral#5", "pos string"),
        ("taste_broken", "group list"),
    }
    pole_name = next(f for f in failures if f.rule == "pole name")
    assert pole_name.message.endswith("got 'taste_nuetral'")


def test_the_strict_loader_of_later_stages_still_stops_at_a_broken_record(tmp_path):
    doc = _synsets_doc(grp=[_synset("a.n.01"), _synset("b.n.01", applies_to_poles=["x"])])
    with pytest.raises(DataError, match="pole name 'x'") as info:
        hatcat.load_synsets(_write(tmp_path, "syn.json", doc))
    assert info.value.row == "grp[1] 'b.n.01'"


# experiential -----------------------------------------------------------------------------


def _experiential_doc(**prompts) -> dict:
    return {"metadata": {"version": "1.0"}, "prompts": prompts}


def _check_experiential(tmp_path: Path, doc: dict) -> list:
    tables = hatcat.read_experiential(_write(tmp_path, "exp.json", doc))
    return validation.check_experiential(tables, file="exp.json", limits=LIMITS)


def test_blank_missing_or_too_long_experiential_text_fails(tmp_path):
    doc = _experiential_doc(taste_negative=["fine", " ", None, "y" * 41])
    failures = _check_experiential(tmp_path, doc)
    assert _rules(failures) == {
        ("taste/negative#1", "text non-empty string"),
        ("taste/negative#2", "text non-empty string"),
        ("taste/negative#3", "text length"),
    }


def test_every_broken_pole_key_is_reported_and_comments_are_skipped(tmp_path):
    doc = _experiential_doc(
        _comment_axes="annotation, not a pole",
        taste_negative=["fine"],
        taste_nuetral=["a"],
        taste_positive="one prompt, not a list",
    )
    assert _rules(_check_experiential(tmp_path, doc)) == {
        ("taste_nuetral", "pole name"),
        ("taste_positive", "pole list"),
    }


# loading ----------------------------------------------------------------------------------


def test_load_inputs_turns_unreadable_files_into_failures(tmp_path):
    files = RawFiles(
        _write(tmp_path, "defs.json", '{"simplexes": {}}'),
        _write(tmp_path, "syn.json", '{"overlaps": {'),
        experiential=_write(tmp_path, "exp.json", '{"prompts": []}'),
    )
    inputs = validation.load_inputs(files)
    assert inputs.definitions is not None and inputs.synsets is None and inputs.experiential is None
    assert [(Path(f.file).name, f.rule) for f in inputs.load_failures] == [
        ("syn.json", "valid JSON"),
        ("exp.json", "schema"),
    ]


def test_a_key_repeated_in_one_object_is_a_load_failure_naming_it(tmp_path):
    text = '{"simplexes": {"taste": {}, "taste": {}}}'
    files = RawFiles(
        _write(tmp_path, "defs.json", text),
        _write(tmp_path, "syn.json", _synsets_doc(**_clean_groups())),
        _write(tmp_path, "exp.json", _experiential_doc()),
    )
    (failure,) = validation.load_inputs(files).load_failures
    assert (Path(failure.file).name, failure.row, failure.rule) == (
        "defs.json",
        "taste",
        "unique keys",
    )


# cross-file rules and counts --------------------------------------------------------------


def _inputs(tmp_path: Path, *, definitions=None, synsets=None, experiential=None) -> RawInputs:
    experiential = experiential or {f"taste_{pole}": ["I feel it."] for pole in POLE_NAMES}
    files = RawFiles(
        _write(tmp_path, "defs.json", definitions or _definitions_doc()),
        _write(tmp_path, "syn.json", synsets or _synsets_doc(**_clean_groups())),
        _write(tmp_path, "exp.json", _experiential_doc(**experiential)),
    )
    return validation.load_inputs(files)


def test_simplex_unknown_to_definitions_and_synsets_fails_both(tmp_path):
    failures = validation.check_selection(
        _inputs(tmp_path),
        FILES,
        simplexes=("taste", "nope"),
        min_synsets_per_pole=1,
        min_experiential_per_pole=1,
    )
    found = {(f.file, f.row, f.rule) for f in failures}
    assert ("defs.json", "nope", "simplex known") in found
    assert ("syn.json", "nope", "simplex has synsets") in found
    assert ("exp.json", "nope/neutral", "min experiential per pole") in found


def test_synset_of_an_undefined_simplex_fails_to_resolve(tmp_path):
    groups = _clean_groups() | {"ghost": [_synset("z.n.01", applies_to_poles=["ghost_neutral"])]}
    failures = validation.check_selection(
        _inputs(tmp_path, synsets=_synsets_doc(**groups)),
        FILES,
        simplexes=("taste",),
        min_synsets_per_pole=1,
        min_experiential_per_pole=1,
    )
    assert {(f.file, f.row, f.rule) for f in failures} == {("syn.json", "ghost", "simplex defined")}


def test_pole_below_the_minimum_counts_fails_with_its_count(tmp_path):
    experiential = {
        "taste_negative": ["a", "b"],
        "taste_neutral": ["a", ""],
        "taste_positive": ["a"],
    }
    failures = validation.check_selection(
        _inputs(tmp_path, experiential=experiential),
        FILES,
        simplexes=("taste",),
        min_synsets_per_pole=3,
        min_experiential_per_pole=2,
    )
    assert _rules(failures) == {
        ("taste/negative", "min synsets per pole"),
        ("taste/neutral", "min synsets per pole"),
        ("taste/positive", "min synsets per pole"),
        ("taste/neutral", "min experiential per pole"),
        ("taste/positive", "min experiential per pole"),
    }
    neutral = next(f for f in failures if f.rule == "min experiential per pole")
    assert neutral.message.startswith("1 experiential, fewer than")


def test_overlap_entry_counts_for_both_poles_and_once_as_overlap(tmp_path):
    doc = _synsets_doc(
        pos_neu=[_synset("a.n.01", "positive", "neutral")],
        pos_other=[_synset("b.n.01", applies_to_poles=["taste_positive", "other_positive"])],
    )
    synsets = hatcat.read_synsets(_write(tmp_path, "syn.json", doc)).usable_poles()
    assert validation.synset_counts(synsets, "taste") == {
        "negative": 0,
        "neutral": 1,
        "positive": 2,
    }
    assert validation.n_overlap_entries(synsets, "taste") == 1


def test_clean_inputs_give_a_successful_report_with_flat_counts(tmp_path):
    report = validation.validate_inputs(
        _inputs(tmp_path), FILES, simplexes=("taste",), limits=LIMITS
    )
    assert report.success
    out = report.to_dict()
    assert out["success"] is True and out["failures"] == [] and out["n_failures"] == 0
    assert out["taste/neutral/n_synsets"] == 2
    assert out["taste/positive/n_experiential"] == 1
    assert out["taste/n_overlap_entries"] == 0
    assert out["n_reused_ids"] == 0


def test_load_failures_come_first_and_skip_rules_of_the_unread_file(tmp_path):
    inputs = _inputs(tmp_path)
    load_failure = Failure("syn.json", "", "valid JSON", "malformed JSON: x at line 1 column 2")
    inputs = RawInputs(inputs.definitions, None, inputs.experiential, load_failures=(load_failure,))
    report = validation.validate_inputs(inputs, FILES, simplexes=("taste",), limits=LIMITS)
    assert report.failures == (load_failure,)
    assert "taste/neutral/n_synsets" not in report.counts
    assert report.counts["taste/neutral/n_experiential"] == 1


def test_failures_of_all_three_files_come_in_one_report(tmp_path):
    body = _simplex() | {"fourth_pole": {}}
    groups = _clean_groups()
    groups["taste_neutral"].append(_synset("z.n.01", definition="x" * 101))
    inputs = _inputs(
        tmp_path,
        definitions=_definitions_doc(taste=body),
        synsets=_synsets_doc(**groups),
        experiential={f"taste_{pole}": ["I feel it."] for pole in POLE_NAMES} | {"taste_x": []},
    )
    report = validation.validate_inputs(inputs, FILES, simplexes=("taste",), limits=LIMITS)
    assert {(f.file, f.row, f.rule) for f in report.failures} == {
        ("defs.json", "taste", "known keys"),
        ("syn.json", "z.n.01@taste_neutral#2", "definition length"),
        ("exp.json", "taste_x", "pole name"),
    }


def test_summary_shows_the_first_failures_and_how_many_more():
    failures = tuple(Failure("f.json", f"r{i}", "rule", "broken") for i in range(7))
    report = Report(failures=failures, counts={})
    text = report.summary(n_shown=2)
    assert "7 failure(s)" in text
    assert "file f.json, row r1, rule rule: broken" in text
    assert "r2" not in text
    assert "and 5 more" in text


def test_counts_of_a_selected_simplex_without_rows_are_zero(tmp_path):
    counts = validation.selection_counts(_inputs(tmp_path), simplexes=("absent",))
    assert counts["absent/neutral/n_synsets"] == 0
    assert counts["absent/neutral/n_experiential"] == 0
    assert counts["absent/n_overlap_entries"] == 0
    assert counts["absent/n_reused_ids"] == 0
