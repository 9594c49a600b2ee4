"""`lensforge validate` on copies of HatCat's real files, whole and with one thing broken.

Every broken copy must exit 2 through the real CLI with a message naming file, row id and rule,
no traceback, and a report in metrics/validate.json with success false.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lensforge.cli import main
from lensforge.core import paths

DEFINITIONS = paths.SIMPLEX_DEFINITIONS.name
SYNSETS = paths.SYNSETS["imbalanced"].name
EXPERIENTIAL = paths.EXPERIENTIAL_PROMPTS.name
TASTE_PAIR = "taste_development_positive+taste_development_neutral"


@pytest.fixture(scope="module")
def raw_docs(project_root) -> dict[str, object]:
    """The real raw files, parsed once per module; tests deep-copy before breaking one."""
    raw_dir = project_root / paths.RAW_DIR
    names = [DEFINITIONS, EXPERIENTIAL, *(p.name for p in paths.SYNSETS.values())]
    return {name: json.loads((raw_dir / name).read_text(encoding="utf-8")) for name in names}


@pytest.fixture
def docs(raw_docs) -> dict[str, object]:
    return copy.deepcopy(raw_docs)


def _project(root: Path, project_root: Path, docs: dict, **data_params) -> Path:
    """A project folder with params.yaml (``data`` and ``validate`` keys overridden) and the raw
    files. The synset file is the imbalanced one unless ``synsets`` says otherwise (the broken
    records below are written into that file)."""
    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((project_root / paths.PARAMS).read_text(encoding="utf-8"))
    params["validate"].update(data_params.pop("validate", {}))
    params["data"]["synsets"] = "imbalanced"
    params["data"].update(data_params)
    (root / paths.PARAMS).write_text(yaml.safe_dump(params), encoding="utf-8")
    raw_dir = root / paths.RAW_DIR
    raw_dir.mkdir(parents=True)
    for name, doc in docs.items():
        text = doc if isinstance(doc, str) else json.dumps(doc)
        (raw_dir / name).write_text(text, encoding="utf-8")
    return root


def _validate(root: Path):
    return CliRunner().invoke(main, ["--root", str(root), "validate"])


def _report(root: Path) -> dict:
    return json.loads((root / paths.VALIDATE_METRICS).read_text(encoding="utf-8"))


def _assert_clean_failure(result, root: Path, *, file: str, row: str, rule: str) -> dict:
    """Exit 2, no traceback, the message and the report both name file, row and rule."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"file {root / paths.RAW_DIR / file}" in result.output
    if row:
        assert f"row {row}," in result.output
    assert f"rule {rule}:" in result.output
    report = _report(root)
    assert report["success"] is False
    assert report["n_failures"] == len(report["failures"]) >= 1
    assert any(
        Path(f["file"]).name == file and f["row"] == row and f["rule"] == rule
        for f in report["failures"]
    )
    return report


@pytest.mark.parametrize(
    ("synsets", "expected"), [("imbalanced", (87, 13, 88)), ("enriched", (113, 113, 113))]
)
def test_real_hatcat_data_passes_and_reports_counts_per_pole(
    tmp_path, project_root, docs, synsets, expected
):
    root = _project(tmp_path, project_root, docs, synsets=synsets)
    result = _validate(root)
    assert result.exit_code == 0, result.output
    report = _report(root)
    assert report["success"] is True and report["failures"] == []
    counts = tuple(
        report[f"taste_development/{p}/n_synsets"] for p in ("negative", "neutral", "positive")
    )
    assert counts == expected
    assert report["taste_development/neutral/n_experiential"] == 8
    assert report["taste_development/n_overlap_entries"] == 13
    assert report["n_reused_ids"] == (188 if synsets == "imbalanced" else 332)


def test_missing_pole_names_the_simplex_and_pole(tmp_path, project_root, docs):
    del docs[DEFINITIONS]["simplexes"]["taste_development"]["neutral_homeostasis"]
    root = _project(tmp_path, project_root, docs)
    _assert_clean_failure(
        _validate(root),
        root,
        file=DEFINITIONS,
        row="taste_development/neutral",
        rule="pole present",
    )


