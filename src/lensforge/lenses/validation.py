"""Great Expectations suites over HatCat's raw inputs -> a report naming file, row and rule.

Every record of every file is checked on its own, so one broken record never hides the others:
``hatcat``'s tolerant readers turn each record into a row whatever is wrong with it, and only a
file with no rows to name (missing, malformed JSON, a repeated key, no top-level section) is a
load failure. Per-record rules run as GX 1.x expectations on those tables, in an in-memory
(ephemeral) context:

- structure: each record is an object (a group a list) and holds no key its schema does not list
  (``hatcat.SIMPLEX_KEYS``, ``SYNSET_KEYS``, ...): a fourth pole or a misspelled key fails;
- required fields are non-empty strings or non-empty lists; optional fields have their type;
- every text field is bounded by params: ``validate.max_definition_chars`` (definitions,
  descriptions, notes), ``max_name_chars`` (lemmas, labels, ids and other one-word fields),
  ``max_prompt_chars`` (experiential prompts);
- pole names end in ``_negative``/``_neutral``/``_positive``; a simplex has its three poles; no
  exact duplicate synset (same id and definition) within a pole.

Every failing row is named by a ``row_id`` column: ``synset_id@source_key#position`` for synset
entries (``source_key`` for a group), ``simplex`` or ``simplex/pole`` for definitions, the pole
key or ``simplex/pole#position`` for experiential prompts, ``(top level)`` for a file's top-level
object. Rules that join files (selected simplexes exist, per-pole minimum counts) are plain pandas.

HatCat reuses synset ids for DIFFERENT synsets across pair groups, so a reused id is counted in
the report, never failed. Great Expectations is imported lazily: it costs ~5 s and
``lensforge --help`` must stay fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from lensforge.core.checks import ROW_ID, Failure, Report, max_chars, non_empty_string, run_suite
from lensforge.core.errors import DataError
from lensforge.core.params import ValidateParams
from lensforge.lenses import hatcat
from lensforge.lenses.hatcat import POLES

TOP_LEVEL = "(top level)"  # row id of a failure in a file's top-level object
MAX_LABEL_CHARS = 60  # a longer value is cut in row ids (the row id stays unique by position)


@dataclasses.dataclass(frozen=True)
class RawFiles:
    """The three raw HatCat inputs of a run (the synset file is the one params select)."""

    definitions: Path
    synsets: Path
    experiential: Path


@dataclasses.dataclass(frozen=True)
class RawInputs:
    """Tables of the raw files; a table is None when its file could not be read."""

    definitions: hatcat.DefinitionTables | None
    synsets: hatcat.SynsetTables | None
    experiential: hatcat.ExperientialTables | None
    load_failures: tuple[Failure, ...]


# --------------------------------------------------------------------------------------------
# Loading


def load_inputs(files: RawFiles) -> RawInputs:
    """Read each raw file with ``hatcat``'s tolerant readers; a file that fails is a load failure.

    Each file is read on its own so one unreadable file does not hide the others' failures.
    """
    tables: dict[str, object] = {}
    failures = []
    readers: dict[str, Callable[[Path], object]] = {
        "definitions": hatcat.read_definitions,
        "synsets": hatcat.read_synsets,
        "experiential": hatcat.read_experiential,
    }
    for name, reader in readers.items():
        path = getattr(files, name)
        try:
            tables[name] = reader(path)
        except DataError as exc:
            tables[name] = None
            row = "" if exc.row is None else str(exc.row)
            failures.append(Failure(str(exc.path or path), row, exc.rule, exc.message))
    return RawInputs(**tables, load_failures=tuple(failures))


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _mask(series: pd.Series, test: Callable[[object], bool]) -> pd.Series:
    """``test`` per value as a bool Series (``map`` keeps a str dtype on an empty str Series)."""
    return series.map(test).astype(bool)


def _label(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "?"
    text = str(value)
    return text if len(text) <= MAX_LABEL_CHARS else f"{text[:MAX_LABEL_CHARS]}..."


# --------------------------------------------------------------------------------------------
# Rules shared by the files


def _bounded(column: str, what: str, *, limits: ValidateParams, kind: str) -> list:
    """``max_chars`` with the bound ``params.validate.max_<kind>_chars`` (definition | name |
    prompt)."""
    key = f"max_{kind}_chars"
    return max_chars(column, what, limit=getattr(limits, key), param=f"params.validate.{key}")


def _top_level(unknown: str | None, known: Sequence[str], *, file: str) -> list[Failure]:
    """The top-level object holds only ``known`` keys (plain pandas: one row per file)."""
    if unknown is None:
        return []
    message = f"top level has unknown key(s) (known: {', '.join(known)}), got {unknown!r}"
    return [Failure(file, TOP_LEVEL, "known keys", message)]


def _known_keys(known: Sequence[str], what: str):
    """``unknown_keys`` (from ``hatcat.unknown_keys``) is empty: unknown keys are errors."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeNull(
        column="unknown_keys",
        meta={
            "rule": "known keys",
            "message": f"{what} has unknown key(s) (known: {', '.join(known)})",
        },
    )


