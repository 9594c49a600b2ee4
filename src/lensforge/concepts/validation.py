"""Great Expectations suites over a concept pack -> a report naming file, row and rule.

Every failure names the archive member (``file``), the concept's term (``row``; the member's
file name when the term itself is broken) and the rule. The rules:

- every member is readable JSON holding an object (load failures, from ``pack.read_pack``);
- required keys (``pack.REQUIRED_KEYS``; ``parent_concepts`` above pack layer 0) are present;
- ``term`` and ``definition`` are non-empty strings, terms are unique, a definition holds at most
  ``max_definition_chars`` characters; the file's ``layer`` equals its layer folder;
- list fields are lists of non-empty strings; every synset id is a WordNet 3.0 offset
  (``05553486.n``) or synset name (``work.n.01``, HatCat also coins names such as
  ``ai_artifact.n.01``), and ``canonical_synset`` is one of the concept's synsets (or empty when
  it has none);
- the hierarchy: a concept above pack layer 0 has parents, a root has none, and every parent is
  a concept of the pack on a lower pack layer.

The concept files are the one source of truth for the hierarchy. ``hierarchy/hierarchy.json``
disagrees with them; its disagreements are counted in the report (``hierarchy_json/...``), never
failed and never used. Great Expectations is imported lazily (~5 s).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lensforge.concepts.pack import LIST_COLUMNS, Pack, layer_counts
from lensforge.core.checks import ROW_ID, Failure, Report, max_chars, non_empty_string, run_suite

# WordNet 3.0 offset + part of speech, or a synset name: lemma . pos . two-digit sense number.
SYNSET_ID = r"^(?:\d{8}\.[nvasr]|[a-z0-9_.'-]+\.[nvasr]\.\d{2})$"
MAX_LABEL_CHARS = 60  # a longer term is cut in row names


def _label(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value if len(value) <= MAX_LABEL_CHARS else f"{value[:MAX_LABEL_CHARS]}..."


def _row_name(file: str, term: object) -> str:
    """The term, or the member's file name when the term is not a usable string."""
    return _label(term) or f"{file.rsplit('/', 1)[-1]} (no term)"


def _suite(frame: pd.DataFrame, rules: Sequence, *, name: str, archive: str) -> list[Failure]:
    """``run_suite`` over rows that carry ``file`` and ``term``: each failure names its member
    and term; a failure of the frame as a whole names the archive."""
    view = frame.reset_index(drop=True).astype(object)
    view[ROW_ID] = [str(i) for i in range(len(view))]
    failures = []
    for failure in run_suite(view, rules, name=name, file=archive):
        if failure.row == "*":
            failures.append(failure)
            continue
        i = int(failure.row)
        file = view.at[i, "file"]
        failures.append(
            Failure(file, _row_name(file, view.at[i, "term"]), failure.rule, failure.message)
        )
    return failures


def _is_null(column: str, *, rule: str, message: str, quote: bool = True):
    """``column`` (a derived note, None where the rule holds) is empty."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeNull(
        column=column, meta={"rule": rule, "message": message, "quote_value": quote}
    )


def _mask(series: pd.Series, test) -> pd.Series:
    """``test`` per value as a bool Series (an empty mapped Series would select columns)."""
    return series.map(test).astype(bool)


def _bad_items(value: object) -> str | None:
    """None when ``value`` is absent or a list of non-empty strings, else the first bad item."""
    if not isinstance(value, list):
        return None
    for item in value:
        if not isinstance(item, str) or not item.strip():
            return repr(item)
    return None


def _layer_note(declared: object, folder: object) -> str | None:
    """None when the ``layer`` value is the folder's (or absent: a required key then fails)."""
    if declared is None:
        return None
    if isinstance(declared, int) and not isinstance(declared, bool) and declared == folder:
        return None
    return f"layer {declared!r} in a layer{folder} folder"


def _parents_note(parents: object, pack_layer: int) -> str | None:
    if not isinstance(parents, list):
        return None
    if pack_layer > 0 and not parents:
        return f"no parent on pack layer {pack_layer}"
    if pack_layer == 0 and parents:
        return f"a root (pack layer 0) with parents {parents!r}"
    return None


def _canonical_note(canonical: object, synsets: object) -> str | None:
    if not isinstance(canonical, str) or not isinstance(synsets, list):
        return None
    if canonical == "" and not synsets:
        return None
    return None if canonical in synsets else f"{canonical!r} not in synsets"