def test_duplicate_synset_within_a_pole_names_both_entries(tmp_path, project_root, docs):
    group = docs[SYNSETS]["overlaps"][TASTE_PAIR]
    group.append(copy.deepcopy(group[0]))
    root = _project(tmp_path, project_root, docs)
    result = _validate(root)
    rule = "no duplicate synset in a pole"
    copy_id = f"{group[0]['synset_id']}@{TASTE_PAIR}#{len(group) - 1}"
    report = _assert_clean_failure(result, root, file=SYNSETS, row=copy_id, rule=rule)
    assert f"{group[0]['synset_id']}@{TASTE_PAIR}#0" in {f["row"] for f in report["failures"]}


def test_empty_definition_names_the_synset(tmp_path, project_root, docs):
    entry = docs[SYNSETS]["overlaps"][TASTE_PAIR][2]
    entry["definition"] = ""
    root = _project(tmp_path, project_root, docs)
    row = f"{entry['synset_id']}@{TASTE_PAIR}#2"
    _assert_clean_failure(
        _validate(root), root, file=SYNSETS, row=row, rule="definition non-empty string"
    )


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("lemmas", "inclination", "lemmas non-empty list"),
        ("definition", 42, "definition non-empty string"),
    ],
)
def test_value_of_the_wrong_type_names_the_synset(tmp_path, project_root, docs, field, value, rule):
    entry = docs[SYNSETS]["overlaps"][TASTE_PAIR][1]
    entry[field] = value
    root = _project(tmp_path, project_root, docs)
    row = f"{entry['synset_id']}@{TASTE_PAIR}#1"
    report = _assert_clean_failure(_validate(root), root, file=SYNSETS, row=row, rule=rule)
    assert any(repr(value) in f["message"] for f in report["failures"])


def test_malformed_json_is_reported_with_its_line(tmp_path, project_root, docs):
    docs[EXPERIENTIAL] = json.dumps(docs[EXPERIENTIAL], indent=1)[:-40]
    root = _project(tmp_path, project_root, docs)
    result = _validate(root)
    report = _assert_clean_failure(result, root, file=EXPERIENTIAL, row="", rule="valid JSON")
    assert "line" in report["failures"][0]["message"]


def test_wrong_top_level_structure_is_a_schema_failure(tmp_path, project_root, docs):
    docs[SYNSETS] = [docs[SYNSETS]["overlaps"]]
    root = _project(tmp_path, project_root, docs)
    _assert_clean_failure(_validate(root), root, file=SYNSETS, row="", rule="schema")


@pytest.mark.parametrize(
    ("simplex", "file", "rule"),
    [
        ("no_such_simplex", DEFINITIONS, "simplex known"),
        ("epistemic_posture", SYNSETS, "simplex has synsets"),  # defined, but HatCat has no synsets
    ],
)
def test_unknown_simplex_in_params_is_an_error(tmp_path, project_root, docs, simplex, file, rule):
    selected = ["taste_development", simplex]
    root = _project(tmp_path, project_root, docs, simplexes=selected)
    _assert_clean_failure(_validate(root), root, file=file, row=simplex, rule=rule)


def test_pole_below_the_params_minimum_fails_with_its_count(tmp_path, project_root, docs):
    root = _project(tmp_path, project_root, docs, validate={"min_synsets_per_pole": 20})
    result = _validate(root)
    report = _assert_clean_failure(
        result, root, file=SYNSETS, row="taste_development/neutral", rule="min synsets per pole"
    )
    assert "13 synsets, fewer than params.validate.min_synsets_per_pole = 20" in result.output
    assert report["taste_development/neutral/n_synsets"] == 13


# Unknown keys, text bounds, every failing row ------------------------------------------------

# The longest text of each kind in HatCat's files (characters): a synset definition and a synset
# id of the enriched file, an experiential prompt. params.yaml's bounds are generous above these.
REAL_MAX_CHARS = {"max_definition_chars": 392, "max_name_chars": 47, "max_prompt_chars": 66}


def test_real_files_fit_bounds_at_their_maxima_and_fail_one_below(tmp_path, project_root, docs):
    at_max = _project(
        tmp_path / "at", project_root, docs, synsets="enriched", validate=REAL_MAX_CHARS
    )
    assert _validate(at_max).exit_code == 0
    below = {key: value - 1 for key, value in REAL_MAX_CHARS.items()}
    root = _project(tmp_path / "below", project_root, docs, synsets="enriched", validate=below)
    result = _validate(root)
    assert result.exit_code == 2
    failed = {(Path(f["file"]).name, f["row"], f["rule"]) for f in _report(root)["failures"]}
    enriched = paths.SYNSETS["enriched"].name
    assert failed == {
        (
            enriched,
            "devotion.positive.001@relational_love_positive__enriched#0",
            "definition length",
        ),
        (
            enriched,
            "brazilian_independência_com_saudade.neutral.015@social_connection_neutral__enriched#95",
            "synset_id length",
        ),
        (EXPERIENTIAL, "motivational_regulation/negative#0", "text length"),
    }