def _is_true(column: str, *, rule: str, message: str):
    """A derived bool ``column`` holds True; its value says nothing, so it is not quoted."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(
        column=column,
        value_set=[True],
        meta={"rule": rule, "message": message, "quote_value": False},
    )


def _unparsed_pole(view: pd.DataFrame) -> pd.Series:
    """The pole name as written where it has no pole suffix, else None."""
    return view["pole_name"].where(view["pole"].isna(), None)


def _pole_name_rule():
    """``unparsed_pole`` (see ``_unparsed_pole``) is empty."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeNull(
        column="unparsed_pole",
        meta={
            "rule": "pole name",
            "message": "pole name does not end in _negative/_neutral/_positive",
        },
    )


def _of_type(column: str, type_: str, what: str):
    """Where present (not null), ``column`` holds a ``type_`` (str | bool) value."""
    import great_expectations.expectations as gxe

    kind = {"str": "a string", "bool": "true or false"}[type_]
    return gxe.ExpectColumnValuesToBeOfType(
        column=column,
        type_=type_,
        meta={"rule": f"{column} type", "message": f"{what} must be {kind}"},
    )


def _rows_where(view: pd.DataFrame, column: str) -> pd.DataFrame:
    return view[view[column].astype(bool)].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Column rules, one function per file


def check_definitions(
    tables: hatcat.DefinitionTables, *, file: str, limits: ValidateParams
) -> list[Failure]:
    """Every simplex is an object with known keys, a ``dimension`` equal to its key, a bounded
    description and its three poles, each with a non-empty, bounded label and definition."""
    failures = _top_level(tables.unknown_top_keys, hatcat.DEFINITIONS_TOP_KEYS, file=file)

    simplexes = tables.simplexes.astype(object)
    simplexes[ROW_ID] = simplexes["simplex"].map(_label)
    is_object = _is_true("is_object", rule="simplex object", message="a simplex must be an object")
    failures += run_suite(simplexes, [is_object], name="definitions_simplexes", file=file)
    bodies = _rows_where(simplexes, "is_object")
    bodies["dimension_is_key"] = [
        not isinstance(dimension, str) or dimension == simplex
        for dimension, simplex in zip(bodies["dimension"], bodies["simplex"], strict=True)
    ]
    body_rules = [
        _known_keys(hatcat.SIMPLEX_KEYS, "simplex"),
        *non_empty_string("dimension", "dimension"),
        _is_true(
            "dimension_is_key",
            rule="dimension names its simplex",
            message="dimension must equal the simplex's key",
        ),
        *non_empty_string("description", "simplex description"),
        *_bounded("description", "simplex description", limits=limits, kind="definition"),
    ]
    failures += run_suite(bodies, body_rules, name="definitions_bodies", file=file)

    poles = tables.poles.astype(object)
    poles[ROW_ID] = poles["simplex"].map(_label) + "/" + poles["pole"]
    present = _is_true(
        "present",
        rule="pole present",
        message="pole missing: the simplex needs objects "
        + ", ".join(hatcat.DEFINITION_KEYS.values()),
    )
    failures += run_suite(poles, [present], name="definitions_poles", file=file)
    pole_rules = [
        _known_keys(hatcat.POLE_ENTRY_KEYS, "pole"),
        *non_empty_string("label", "pole label"),
        *_bounded("label", "pole label", limits=limits, kind="name"),
        *non_empty_string("definition", "pole definition"),
        *_bounded("definition", "pole definition", limits=limits, kind="definition"),
    ]
    with_pole = _rows_where(poles, "present")
    return failures + run_suite(with_pole, pole_rules, name="definitions_texts", file=file)


