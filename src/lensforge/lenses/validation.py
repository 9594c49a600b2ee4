"""Great Expectations suites over HatCat's raw inputs -> a report naming file, row and rule.

Column rules (schema, types, non-empty texts, pole completeness, no exact duplicate synset in a
pole) run as GX 1.x expectations on tidy views of the files, in an in-memory (ephemeral) context;
every failing row is named by a ``row_id`` column (``synset_id@source_key#position`` for synsets,
``simplex/pole`` for definitions, ``simplex/pole#position`` for experiential prompts). Rules that
join files (selected simplexes exist, per-pole minimum counts) are plain pandas.

HatCat reuses synset ids for DIFFERENT synsets across pair groups, so a reused id is counted in
the report, never failed; only an exact duplicate (same id and definition) within a pole fails.
Great Expectations is imported lazily: it costs ~5 s and ``lensforge --help`` must stay fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from lensforge.core.checks import ROW_ID, Failure, Report, non_empty_string, run_suite
from lensforge.core.errors import DataError
from lensforge.lenses import hatcat
from lensforge.lenses.hatcat import POLES


@dataclasses.dataclass(frozen=True)
class RawFiles:
    """The three raw HatCat inputs of a run (the synset file is the one params select)."""

    definitions: Path
    synsets: Path
    experiential: Path


@dataclasses.dataclass(frozen=True)
class RawInputs:
    """Tidy tables of the raw files; a table is None when its file could not be read."""

    definitions: pd.DataFrame | None
    synsets: pd.DataFrame | None
    experiential: pd.DataFrame | None
    load_failures: tuple[Failure, ...]


# --------------------------------------------------------------------------------------------
# Loading


def load_inputs(files: RawFiles) -> RawInputs:
    """Read each raw file with ``hatcat``'s loaders; a file that fails becomes a load failure.

    Each file is read on its own so one malformed file does not hide the others' failures.
    """
    tables: dict[str, pd.DataFrame | None] = {}
    failures = []
    loaders: dict[str, Callable[[Path], pd.DataFrame]] = {
        "definitions": hatcat.load_definitions,
        "synsets": hatcat.load_synsets,
        "experiential": hatcat.load_experiential,
    }
    for name, loader in loaders.items():
        path = getattr(files, name)
        try:
            tables[name] = loader(path)
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
    return "?" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


# --------------------------------------------------------------------------------------------
# Column rules, one function per file


def check_definitions(definitions: pd.DataFrame, *, file: str) -> list[Failure]:
    """Every simplex of the file has its three poles, each with a non-empty label and definition."""
    import great_expectations.expectations as gxe

    view = definitions.astype(object)
    view[ROW_ID] = view["simplex"].map(_label) + "/" + view["pole"]
    present = gxe.ExpectColumnValuesToBeInSet(
        column="present",
        value_set=[True],
        meta={
            "rule": "pole present",
            "message": "pole missing: the simplex needs objects "
            + ", ".join(hatcat.DEFINITION_KEYS.values()),
            "quote_value": False,
        },
    )
    failures = run_suite(view, [present], name="definitions_poles", file=file)
    texts = non_empty_string("label", "pole label") + non_empty_string(
        "definition", "pole definition"
    )
    with_pole = view[view["present"].astype(bool)].reset_index(drop=True)
    return failures + run_suite(with_pole, texts, name="definitions_texts", file=file)


def _synset_row_ids(synsets: pd.DataFrame) -> pd.Series:
    return (
        synsets["synset_id"].map(_label)
        + "@"
        + synsets["source_key"].astype(str)
        + "#"
        + synsets["position"].astype(str)
    )


def check_synsets(synsets: pd.DataFrame, *, file: str) -> list[Failure]:
    """Schema of every synset entry, its lemmas, and no exact duplicate synset within a pole.

    ``synsets`` is ``hatcat.load_synsets`` output (one row per entry and pole). Types are checked
    once per entry; the duplicate rule runs per pole on entries whose id and definition are text.
    """
    import great_expectations.expectations as gxe

    rows = synsets.astype(object)
    rows[ROW_ID] = _synset_row_ids(synsets)
    entries = rows.drop_duplicates(["source_key", "position"]).reset_index(drop=True)
    entries["n_lemmas"] = entries["lemmas"].map(lambda v: len(v) if isinstance(v, list) else None)
    schema = [
        *non_empty_string("synset_id", "synset_id"),
        *non_empty_string("definition", "definition"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="pos", meta={"rule": "pos string", "message": "pos is missing"}
        ),
        gxe.ExpectColumnValuesToBeOfType(
            column="pos",
            type_="str",
            meta={"rule": "pos string", "message": "pos must be a string"},
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="lemmas", meta={"rule": "lemmas non-empty list", "message": "lemmas is missing"}
        ),
        gxe.ExpectColumnValuesToBeOfType(
            column="lemmas",
            type_="list",
            meta={"rule": "lemmas non-empty list", "message": "lemmas must be a list"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_lemmas",
            min_value=1,
            meta={
                "rule": "lemmas non-empty list",
                "message": "lemmas is an empty list",
                "quote_value": False,
            },
        ),
    ]
    failures = run_suite(entries, schema, name="synsets_schema", file=file)

    listed = entries[_mask(entries["lemmas"], lambda v: isinstance(v, list) and len(v) > 0)]
    lemmas = listed[[ROW_ID, "lemmas"]].explode("lemmas")
    lemmas = lemmas.rename(columns={"lemmas": "lemma"}).astype(object).reset_index(drop=True)
    failures += run_suite(lemmas, non_empty_string("lemma", "lemma"), name="lemmas", file=file)

    textual = rows[_mask(rows["synset_id"], _is_text) & _mask(rows["definition"], _is_text)]
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


def check_experiential(experiential: pd.DataFrame, *, file: str) -> list[Failure]:
    """Every experiential prompt is a non-empty string."""
    view = experiential.astype(object)
    view[ROW_ID] = view["simplex"] + "/" + view["pole"] + "#" + view["position"].astype(str)
    return run_suite(view, non_empty_string("text", "prompt text"), name="experiential", file=file)


# --------------------------------------------------------------------------------------------
# Cross-file rules and counts (pandas)


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
    A table that failed to load (None) is skipped; its load failure is already reported.
    """
    failures = []
    if inputs.definitions is not None:
        failures += _check_defined(inputs, files, simplexes=simplexes)
    if inputs.synsets is not None:
        file = str(files.synsets)
        with_synsets = set(inputs.synsets["simplex"])
        for simplex in simplexes:
            if simplex not in with_synsets:
                message = "simplex named in params.data.simplexes has no synsets in this file"
                failures.append(Failure(file, simplex, "simplex has synsets", message))
                continue
            counts = synset_counts(inputs.synsets, simplex)
            failures += _minimum(counts, min_synsets_per_pole, simplex, file=file, what="synsets")
    if inputs.experiential is not None:
        for simplex in simplexes:
            counts = experiential_counts(inputs.experiential, simplex)
            failures += _minimum(
                counts,
                min_experiential_per_pole,
                simplex,
                file=str(files.experiential),
                what="experiential",
            )
    return failures