def test_project_bounds_leave_a_generous_margin_over_the_real_maxima(project_root):
    bounds = yaml.safe_load((project_root / paths.PARAMS).read_text(encoding="utf-8"))["validate"]
    for key, real_max in REAL_MAX_CHARS.items():
        assert bounds[key] >= 3 * real_max, key


def test_a_fourth_pole_is_rejected_naming_file_simplex_and_rule(tmp_path, project_root, docs):
    body = docs[DEFINITIONS]["simplexes"]["taste_development"]
    body["mixed_pole"] = {"label": "Mixed", "definition": "both at once"}
    root = _project(tmp_path, project_root, docs)
    result = _validate(root)
    _assert_clean_failure(
        result, root, file=DEFINITIONS, row="taste_development", rule="known keys"
    )
    assert "'mixed_pole'" in result.output


def test_a_misspelled_pole_key_is_rejected(tmp_path, project_root, docs):
    body = docs[DEFINITIONS]["simplexes"]["social_evaluation"]
    body["neutral_homeostatis"] = body.pop("neutral_homeostasis")
    root = _project(tmp_path, project_root, docs)
    result = _validate(root)
    _assert_clean_failure(
        result, root, file=DEFINITIONS, row="social_evaluation", rule="known keys"
    )
    assert "'neutral_homeostatis'" in result.output
    _assert_clean_failure(
        result, root, file=DEFINITIONS, row="social_evaluation/neutral", rule="pole present"
    )


@pytest.mark.parametrize(
    ("file", "break_it", "row", "key"),
    [
        (
            SYNSETS,
            lambda doc: doc["overlaps"][TASTE_PAIR][3].update(is_synthetc=True),
            "@" + TASTE_PAIR + "#3",
            "is_synthetc",
        ),
        (EXPERIENTIAL, lambda doc: doc.update(promts={}), "(top level)", "promts"),
    ],
)
def test_an_unknown_key_in_a_record_is_rejected(
    tmp_path, project_root, docs, file, break_it, row, key
):
    break_it(docs[file])
    root = _project(tmp_path, project_root, docs)
    result = _validate(root)
    report = _report(root)
    (failure,) = report["failures"]
    assert (Path(failure["file"]).name, failure["rule"]) == (file, "known keys")
    assert failure["row"].endswith(row) and f"'{key}'" in failure["message"]
    _assert_clean_failure(result, root, file=file, row=failure["row"], rule="known keys")


def test_a_definition_of_two_million_characters_fails_naming_the_synset(
    tmp_path, project_root, docs
):
    entry = docs[SYNSETS]["overlaps"][TASTE_PAIR][4]
    entry["definition"] = "x" * 2_000_000
    root = _project(tmp_path, project_root, docs)
    result = _validate(root)
    row = f"{entry['synset_id']}@{TASTE_PAIR}#4"
    _assert_clean_failure(result, root, file=SYNSETS, row=row, rule="definition length")
    assert "(2000000 characters)" in result.output
    assert len(result.output) < 5_000  # the value is cut in the message, not copied


def test_three_bad_synset_records_are_all_reported_each_naming_its_row(
    tmp_path, project_root, docs
):
    """A bad record used to make the loader raise and hide the rest of the file."""
    group = docs[SYNSETS]["overlaps"][TASTE_PAIR]
    group[0]["applies_to_poles"] = ["taste_development_nuetral"]
    del group[5]["lemmas"]
    group[6] = ["not", "an", "object"]
    root = _project(tmp_path, project_root, docs)
    result = _validate(root)
    expected = {
        (f"{group[0]['synset_id']}@{TASTE_PAIR}#0", "pole name"),
        (f"{group[5]['synset_id']}@{TASTE_PAIR}#5", "lemmas non-empty list"),
        (f"?@{TASTE_PAIR}#6", "synset object"),
    }
    for row, rule in expected:
        _assert_clean_failure(result, root, file=SYNSETS, row=row, rule=rule)
    report = _report(root)
    assert {(f["row"], f["rule"]) for f in report["failures"]} == expected
    assert "3 failure(s)" in result.output