def _synset_row_ids(synsets: pd.DataFrame) -> pd.Series:
    return (
        synsets["synset_id"].map(_label)
        + "@"
        + synsets["source_key"].astype(str)
        + "#"
        + synsets["position"].astype(str)
    )


def _synset_entry_rules(limits: ValidateParams) -> list:
    """Rules of one synset entry (an object): known keys, required and optional fields."""
    import great_expectations.expectations as gxe

    def non_empty_list(column: str) -> list:
        rule = f"{column} non-empty list"
        return [
            gxe.ExpectColumnValuesToNotBeNull(
                column=column, meta={"rule": rule, "message": f"{column} is missing"}
            ),
            gxe.ExpectColumnValuesToBeOfType(
                column=column,
                type_="list",
                meta={"rule": rule, "message": f"{column} must be a list"},
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column=f"n_{column}",
                min_value=1,
                meta={"rule": rule, "message": f"{column} is an empty list", "quote_value": False},
            ),
        ]

    def bounded(column: str, what: str, kind: str) -> list:
        return _bounded(column, what, limits=limits, kind=kind)

    return [
        _known_keys(hatcat.SYNSET_KEYS, "synset entry"),
        *non_empty_string("synset_id", "synset_id"),
        *bounded("synset_id", "synset_id", "name"),
        *non_empty_string("definition", "definition"),
        *bounded("definition", "definition", "definition"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="pos", meta={"rule": "pos string", "message": "pos is missing"}
        ),
        gxe.ExpectColumnValuesToBeOfType(
            column="pos",
            type_="str",
            meta={"rule": "pos string", "message": "pos must be a string"},
        ),
        *bounded("pos", "pos", "name"),
        *non_empty_list("lemmas"),
        *non_empty_list("applies_to_poles"),
        # optional keys: checked where present
        _of_type("label", "str", "label"),
        *bounded("label", "label", "name"),
        _of_type("cultural_note", "str", "cultural_note"),
        *bounded("cultural_note", "cultural_note", "definition"),
        _of_type("source", "str", "source"),
        *bounded("source", "source", "name"),
        _of_type("generated_date", "str", "generated_date"),
        *bounded("generated_date", "generated_date", "name"),
        _of_type("is_synthetic", "bool", "is_synthetic"),
        _of_type("is_enriched", "bool", "is_enriched"),
    ]


def check_synsets(
    tables: hatcat.SynsetTables, *, file: str, limits: ValidateParams
) -> list[Failure]:
    """Every group is a list; every entry an object with known keys, valid and bounded fields,
    non-empty bounded lemmas and parseable pole names; no exact duplicate synset within a pole.

    Entries are checked once each (an overlap entry sits in two pole rows); the duplicate rule
    runs per pole on entries whose id and definition are text.
    """
    import great_expectations.expectations as gxe

    failures = _top_level(tables.unknown_top_keys, hatcat.SYNSETS_TOP_KEYS, file=file)

    groups = tables.groups.astype(object)
    groups[ROW_ID] = groups["source_key"].map(_label)
    is_list = _is_true("is_list", rule="group list", message="a group must be a list of synsets")
    failures += run_suite(groups, [is_list], name="synsets_groups", file=file)

    entries = tables.entries.astype(object)
    entries[ROW_ID] = _synset_row_ids(entries)
    is_object = _is_true(
        "is_object", rule="synset object", message="a synset entry must be an object"
    )
    failures += run_suite(entries, [is_object], name="synsets_objects", file=file)
    objects = _rows_where(entries, "is_object")
    for column in ("lemmas", "applies_to_poles"):
        objects[f"n_{column}"] = objects[column].map(
            lambda v: len(v) if isinstance(v, list) else None
        )
    rules = _synset_entry_rules(limits)
    failures += run_suite(objects, rules, name="synsets_schema", file=file)

    listed = objects[_mask(objects["lemmas"], lambda v: isinstance(v, list) and len(v) > 0)]
    lemmas = listed[[ROW_ID, "lemmas"]].explode("lemmas")
    lemmas = lemmas.rename(columns={"lemmas": "lemma"}).astype(object).reset_index(drop=True)
    lemma_rules = [
        *non_empty_string("lemma", "lemma"),
        *_bounded("lemma", "lemma", limits=limits, kind="name"),
    ]
    failures += run_suite(lemmas, lemma_rules, name="lemmas", file=file)

    poles = tables.poles.astype(object)
    poles[ROW_ID] = _synset_row_ids(poles)
    poles["unparsed_pole"] = _unparsed_pole(poles)
    failures += run_suite(poles, [_pole_name_rule()], name="synsets_poles", file=file)

    usable = poles[poles["pole"].notna()]
    textual = usable[_mask(usable["synset_id"], _is_text) & _mask(usable["definition"], _is_text)]
    unique = gxe.ExpectCompoundColumnsToBeUnique(
        column_list=["simplex", "pole", "synset_id", "definition"],
        meta={
            "rule": "no duplicate synset in a pole",
            "message": "same synset_id and definition appear twice in one pole",
        },
    )
    failures += run_suite(
        textual.reset_index(drop=True), [unique], name="synsets_unique", file=file
    )
    return failures


