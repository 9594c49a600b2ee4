"""HatCat's raw simplex files -> tidy tables (pure; no GX here, see ``validation``).

The synset files key each group by one or two pole names ``<simplex>_<negative|neutral|positive>``;
a synset names the poles it applies to in ``applies_to_poles``. A synset may apply to two poles of
the same simplex ("overlap", e.g. positive+neutral): it then counts for both, as in seed 000
(taste_development: 87 / 13 / 88). See ``synset_table`` for identity and split groups.
"""

from __future__ import annotations

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
    """Parse a JSON file; a missing file or a syntax error is a ``DataError`` naming the spot."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("input file not found", path=path, rule="exists") from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            path=path,
            rule="valid JSON",
        ) from None


def _section(doc: object, key: str, path: Path) -> dict:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise DataError(
            f"top level must be an object with a {key!r} object", path=path, rule="schema"
        )
    return doc[key]


def split_pole_name(name: str) -> tuple[str, str] | None:
    """``taste_development_neutral`` -> ``("taste_development", "neutral")``; None if no pole suffix."""
    for pole in POLES:
        suffix = f"_{pole}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], pole
    return None


def load_definitions(path: Path | str) -> pd.DataFrame:
    """One row per (simplex, pole): label and definition, as written (validation checks them)."""
    path = Path(path)
    simplexes = _section(read_json(path), "simplexes", path)
    rows = []
    for simplex, body in simplexes.items():
        body = body if isinstance(body, dict) else {}
        for pole, key in DEFINITION_KEYS.items():
            entry = body.get(key)
            rows.append(
                {
                    "simplex": simplex,
                    "pole": pole,
                    "present": isinstance(entry, dict),
                    "label": entry.get("label") if isinstance(entry, dict) else None,
                    "definition": entry.get("definition") if isinstance(entry, dict) else None,
                }
            )
    return pd.DataFrame(rows, columns=["simplex", "pole", "present", "label", "definition"])


def load_synsets(path: Path | str) -> pd.DataFrame:
    """One row per (synset, pole it applies to), for every pole of the form ``<simplex>_<pole>``.

    ``lemmas`` is kept as the raw list (validation checks its type); ``source_key`` and
    ``position`` locate the entry in the file for error messages.
    """
    path = Path(path)
    groups = _section(read_json(path), "overlaps", path)
    rows = []
    for source_key, entries in groups.items():
        if not isinstance(entries, list):
            raise DataError(
                f"group {source_key!r} must be a list of synsets",
                path=path,
                row=source_key,
                rule="schema",
            )
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise DataError(
                    "synset entry must be an object",
                    path=path,
                    row=f"{source_key}[{position}]",
                    rule="schema",
                )
            applies = entry.get("applies_to_poles")
            if not isinstance(applies, list) or not applies:
                raise DataError(
                    "applies_to_poles must be a non-empty list",
                    path=path,
                    row=f"{source_key}[{position}] {entry.get('synset_id')!r}",
                    rule="schema",
                )
            for pole_name in applies:
                parsed = split_pole_name(str(pole_name))
                if parsed is None:
                    raise DataError(
                        f"pole name {pole_name!r} does not end in _negative/_neutral/_positive",
                        path=path,
                        row=f"{source_key}[{position}] {entry.get('synset_id')!r}",
                        rule="pole name",
                    )
                rows.append(
                    {
                        "simplex": parsed[0],
                        "pole": parsed[1],
                        "synset_id": entry.get("synset_id"),
                        "lemmas": entry.get("lemmas"),
                        "definition": entry.get("definition"),
                        "pos": entry.get("pos"),
                        "source_key": source_key,
                        "position": position,
                    }
                )
    return pd.DataFrame(rows, columns=SYNSET_COLUMNS)


def load_experiential(path: Path | str) -> pd.DataFrame:
    """One row per experiential prompt: simplex, pole, position within its pole, text."""
    path = Path(path)
    prompts = _section(read_json(path), "prompts", path)
    rows = []
    for pole_name, texts in prompts.items():
        if pole_name.startswith("_comment"):
            continue  # the file's own annotations, e.g. "_comment_rlhf_axes"
        parsed = split_pole_name(pole_name)
        if parsed is None:
            raise DataError(
                f"pole name {pole_name!r} does not end in _negative/_neutral/_positive",
                path=path,
                row=pole_name,
                rule="pole name",
            )
        if not isinstance(texts, list):
            raise DataError(
                "prompts of a pole must be a list", path=path, row=pole_name, rule="schema"
            )
        for position, text in enumerate(texts):
            rows.append(
                {"simplex": parsed[0], "pole": parsed[1], "position": position, "text": text}
            )
    return pd.DataFrame(rows, columns=["simplex", "pole", "position", "text"])


def synset_table(frame: pd.DataFrame, simplexes: tuple[str, ...]) -> pd.DataFrame:
    """The rows of the selected simplexes, one per (entry, pole), with two derived keys.

    HatCat's synset ids are not unique: 188 ids are reused for different synsets (different
    definitions) in different pair groups, and seed 000's counts (87 / 13 / 88) count entries.
    So an entry's identity is ``synset_key`` = ``<pair group>#<position>``. Its split ``group`` is
    the id's head word (``abandonment`` of ``abandonment.overlap.04``): entries sharing a head share
    lemmas, so their prompts would be near-duplicates and must land in the same split.
    """
    chosen = frame[frame["simplex"].isin(simplexes)].copy()
    chosen["synset_key"] = chosen["source_key"] + "#" + chosen["position"].astype(str)
    chosen["group"] = chosen["synset_id"].astype(str).str.split(".").str[0]
    return chosen.reset_index(drop=True)
