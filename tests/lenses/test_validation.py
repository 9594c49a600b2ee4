"""Rules of ``lensforge.validation`` on tiny hand-built tables with known answers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lensforge.core.checks import Failure, Report
from lensforge.lenses import hatcat, validation
from lensforge.lenses.validation import RawFiles, RawInputs

FILES = RawFiles(
    definitions=Path("defs.json"), synsets=Path("syn.json"), experiential=Path("exp.json")
)


def _definitions(simplex: str = "taste", **changes) -> pd.DataFrame:
    """One complete simplex; ``changes`` maps a pole to the fields it should have instead."""
    rows = []
    for pole in ("negative", "neutral", "positive"):
        row = {"simplex": simplex, "pole": pole, "present": True, "label": pole[:3]}
        row["definition"] = f"the {pole} pole"
        row.update(changes.get(pole, {}))
        rows.append(row)
    return pd.DataFrame(rows, columns=["simplex", "pole", "present", "label", "definition"])


def _synset(pole, synset_id, *, key="grp", position=0, simplex="taste", **fields) -> dict:
    row = {
        "simplex": simplex,
        "pole": pole,
        "synset_id": synset_id,
        "lemmas": [synset_id.split(".")[0]],
        "definition": f"meaning of {synset_id}",
        "pos": "n",
        "source_key": key,
        "position": position,
    }
    row.update(fields)
    return row


def _synsets(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=hatcat.SYNSET_COLUMNS)


def _clean_synsets(n_per_pole: int = 2) -> pd.DataFrame:
    rows = [
        _synset(pole, f"{pole}.n.0{i}", key=f"g_{pole}", position=i)
        for pole in ("negative", "neutral", "positive")
        for i in range(n_per_pole)
    ]
    return _synsets(*rows)


def _experiential(texts: dict[str, list], simplex: str = "taste") -> pd.DataFrame:
    rows = [
        {"simplex": simplex, "pole": pole, "position": i, "text": text}
        for pole, pole_texts in texts.items()
        for i, text in enumerate(pole_texts)
    ]
    return pd.DataFrame(rows, columns=["simplex", "pole", "position", "text"])


def _clean_experiential() -> pd.DataFrame:
    return _experiential({p: ["I feel it."] for p in ("negative", "neutral", "positive")})


def _rules(failures: list[Failure]) -> set[tuple[str, str]]:
    return {(f.row, f.rule) for f in failures}


# definitions ------------------------------------------------------------------------------


def test_complete_definitions_pass():
    assert validation.check_definitions(_definitions(), file="defs.json") == []


def test_missing_pole_is_named_by_simplex_and_pole():
    frame = _definitions(neutral={"present": False, "label": None, "definition": None})
    failures = validation.check_definitions(frame, file="defs.json")
    assert _rules(failures) == {("taste/neutral", "pole present")}
    assert failures[0].file == "defs.json"
    assert "neutral_homeostasis" in failures[0].message


def test_blank_label_and_numeric_definition_fail_their_rules():
    frame = _definitions(negative={"label": "  "}, positive={"definition": 5})
    failures = validation.check_definitions(frame, file="defs.json")
    assert _rules(failures) == {
        ("taste/negative", "label non-empty string"),
        ("taste/positive", "definition non-empty string"),
    }
    numeric = next(f for f in failures if f.row == "taste/positive")
    assert numeric.message == "pole definition must be a string, got 5"


# synsets ----------------------------------------------------------------------------------


def test_clean_synsets_pass():
    assert validation.check_synsets(_clean_synsets(), file="syn.json") == []


def test_lemmas_as_a_string_an_empty_list_or_a_blank_lemma_fail():
    frame = _synsets(
        _synset("negative", "a.n.01", position=0, lemmas="a"),
        _synset("negative", "b.n.01", position=1, lemmas=[]),
        _synset("negative", "c.n.01", position=2, lemmas=["c", ""]),
        _synset("negative", "d.n.01", position=3, lemmas=["d", 7]),
        _synset("negative", "e.n.01", position=4, lemmas=["e", None]),
    )
    failures = validation.check_synsets(frame, file="syn.json")
    assert _rules(failures) == {
        ("a.n.01@grp#0", "lemmas non-empty list"),
        ("b.n.01@grp#1", "lemmas non-empty list"),
        ("c.n.01@grp#2", "lemma non-empty string"),
        ("d.n.01@grp#3", "lemma non-empty string"),
        ("e.n.01@grp#4", "lemma non-empty string"),
    }


def test_missing_id_empty_definition_and_numeric_pos_fail():
    frame = _synsets(
        _synset("neutral", "a.n.01", position=0) | {"synset_id": None},
        _synset("neutral", "b.n.01", position=1, definition=""),
        _synset("neutral", "c.n.01", position=2, pos=3),
    )
    failures = validation.check_synsets(frame, file="syn.json")
    assert _rules(failures) == {
        ("?@grp#0", "synset_id non-empty string"),
        ("b.n.01@grp#1", "definition non-empty string"),
        ("c.n.01@grp#2", "pos string"),
    }


def test_an_overlap_entry_with_a_bad_field_is_reported_once():
    entry = {"position": 0, "definition": ""}
    frame = _synsets(_synset("neutral", "a.n.01", **entry), _synset("positive", "a.n.01", **entry))
    failures = validation.check_synsets(frame, file="syn.json")
    assert [(f.row, f.rule) for f in failures] == [("a.n.01@grp#0", "definition non-empty string")]


def test_exact_duplicate_within_a_pole_fails_naming_both_entries():
    frame = _synsets(
        _synset("positive", "x.n.01", key="g1", position=0),
        _synset("positive", "x.n.01", key="g2", position=3),
    )
    failures = validation.check_synsets(frame, file="syn.json")
    assert _rules(failures) == {
        ("x.n.01@g1#0", "no duplicate synset in a pole"),
        ("x.n.01@g2#3", "no duplicate synset in a pole"),
    }


def test_reused_id_with_another_definition_or_in_another_pole_is_not_a_failure():
    frame = _synsets(
        _synset("positive", "x.n.01", key="g1", position=0),
        _synset("positive", "x.n.01", key="g2", position=0, definition="another sense"),
        _synset("negative", "y.n.01", key="g3", position=0),
        _synset("neutral", "y.n.01", key="g4", position=0),
    )
    assert validation.check_synsets(frame, file="syn.json") == []
    assert validation.n_reused_ids(frame) == 1


# experiential -----------------------------------------------------------------------------


def test_blank_or_missing_experiential_text_fails():
    frame = _experiential({"negative": ["fine", " ", None]})
    failures = validation.check_experiential(frame, file="exp.json")
    assert _rules(failures) == {
        ("taste/negative#1", "text non-empty string"),
        ("taste/negative#2", "text non-empty string"),
    }


# cross-file rules and counts --------------------------------------------------------------


def _inputs(definitions=None, synsets=None, experiential=None) -> RawInputs:
    return RawInputs(
        definitions=_definitions() if definitions is None else definitions,
        synsets=_clean_synsets() if synsets is None else synsets,
        experiential=_clean_experiential() if experiential is None else experiential,
        load_failures=(),
    )


def test_simplex_unknown_to_definitions_and_synsets_fails_both():
    failures = validation.check_selection(
        _inputs(),
        FILES,
        simplexes=("taste", "nope"),
        min_synsets_per_pole=1,
        min_experiential_per_pole=1,
    )
    found = {(f.file, f.row, f.rule) for f in failures}
    assert ("defs.json", "nope", "simplex known") in found
    assert ("syn.json", "nope", "simplex has synsets") in found
    assert ("exp.json", "nope/neutral", "min experiential per pole") in found


def test_synset_of_an_undefined_simplex_fails_to_resolve():
    synsets = pd.concat([_clean_synsets(), _synsets(_synset("neutral", "z.n.01", simplex="ghost"))])
    failures = validation.check_selection(
        _inputs(synsets=synsets),
        FILES,
        simplexes=("taste",),
        min_synsets_per_pole=1,
        min_experiential_per_pole=1,
    )
    assert {(f.file, f.row, f.rule) for f in failures} == {("syn.json", "ghost", "simplex defined")}


def test_pole_below_the_minimum_counts_fails_with_its_count():
    experiential = _experiential({"negative": ["a", "b"], "neutral": ["a", ""], "positive": ["a"]})
    failures = validation.check_selection(
        _inputs(experiential=experiential),
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


def test_overlap_entry_counts_for_both_poles_and_once_as_overlap():
    synsets = _synsets(
        _synset("positive", "a.n.01", key="pos+neu", position=0),
        _synset("neutral", "a.n.01", key="pos+neu", position=0),
        _synset("positive", "b.n.01", key="pos+other", position=0),
        _synset("positive", "b.n.01", key="pos+other", position=0, simplex="other"),
    )
    assert validation.synset_counts(synsets, "taste") == {
        "negative": 0,
        "neutral": 1,
        "positive": 2,
    }
    assert validation.n_overlap_entries(synsets, "taste") == 1


def test_clean_inputs_give_a_successful_report_with_flat_counts():
    report = validation.validate_inputs(
        _inputs(), FILES, simplexes=("taste",), min_synsets_per_pole=2, min_experiential_per_pole=1
    )
    assert report.success
    out = report.to_dict()
    assert out["success"] is True and out["failures"] == [] and out["n_failures"] == 0
    assert out["taste/neutral/n_synsets"] == 2
    assert out["taste/positive/n_experiential"] == 1
    assert out["taste/n_overlap_entries"] == 0
    assert out["n_reused_ids"] == 0


def test_load_failures_come_first_and_skip_rules_of_the_unread_file():
    load_failure = Failure("syn.json", "", "valid JSON", "malformed JSON: x at line 1 column 2")
    inputs = RawInputs(_definitions(), None, _clean_experiential(), load_failures=(load_failure,))
    report = validation.validate_inputs(
        inputs, FILES, simplexes=("taste",), min_synsets_per_pole=2, min_experiential_per_pole=1
    )
    assert report.failures == (load_failure,)
    assert "taste/neutral/n_synsets" not in report.counts
    assert report.counts["taste/neutral/n_experiential"] == 1


def test_summary_shows_the_first_failures_and_how_many_more():
    failures = tuple(Failure("f.json", f"r{i}", "rule", "broken") for i in range(7))
    report = Report(failures=failures, counts={})
    text = report.summary(n_shown=2)
    assert "7 failure(s)" in text
    assert "file f.json, row r1, rule rule: broken" in text
    assert "r2" not in text
    assert "and 5 more" in text


def test_load_inputs_turns_malformed_json_into_a_failure(tmp_path):
    (tmp_path / "defs.json").write_text('{"simplexes": {}}')
    (tmp_path / "syn.json").write_text('{"overlaps": {')
    (tmp_path / "exp.json").write_text('{"prompts": []}')
    files = RawFiles(
        tmp_path / "defs.json", tmp_path / "syn.json", experiential=tmp_path / "exp.json"
    )
    inputs = validation.load_inputs(files)
    assert inputs.definitions is not None and inputs.synsets is None and inputs.experiential is None
    assert [(Path(f.file).name, f.rule) for f in inputs.load_failures] == [
        ("syn.json", "valid JSON"),
        ("exp.json", "schema"),
    ]


@pytest.mark.parametrize("value", [["a", "b"], {"k": 1}])
def test_unhashable_definition_is_a_type_failure_not_a_crash(value):
    frame = _synsets(_synset("neutral", "a.n.01", definition=value))
    failures = validation.check_synsets(frame, file="syn.json")
    assert _rules(failures) == {("a.n.01@grp#0", "definition non-empty string")}


def test_counts_of_a_selected_simplex_without_rows_are_zero():
    counts = validation.selection_counts(_inputs(), simplexes=("absent",))
    assert counts["absent/neutral/n_synsets"] == 0
    assert counts["absent/neutral/n_experiential"] == 0
    assert counts["absent/n_overlap_entries"] == 0
    assert counts["absent/n_reused_ids"] == 0