def check_experiential(
    tables: hatcat.ExperientialTables, *, file: str, limits: ValidateParams
) -> list[Failure]:
    """Every pole key parses and holds a list; every prompt is a non-empty, bounded string."""
    failures = _top_level(tables.unknown_top_keys, hatcat.EXPERIENTIAL_TOP_KEYS, file=file)

    poles = tables.poles.astype(object)
    poles[ROW_ID] = poles["pole_name"].map(_label)
    poles["unparsed_pole"] = _unparsed_pole(poles)
    pole_rules = [
        _pole_name_rule(),
        _is_true("is_list", rule="pole list", message="prompts of a pole must be a list"),
    ]
    failures += run_suite(poles, pole_rules, name="experiential_poles", file=file)

    texts = tables.texts.astype(object)
    texts[ROW_ID] = texts["simplex"] + "/" + texts["pole"] + "#" + texts["position"].astype(str)
    text_rules = [
        *non_empty_string("text", "prompt text"),
        *_bounded("text", "prompt text", limits=limits, kind="prompt"),
    ]
    return failures + run_suite(texts, text_rules, name="experiential", file=file)


# --------------------------------------------------------------------------------------------
# Cross-file rules and counts (pandas)


def _synset_rows(inputs: RawInputs) -> pd.DataFrame | None:
    return None if inputs.synsets is None else inputs.synsets.usable_poles()


def _experiential_rows(inputs: RawInputs) -> pd.DataFrame | None:
    return None if inputs.experiential is None else inputs.experiential.texts


def check_selection(
    inputs: RawInputs,
    files: RawFiles,
    *,
    simplexes: Sequence[str],
    min_synsets_per_pole: int,
    min_experiential_per_pole: int,
) -> list[Failure]:
    """Selected simplexes exist everywhere and each of their poles meets the minimum counts.

    Also: every simplex the synset and experiential files name is defined (ids resolve).
    A file that failed to load (None) is skipped; its load failure is already reported.
    """
    failures = []
    synsets, experiential = _synset_rows(inputs), _experiential_rows(inputs)
    if inputs.definitions is not None:
        failures += _check_defined(inputs, files, simplexes=simplexes)
    if synsets is not None:
        file = str(files.synsets)
        with_synsets = set(synsets["simplex"])
        for simplex in simplexes:
            if simplex not in with_synsets:
                message = "simplex named in params.data.simplexes has no synsets in this file"
                failures.append(Failure(file, simplex, "simplex has synsets", message))
                continue
            counts = synset_counts(synsets, simplex)
            failures += _minimum(counts, min_synsets_per_pole, simplex, file=file, what="synsets")
    if experiential is not None:
        for simplex in simplexes:
            counts = experiential_counts(experiential, simplex)
            failures += _minimum(
                counts,
                min_experiential_per_pole,
                simplex,
                file=str(files.experiential),
                what="experiential",
            )
    return failures


def _check_defined(inputs: RawInputs, files: RawFiles, *, simplexes: Sequence[str]) -> list:
    defined = set(inputs.definitions.simplexes["simplex"])
    failures = [
        Failure(
            str(files.definitions),
            simplex,
            "simplex known",
            "simplex named in params.data.simplexes is not in the definitions file",
        )
        for simplex in simplexes
        if simplex not in defined
    ]
    for table, path in (
        (_synset_rows(inputs), files.synsets),
        (_experiential_rows(inputs), files.experiential),
    ):
        if table is not None:
            failures += [
                Failure(str(path), simplex, "simplex defined", "not in the definitions file")
                for simplex in sorted(set(table["simplex"]) - defined)
            ]
    return failures