def _schema_rules(*, max_definition_chars: int) -> list:
    import great_expectations.expectations as gxe

    def of_type(column: str, type_: str, kind: str):
        meta = {"rule": f"{column} type", "message": f"{column} must be {kind}"}
        return gxe.ExpectColumnValuesToBeOfType(column=column, type_=type_, meta=meta)

    rules = [
        _is_null("missing_keys", rule="required keys", message="required key(s) missing"),
        *non_empty_string("term", "term"),
        *non_empty_string("definition", "definition"),
        *max_chars(
            "definition", "definition", limit=max_definition_chars, param="max_definition_chars"
        ),
        _is_null("layer_note", rule="layer matches folder", message="layer differs from folder"),
        of_type("canonical_synset", "str", "a string"),
        _is_null(
            "canonical_note",
            rule="canonical synset listed",
            message="canonical_synset must be one of synsets",
        ),
        _is_null("parents_note", rule="parents by layer", message="parents do not fit the layer"),
    ]
    for column in LIST_COLUMNS:
        rules.append(of_type(column, "list", "a list"))
        rules.append(
            _is_null(
                f"{column}_bad_item",
                rule=f"{column} strings",
                message=f"{column} must hold non-empty strings",
            )
        )
    return rules


def check_concepts(concepts: pd.DataFrame, *, archive: str, max_definition_chars: int) -> list:
    """Per-concept rules: required keys, types, non-empty bounded definitions, layer field,
    canonical synset, parents by layer, and unique terms."""
    import great_expectations.expectations as gxe

    view = concepts.astype(object).copy()
    view["layer_note"] = [
        _layer_note(d, f) for d, f in zip(view["declared_layer"], view["pack_layer"], strict=True)
    ]
    view["canonical_note"] = [
        _canonical_note(c, s)
        for c, s in zip(view["canonical_synset"], view["synsets"], strict=True)
    ]
    view["parents_note"] = [
        _parents_note(p, int(k))
        for p, k in zip(view["parent_concepts"], view["pack_layer"], strict=True)
    ]
    for column in LIST_COLUMNS:
        view[f"{column}_bad_item"] = view[column].map(_bad_items)
    failures = _suite(
        view,
        _schema_rules(max_definition_chars=max_definition_chars),
        name="concepts_schema",
        archive=archive,
    )
    unique = gxe.ExpectColumnValuesToBeUnique(
        column="term",
        meta={"rule": "unique term", "message": "term is used by another concept file"},
    )
    texts = view[_mask(view["term"], lambda t: isinstance(t, str))]
    return failures + _suite(texts, [unique], name="concepts_unique", archive=archive)


def _exploded(concepts: pd.DataFrame, column: str, as_name: str) -> pd.DataFrame:
    """One row per string item of a list column, with the concept's file, term and layer."""
    rows = concepts[["file", "term", "pack_layer", column]].copy()
    rows = rows[_mask(rows[column], lambda v: isinstance(v, list) and len(v) > 0)]
    rows = rows.explode(column).rename(columns={column: as_name})
    return rows[_mask(rows[as_name], lambda v: isinstance(v, str))].reset_index(drop=True)


def check_synset_ids(concepts: pd.DataFrame, *, archive: str) -> list[Failure]:
    """Every synset id matches ``SYNSET_ID`` (the failure quotes the id)."""
    import great_expectations.expectations as gxe

    ids = _exploded(concepts, "synsets", "synset")
    rule = gxe.ExpectColumnValuesToMatchRegex(
        column="synset",
        regex=SYNSET_ID,
        meta={
            "rule": "synset id format",
            "message": "synset id is neither a WordNet offset (05553486.n) nor a name (work.n.01)",
        },
    )
    return _suite(ids, [rule], name="concepts_synsets", archive=archive)


def parent_notes(concepts: pd.DataFrame) -> pd.DataFrame:
    """One row per (concept, parent) link with two notes, None where the rule holds:
    ``unknown_parent`` (the parent is no concept of the pack) and ``parent_layer`` (the parent
    sits on the same or a deeper pack layer). A duplicated term counts as existing."""
    layers = (
        concepts[_mask(concepts["term"], lambda t: isinstance(t, str))]
        .groupby("term")["pack_layer"]
        .min()
    )
    links = _exploded(concepts, "parent_concepts", "parent")
    parent_layer = links["parent"].map(layers)
    links["unknown_parent"] = links["parent"].where(parent_layer.isna(), None)
    links["parent_layer"] = [
        None
        if pd.isna(upper) or int(upper) < int(own)
        else f"parent {parent!r} is on pack layer {int(upper)}, not above {int(own)}"
        for parent, upper, own in zip(
            links["parent"], parent_layer, links["pack_layer"], strict=True
        )
    ]
    return links