def _check_defined(inputs: RawInputs, files: RawFiles, *, simplexes: Sequence[str]) -> list:
    defined = set(inputs.definitions["simplex"])
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
    for table, path in ((inputs.synsets, files.synsets), (inputs.experiential, files.experiential)):
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
    """Synset entries per pole of ``simplex`` (an overlap entry counts for both its poles)."""
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
    for simplex in simplexes:
        if inputs.synsets is not None:
            for pole, n in synset_counts(inputs.synsets, simplex).items():
                counts[f"{simplex}/{pole}/n_synsets"] = n
            counts[f"{simplex}/n_overlap_entries"] = n_overlap_entries(inputs.synsets, simplex)
            own = inputs.synsets[inputs.synsets["simplex"] == simplex]
            counts[f"{simplex}/n_reused_ids"] = n_reused_ids(own)
        if inputs.experiential is not None:
            for pole, n in experiential_counts(inputs.experiential, simplex).items():
                counts[f"{simplex}/{pole}/n_experiential"] = n
    if inputs.synsets is not None:
        counts["n_reused_ids"] = n_reused_ids(inputs.synsets)
    return counts


# --------------------------------------------------------------------------------------------


def validate_inputs(
    inputs: RawInputs,
    files: RawFiles,
    *,
    simplexes: Sequence[str],
    min_synsets_per_pole: int,
    min_experiential_per_pole: int,
) -> Report:
    """Run every rule on the loaded inputs; the report holds load failures first, then the rest.

    Column rules cover whole files (a broken row of an unselected simplex still fails: the file
    is one DVC dependency); counts and minimums cover the selected simplexes.
    """
    failures = list(inputs.load_failures)
    if inputs.definitions is not None:
        failures += check_definitions(inputs.definitions, file=str(files.definitions))
    if inputs.synsets is not None:
        failures += check_synsets(inputs.synsets, file=str(files.synsets))
    if inputs.experiential is not None:
        failures += check_experiential(inputs.experiential, file=str(files.experiential))
    failures += check_selection(
        inputs,
        files,
        simplexes=simplexes,
        min_synsets_per_pole=min_synsets_per_pole,
        min_experiential_per_pole=min_experiential_per_pole,
    )
    unique = tuple(dict.fromkeys(failures))  # an overlap entry sits in two pole rows
    return Report(failures=unique, counts=selection_counts(inputs, simplexes=simplexes))