def _minimum(
    counts: dict[str, int], minimum: int, simplex: str, *, file: str, what: str
) -> list[Failure]:
    """``what`` is synsets | experiential: names the rule and the params key."""
    return [
        Failure(
            file,
            f"{simplex}/{pole}",
            f"min {what} per pole",
            f"{counts[pole]} {what}, fewer than params.validate.min_{what}_per_pole = {minimum}",
        )
        for pole in POLES
        if counts[pole] < minimum
    ]


def synset_counts(synsets: pd.DataFrame, simplex: str) -> dict[str, int]:
    """Synset entries per pole of ``simplex`` (an overlap entry counts for both its poles).

    ``synsets`` holds one row per (entry, pole), e.g. ``SynsetTables.usable_poles()``.
    """
    rows = synsets[synsets["simplex"] == simplex]
    return {pole: int((rows["pole"] == pole).sum()) for pole in POLES}


def experiential_counts(experiential: pd.DataFrame, simplex: str) -> dict[str, int]:
    """Non-empty experiential prompts per pole of ``simplex``."""
    rows = experiential[
        (experiential["simplex"] == simplex) & _mask(experiential["text"], _is_text)
    ]
    return {pole: int((rows["pole"] == pole).sum()) for pole in POLES}


def n_overlap_entries(synsets: pd.DataFrame, simplex: str) -> int:
    """Entries of ``simplex`` that apply to two of its poles (e.g. positive + neutral)."""
    rows = synsets[synsets["simplex"] == simplex]
    poles_per_entry = rows.groupby(["source_key", "position"])["pole"].nunique()
    return int((poles_per_entry > 1).sum())


def n_reused_ids(synsets: pd.DataFrame) -> int:
    """Synset ids that name more than one distinct definition (HatCat reuses ids; not an error)."""
    entries = synsets.drop_duplicates(["source_key", "position"])
    entries = entries[
        _mask(entries["synset_id"], _is_text) & _mask(entries["definition"], _is_text)
    ]
    return int((entries.groupby("synset_id")["definition"].nunique() > 1).sum())


def selection_counts(inputs: RawInputs, *, simplexes: Sequence[str]) -> dict[str, int]:
    """Flat metrics: ``<simplex>/<pole>/n_synsets`` and ``.../n_experiential`` per selected pole,
    ``<simplex>/n_overlap_entries`` and ``<simplex>/n_reused_ids``, and ``n_reused_ids`` over the
    whole synset file."""
    counts: dict[str, int] = {}
    synsets, experiential = _synset_rows(inputs), _experiential_rows(inputs)
    for simplex in simplexes:
        if synsets is not None:
            for pole, n in synset_counts(synsets, simplex).items():
                counts[f"{simplex}/{pole}/n_synsets"] = n
            counts[f"{simplex}/n_overlap_entries"] = n_overlap_entries(synsets, simplex)
            own = synsets[synsets["simplex"] == simplex]
            counts[f"{simplex}/n_reused_ids"] = n_reused_ids(own)
        if experiential is not None:
            for pole, n in experiential_counts(experiential, simplex).items():
                counts[f"{simplex}/{pole}/n_experiential"] = n
    if synsets is not None:
        counts["n_reused_ids"] = n_reused_ids(synsets)
    return counts


# --------------------------------------------------------------------------------------------


def validate_inputs(
    inputs: RawInputs,
    files: RawFiles,
    *,
    simplexes: Sequence[str],
    limits: ValidateParams,
) -> Report:
    """Run every rule on the loaded inputs; the report holds load failures first, then the rest.

    Column rules cover whole files (a broken row of an unselected simplex still fails: the file
    is one DVC dependency); counts and minimums cover the selected simplexes. ``limits`` gives
    the text bounds and the per-pole minimum counts.
    """
    failures = list(inputs.load_failures)
    if inputs.definitions is not None:
        failures += check_definitions(
            inputs.definitions, file=str(files.definitions), limits=limits
        )
    if inputs.synsets is not None:
        failures += check_synsets(inputs.synsets, file=str(files.synsets), limits=limits)
    if inputs.experiential is not None:
        failures += check_experiential(
            inputs.experiential, file=str(files.experiential), limits=limits
        )
    failures += check_selection(
        inputs,
        files,
        simplexes=simplexes,
        min_synsets_per_pole=limits.min_synsets_per_pole,
        min_experiential_per_pole=limits.min_experiential_per_pole,
    )
    unique = tuple(dict.fromkeys(failures))
    return Report(failures=unique, counts=selection_counts(inputs, simplexes=simplexes))