def check_parents(concepts: pd.DataFrame, *, archive: str) -> list[Failure]:
    """Every parent is a concept of the pack and sits on a lower pack layer."""
    rules = [
        _is_null(
            "unknown_parent", rule="parent exists", message="parent is not a concept of the pack"
        ),
        _is_null("parent_layer", rule="parent on a lower layer", message="parent layer"),
    ]
    return _suite(parent_notes(concepts), rules, name="concepts_parents", archive=archive)


def hierarchy_counts(concepts: pd.DataFrame, links: pd.DataFrame | None) -> dict[str, int]:
    """How ``hierarchy/hierarchy.json`` disagrees with the concept files (never failed, never used).

    By its own layer tags (``"AAM:4" -> "GuidedMissile:4"``): ``n_same_layer_links`` (child and
    parent tagged with the same layer) and ``n_inverted_links`` (the parent tagged deeper than
    the child). Against the concept files: ``n_unknown_term_links`` (child or parent is no pack
    concept), ``n_parent_disagreements`` (a pack concept whose parent there is not one of its
    ``parent_concepts``), ``n_layer_tag_disagreements`` (a pack concept tagged with another
    layer than its folder), ``n_concepts_absent`` (pack concepts above layer 0 that are no child
    there). ``found`` is 0 when the archive has no readable hierarchy file.
    """
    if links is None:
        return {"hierarchy_json/found": 0}
    terms = concepts[_mask(concepts["term"], lambda t: isinstance(t, str))].drop_duplicates("term")
    layer_of = terms.set_index("term")["pack_layer"]
    parents_of = terms.set_index("term")["parent_concepts"]
    tagged = links.dropna(subset=["child_tag", "parent_tag"])
    known = links[links["child"].isin(layer_of.index)]
    absent = terms[(terms["pack_layer"].astype(int) > 0) & ~terms["term"].isin(links["child"])]
    unknown = ~links["child"].isin(layer_of.index) | ~links["parent"].isin(layer_of.index)
    return {
        "hierarchy_json/found": 1,
        "hierarchy_json/n_links": len(links),
        "hierarchy_json/n_same_layer_links": int(
            (tagged["child_tag"] == tagged["parent_tag"]).sum()
        ),
        "hierarchy_json/n_inverted_links": int((tagged["parent_tag"] > tagged["child_tag"]).sum()),
        "hierarchy_json/n_unknown_term_links": int(unknown.sum()),
        "hierarchy_json/n_parent_disagreements": sum(
            not isinstance(parents_of[c], list) or p not in parents_of[c]
            for c, p in zip(known["child"], known["parent"], strict=True)
        ),
        "hierarchy_json/n_layer_tag_disagreements": int(
            (known["child_tag"] != known["child"].map(layer_of)).sum()
        ),
        "hierarchy_json/n_concepts_absent": len(absent),
    }


def pack_counts(concepts: pd.DataFrame) -> dict[str, int]:
    """``n_concepts``, ``pack_layer_<k>/n_concepts`` per layer folder, ``n_with_synsets``."""
    counts = {"n_concepts": len(concepts)}
    for layer, n in layer_counts(concepts).items():
        counts[f"pack_layer_{layer}/n_concepts"] = n
    counts["n_with_synsets"] = int(
        _mask(concepts["synsets"], lambda v: isinstance(v, list) and len(v) > 0).sum()
    )
    return counts


def validate_pack(pack: Pack, *, max_definition_chars: int) -> Report:
    """Run every rule on a read pack; the report holds load failures first, then the rest, and
    counts per pack layer plus the ``hierarchy/hierarchy.json`` disagreements."""
    failures = list(pack.load_failures)
    concepts = pack.concepts
    if not concepts.empty:
        failures += check_concepts(
            concepts, archive=pack.archive, max_definition_chars=max_definition_chars
        )
        failures += check_synset_ids(concepts, archive=pack.archive)
        failures += check_parents(concepts, archive=pack.archive)
    counts = {**pack_counts(concepts), **hierarchy_counts(concepts, pack.hierarchy)}
    return Report(failures=tuple(dict.fromkeys(failures)), counts=counts)
