"""HatCat's raw simplex files -> tidy tables (pure; no GX here, see ``validation``).

The synset files key each group by one or two pole names ``<simplex>_<negative|neutral|positive>``;
a synset names the poles it applies to in ``applies_to_poles``. A synset may apply to two poles of
the same simplex ("overlap", e.g. positive+neutral): it then counts for both, as in HatCat's own
experiment on the imbalanced synset file (taste_development: 87 / 13 / 88). See ``synset_table``
for identity and split groups.

Two ways in:
- ``read_definitions`` / ``read_synsets`` / ``read_experiential`` are tolerant: every record of a
  file becomes a row, whatever is wrong with it (raw values, the keys no schema names, whether it
  is an object), so validation can name every broken row at once. They raise ``DataError`` only
  for what leaves no rows to name: a missing file, malformed JSON, a key repeated within one
  object (JSON parsers silently keep the last), or a top level without its section object.
- ``load_synsets`` / ``load_experiential`` serve the stages after ``validate``: they return the
  usable rows and raise on the first record that cannot be tabulated.

Every key a file may hold is listed below (read from all of HatCat's files in data/raw/hatcat);
any other key is an unknown key, which validation fails. ``metadata`` objects are free-form
annotations that nothing reads, as are the ``_comment...`` entries of the experiential prompts.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from lensforge.core.errors import DataError

# The three poles of every simplex, in label-id order.
POLES = ("negative", "neutral", "positive")

# HatCat's definition file names the three poles with these keys.
DEFINITION_KEYS = {
    "negative": "negative_pole",
    "neutral": "neutral_homeostasis",
    "positive": "positive_pole",
}

# The keys each kind of object may hold.
DEFINITIONS_TOP_KEYS = ("metadata", "simplexes")
SIMPLEX_KEYS = ("dimension", "description", *DEFINITION_KEYS.values())
POLE_ENTRY_KEYS = ("label", "definition")
SYNSETS_TOP_KEYS = ("metadata", "overlaps")
SYNSET_REQUIRED_KEYS = ("synset_id", "lemmas", "definition", "pos", "applies_to_poles")
# In the enriched file only (label, is_enriched, cultural_note) or in the HatCat-generated
# entries only (source, generated_date, is_synthetic); nothing reads them.
SYNSET_OPTIONAL_KEYS = (
    "label",
    "cultural_note",
    "source",
    "generated_date",
    "is_synthetic",
    "is_enriched",
)
SYNSET_KEYS = SYNSET_REQUIRED_KEYS + SYNSET_OPTIONAL_KEYS
EXPERIENTIAL_TOP_KEYS = ("metadata", "prompts")
COMMENT_PREFIX = "_comment"  # experiential keys that annotate the file, e.g. "_comment_rlhf_axes"

SYNSET_COLUMNS = [
    "simplex",
    "pole",
    "synset_id",
    "lemmas",
    "definition",
    "pos",
    "source_key",
    "position",
]


def read_json(path: Path | str) -> object:
    """Parse a JSON file; a missing file, a syntax error or a repeated key is a ``DataError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("input file not found", path=path, rule="exists") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            path=path,
            rule="valid JSON",
        ) from None
    except _RepeatedKeyError as exc:
        raise DataError(
            "key appears twice in one object (JSON keeps only the last)",
            path=path,
            row=exc.key,
            rule="unique keys",
        ) from None


