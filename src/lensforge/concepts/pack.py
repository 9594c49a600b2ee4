"""A concept pack archive (HatCat's first-light, ``.tar.gz``) -> one tidy table (no GX here).

The archive holds one JSON file per concept under ``<pack>/concepts/layer<k>/``; ``k`` is the
concept's *pack layer* (0 = the five meta-domains, 6 = leaves), not a model layer. The archive is
read member by member with ``tarfile``, never unpacked to disk. Reading is tolerant, like the
simplex readers: every concept file that parses to an object becomes one row holding its raw
values (a wrong type stays for ``validation`` to name); a member that cannot be read (bad JSON,
a repeated key, not UTF-8, not a regular file, not an object) becomes a load ``Failure`` naming
the member, so one broken file never hides the others.

``hierarchy/hierarchy.json`` is read separately into a table of its child -> parent links: the
concept files' own ``parent_concepts`` are the one source of truth for the hierarchy, and
``validation`` only counts where the hierarchy file disagrees with them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tarfile
from pathlib import Path

import pandas as pd

from lensforge.core.checks import Failure

CONCEPT_MEMBER = re.compile(r"(?:^|/)concepts/layer(\d+)/[^/]+\.json$")
HIERARCHY_MEMBER = re.compile(r"(?:^|/)hierarchy/hierarchy\.json$")
WHOLE_FILE = "(file)"  # row of a failure that concerns a whole member

# Required keys as paths into a concept object; ``parent_concepts`` only above pack layer 0.
REQUIRED_KEYS = (
    ("term",),
    ("layer",),
    ("definition",),
    ("wordnet", "synsets"),
    ("wordnet", "canonical_synset"),
    ("wordnet", "lemmas"),
    ("relationships", "related"),
    ("relationships", "antonyms"),
    ("training_hints", "positive_examples"),
    ("training_hints", "negative_examples"),
)
PARENTS_KEY = ("parent_concepts",)
# Optional keys: absent means empty.
OPTIONAL_LISTS = {"aliases": ("aliases",), "opposite": ("relationships", "opposite")}
OPTIONAL_TEXTS = {"domain": ("domain",)}

CONCEPT_COLUMNS = [
    "file",
    "term",
    "pack_layer",
    "declared_layer",
    "domain",
    "definition",
    "parent_concepts",
    "synsets",
    "canonical_synset",
    "lemmas",
    "aliases",
    "positive_examples",
    "negative_examples",
    "opposite",
    "related",
    "antonyms",
    "missing_keys",
]
HIERARCHY_COLUMNS = ["child", "child_tag", "parent", "parent_tag"]
LIST_COLUMNS = (
    "parent_concepts",
    "synsets",
    "lemmas",
    "aliases",
    "positive_examples",
    "negative_examples",
    "opposite",
    "related",
    "antonyms",
)


@dataclasses.dataclass(frozen=True)
class Pack:
    """A concept pack as tables.

    ``concepts``: one row per concept file (``CONCEPT_COLUMNS``; ``file`` is the archive member,
    ``pack_layer`` the layer folder, ``declared_layer`` the file's own ``layer`` value,
    ``missing_keys`` the required keys it lacks or None). ``hierarchy``: the links of
    ``hierarchy/hierarchy.json`` (``HIERARCHY_COLUMNS``; a tag is the layer written after the
    term, ``"AAM:4"``), None when the archive has no readable one. ``load_failures``: members
    that gave no row.
    """

    archive: str
    concepts: pd.DataFrame
    hierarchy: pd.DataFrame | None
    load_failures: tuple[Failure, ...]


class _RepeatedKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """JSON objects with a key written twice are refused (parsers silently keep the last)."""
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise _RepeatedKey(key)
    return dict(pairs)


def parse_member(data: bytes) -> object:
    """Parse one member's bytes as UTF-8 JSON; raises ``ValueError`` (with the reason)."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except _RepeatedKey as exc:
        raise ValueError(f"key {exc} appears twice in one object") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc}") from exc


def _at(obj: object, path: tuple[str, ...]) -> tuple[bool, object]:
    """(found, value) of a key path; an intermediate value that is not an object is not found."""
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return False, None
        obj = obj[key]
    return True, obj