class _RepeatedKeyError(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKeyError(key)
        out[key] = value
    return out


def _section(doc: object, key: str, path: Path) -> dict:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise DataError(
            f"top level must be an object with a {key!r} object", path=path, rule="schema"
        )
    return doc[key]


def unknown_keys(obj: object, known: tuple[str, ...]) -> str | None:
    """The keys of ``obj`` that ``known`` does not list, comma-joined; None if none (or no dict)."""
    if not isinstance(obj, dict):
        return None
    unknown = [key for key in obj if key not in known]
    return ", ".join(unknown) if unknown else None


def split_pole_name(name: str) -> tuple[str, str] | None:
    """``taste_development_neutral`` -> ``("taste_development", "neutral")``; None if no pole suffix."""
    for pole in POLES:
        suffix = f"_{pole}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], pole
    return None


# --------------------------------------------------------------------------------------------
# Definitions


@dataclasses.dataclass(frozen=True)
class DefinitionTables:
    """s_tier_simplex_definitions.json as tables.

    ``simplexes``: one row per simplex (simplex, is_object, dimension, description, unknown_keys).
    ``poles``: one row per (simplex whose body is an object, pole): simplex, pole, present (the
    pole's key holds an object), label, definition, unknown_keys.
    """

    unknown_top_keys: str | None
    simplexes: pd.DataFrame
    poles: pd.DataFrame


def read_definitions(path: Path | str) -> DefinitionTables:
    path = Path(path)
    doc = read_json(path)
    body_of = _section(doc, "simplexes", path)
    simplexes, poles = [], []
    for simplex, body in body_of.items():
        is_object = isinstance(body, dict)
        fields = body if is_object else {}
        simplexes.append(
            {
                "simplex": simplex,
                "is_object": is_object,
                "dimension": fields.get("dimension"),
                "description": fields.get("description"),
                "unknown_keys": unknown_keys(body, SIMPLEX_KEYS),
            }
        )
        if not is_object:
            continue
        for pole, key in DEFINITION_KEYS.items():
            entry = fields.get(key)
            present = isinstance(entry, dict)
            entry = entry if present else {}
            poles.append(
                {
                    "simplex": simplex,
                    "pole": pole,
                    "present": present,
                    "label": entry.get("label"),
                    "definition": entry.get("definition"),
                    "unknown_keys": unknown_keys(entry, POLE_ENTRY_KEYS),
                }
            )
    simplex_columns = ["simplex", "is_object", "dimension", "description", "unknown_keys"]
    pole_columns = ["simplex", "pole", "present", "label", "definition", "unknown_keys"]
    return DefinitionTables(
        unknown_top_keys=unknown_keys(doc, DEFINITIONS_TOP_KEYS),
        simplexes=pd.DataFrame(simplexes, columns=simplex_columns),
        poles=pd.DataFrame(poles, columns=pole_columns),
    )


# --------------------------------------------------------------------------------------------
# Synsets


@dataclasses.dataclass(frozen=True)
class SynsetTables:
    """A synset file as tables; ``source_key`` and ``position`` locate an entry in the file.

    ``groups``: one row per group (source_key, is_list).
    ``entries``: one row per entry of a list group: source_key, position, is_object, the value of
    every key in ``SYNSET_KEYS`` (None when absent) and unknown_keys.
    ``poles``: one row per (object entry, element of its list ``applies_to_poles``): the
    ``SYNSET_COLUMNS`` plus ``pole_name`` as written; simplex and pole are None when the name has
    no pole suffix.
    """

    unknown_top_keys: str | None
    groups: pd.DataFrame
    entries: pd.DataFrame
    poles: pd.DataFrame

    def usable_poles(self) -> pd.DataFrame:
        """Pole rows whose pole name parsed, with the ``SYNSET_COLUMNS`` only."""
        rows = self.poles[self.poles["pole"].notna()]
        return rows[SYNSET_COLUMNS].reset_index(drop=True)


def read_synsets(path: Path | str) -> SynsetTables:
    path = Path(path)
    doc = read_json(path)
    groups, entries, poles = [], [], []
    for source_key, members in _section(doc, "overlaps", path).items():
        groups.append({"source_key": source_key, "is_list": isinstance(members, list)})
        if not isinstance(members, list):
            continue
        for position, entry in enumerate(members):
            is_object = isinstance(entry, dict)
            fields = entry if is_object else {}
            row = {"source_key": source_key, "position": position, "is_object": is_object}
            row.update({key: fields.get(key) for key in SYNSET_KEYS})
            row["unknown_keys"] = unknown_keys(entry, SYNSET_KEYS)
            entries.append(row)
            applies = fields.get("applies_to_poles")
            for pole_name in applies if isinstance(applies, list) else []:
                parsed = split_pole_name(pole_name) if isinstance(pole_name, str) else None
                simplex, pole = parsed if parsed else (None, None)
                poles.append(
                    {
                        "simplex": simplex,
                        "pole": pole,
                        **{key: row[key] for key in ("synset_id", "lemmas", "definition", "pos")},
                        "source_key": source_key,
                        "position": position,
                        "pole_name": pole_name,
                    }
                )
    entry_columns = ["source_key", "position", "is_object", *SYNSET_KEYS, "unknown_keys"]
    return SynsetTables(
        unknown_top_keys=unknown_keys(doc, SYNSETS_TOP_KEYS),
        groups=pd.DataFrame(groups, columns=["source_key", "is_list"]),
        entries=pd.DataFrame(entries, columns=entry_columns),
        poles=pd.DataFrame(poles, columns=[*SYNSET_COLUMNS, "pole_name"]),
    )


def load_synsets(path: Path | str) -> pd.DataFrame:
    """One row per (synset, pole it applies to), for every pole of the form ``<simplex>_<pole>``.

    ``lemmas`` is kept as the raw list (validation checks its type); ``source_key`` and
    ``position`` locate the entry in the file for error messages. Raises ``DataError`` on the
    first record that cannot be tabulated; ``lensforge validate`` reports every broken record.
    """
    path = Path(path)
    tables = read_synsets(path)
    broken_groups = tables.groups[~tables.groups["is_list"].astype(bool)]
    if len(broken_groups):
        row = broken_groups["source_key"].iloc[0]
        raise DataError("group must be a list of synsets", path=path, row=row, rule="schema")
    for entry in tables.entries.itertuples(index=False):
        where = f"{entry.source_key}[{entry.position}] {entry.synset_id!r}"
        if not entry.is_object:
            raise DataError("synset entry must be an object", path=path, row=where, rule="schema")
        if not isinstance(entry.applies_to_poles, list) or not entry.applies_to_poles:
            raise DataError(
                "applies_to_poles must be a non-empty list", path=path, row=where, rule="schema"
            )
    unparsed = tables.poles[tables.poles["pole"].isna()]
    if len(unparsed):
        first = unparsed.iloc[0]
        raise DataError(
            f"pole name {first['pole_name']!r} does not end in _negative/_neutral/_positive",
            path=path,
            row=f"{first['source_key']}[{first['position']}] {first['synset_id']!r}",
            rule="pole name",
        )
    return tables.usable_poles()


# --------------------------------------------------------------------------------------------
# Experiential prompts


@dataclasses.dataclass(frozen=True)
class ExperientialTables:
    """simplex_experiential_prompts.json as tables (``_comment...`` keys are skipped).

    ``poles``: one row per other key of ``prompts``: pole_name, simplex and pole (None when the
    name has no pole suffix), is_list.
    ``texts``: one row per prompt of a parsed, list-valued pole: simplex, pole, position, text.
    """

    unknown_top_keys: str | None
    poles: pd.DataFrame
    texts: pd.DataFrame


def read_experiential(path: Path | str) -> ExperientialTables:
    path = Path(path)
    doc = read_json(path)
    poles, texts = [], []
    for pole_name, values in _section(doc, "prompts", path).items():
        if pole_name.startswith(COMMENT_PREFIX):
            continue
        parsed = split_pole_name(pole_name)
        simplex, pole = parsed if parsed else (None, None)
        is_list = isinstance(values, list)
        poles.append({"pole_name": pole_name, "simplex": simplex, "pole": pole, "is_list": is_list})
        if parsed is None or not is_list:
            continue
        texts += [
            {"simplex": simplex, "pole": pole, "position": position, "text": text}
            for position, text in enumerate(values)
        ]
    return ExperientialTables(
        unknown_top_keys=unknown_keys(doc, EXPERIENTIAL_TOP_KEYS),
        poles=pd.DataFrame(poles, columns=["pole_name", "simplex", "pole", "is_list"]),
        texts=pd.DataFrame(texts, columns=["simplex", "pole", "position", "text"]),
    )


def load_experiential(path: Path | str) -> pd.DataFrame:
    """One row per experiential prompt: simplex, pole, position within its pole, text.

    Raises ``DataError`` on the first pole key that cannot be used; ``lensforge validate``
    reports every broken record.
    """
    path = Path(path)
    tables = read_experiential(path)
    for row in tables.poles.itertuples(index=False):
        if pd.isna(row.pole):
            raise DataError(
                f"pole name {row.pole_name!r} does not end in _negative/_neutral/_positive",
                path=path,
                row=row.pole_name,
                rule="pole name",
            )
        if not row.is_list:
            raise DataError(
                "prompts of a pole must be a list", path=path, row=row.pole_name, rule="schema"
            )
    return tables.texts


# --------------------------------------------------------------------------------------------


def synset_table(frame: pd.DataFrame, simplexes: tuple[str, ...]) -> pd.DataFrame:
    """The rows of the selected simplexes, one per (entry, pole), with two derived keys.

    HatCat's synset ids are not unique: 188 ids are reused for different synsets (different
    definitions) in different pair groups, and the counts of HatCat's own experiment on this file
    (87 / 13 / 88) count entries. So an entry's identity is ``synset_key`` =
    ``<pair group>#<position>``. Its ``group`` is the id's head word (``abandonment`` of
    ``abandonment.overlap.04``): entries sharing a head share lemmas. This is only the seed of
    the split group: ``prompts.link_synset_groups`` also merges head words whose entries share
    any lemma within a simplex, so no lemma's prompts straddle two splits.
    """
    chosen = frame[frame["simplex"].isin(simplexes)].copy()
    chosen["synset_key"] = chosen["source_key"] + "#" + chosen["position"].astype(str)
    chosen["group"] = chosen["synset_id"].astype(str).str.split(".").str[0]
    return chosen.reset_index(drop=True)