def concept_row(doc: dict, *, file: str, pack_layer: int) -> dict:
    """One concept object -> one table row of raw values (see ``CONCEPT_COLUMNS``)."""
    required = REQUIRED_KEYS + (PARENTS_KEY,) if pack_layer > 0 else REQUIRED_KEYS
    missing = [".".join(path) for path in required if not _at(doc, path)[0]]
    row = {
        "file": file,
        "pack_layer": pack_layer,
        "declared_layer": _at(doc, ("layer",))[1],
        "missing_keys": ", ".join(missing) if missing else None,
    }
    for path in REQUIRED_KEYS:
        if path != ("layer",):
            row[path[-1]] = _at(doc, path)[1]
    found, parents = _at(doc, PARENTS_KEY)
    row["parent_concepts"] = parents if found or pack_layer > 0 else []
    for column, path in OPTIONAL_LISTS.items():
        found, value = _at(doc, path)
        row[column] = value if found else []
    for column, path in OPTIONAL_TEXTS.items():
        row[column] = _at(doc, path)[1]
    return row


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> object:
    if not member.isfile():
        raise ValueError("not a regular file")
    handle = archive.extractfile(member)
    if handle is None:
        raise ValueError("cannot be read")
    return parse_member(handle.read())


def hierarchy_links(doc: object) -> pd.DataFrame:
    """``child_to_parent`` of a hierarchy file -> one row per link with parsed layer tags
    (nullable integers: a name without a tag has ``<NA>``).

    Raises ``ValueError`` when the document has no ``child_to_parent`` object.
    """
    links = doc.get("child_to_parent") if isinstance(doc, dict) else None
    if not isinstance(links, dict):
        raise ValueError("no child_to_parent object")
    rows = [(*_tagged(child), *_tagged(parent)) for child, parent in links.items()]
    table = pd.DataFrame(rows, columns=HIERARCHY_COLUMNS)
    return table.astype({"child_tag": "Int64", "parent_tag": "Int64"})


def _tagged(name: object) -> tuple[str, int | None]:
    """``"AAM:4"`` -> ("AAM", 4); a name without a numeric tag keeps None."""
    term, _, tag = str(name).rpartition(":")
    return (term, int(tag)) if term and tag.isdigit() else (str(name), None)


def read_pack(path: Path | str) -> Pack:
    """Read every ``concepts/layer<k>/*.json`` member and ``hierarchy/hierarchy.json``.

    Never raises for bad content: an unreadable archive, an archive without concept files and
    each unreadable member are load failures (file: the archive or the member, rule: what broke).
    """
    archive_name = str(path)
    rows, failures, hierarchy = [], [], None
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                concept = CONCEPT_MEMBER.search(member.name)
                if concept is None and not HIERARCHY_MEMBER.search(member.name):
                    continue
                try:
                    doc = _read_member(archive, member)
                    if concept is None:
                        hierarchy = hierarchy_links(doc)
                    elif not isinstance(doc, dict):
                        raise ValueError(
                            f"a concept file must hold an object, got {type(doc).__name__}"
                        )
                    else:
                        rows.append(concept_row(doc, file=member.name, pack_layer=int(concept[1])))
                except ValueError as exc:
                    # a broken hierarchy file is only counted (never used): no failure
                    if concept is not None:
                        failures.append(
                            Failure(member.name, WHOLE_FILE, "readable concept file", str(exc))
                        )
    except (OSError, tarfile.TarError, EOFError) as exc:
        failures.append(Failure(archive_name, WHOLE_FILE, "readable archive", str(exc)))
    if not rows and not failures:
        message = "no concepts/layer<k>/*.json member in the archive"
        failures.append(Failure(archive_name, WHOLE_FILE, "concept files present", message))
    concepts = pd.DataFrame(rows, columns=CONCEPT_COLUMNS).astype(object)
    concepts = concepts.sort_values(["pack_layer", "file"], kind="stable").reset_index(drop=True)
    return Pack(archive_name, concepts, hierarchy, tuple(failures))


def layer_counts(concepts: pd.DataFrame) -> dict[int, int]:
    """Concept files per pack layer, in layer order."""
    counts = concepts["pack_layer"].astype(int).value_counts().sort_index()
    return {int(layer): int(n) for layer, n in counts.items()}
