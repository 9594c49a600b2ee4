"""Concept prompts: N ranked prompts per concept, a grouped split, and each concept's negatives
(pure; tables in, tables out; no file I/O).

Prompts come from the concept's *names* (WordNet lemmas and aliases; a concept with neither is
named by its term, ``AIArtifact`` -> "AI artifact"), its definition and its written positive
examples, through ``core.templates``: definitional and behavioural kinds dealt along
``kind_schedule`` at ``behavioral_ratio``; a positive example (kind ``example``) fills a
behavioural slot before any template does. Deterministic per seed and concept.

One row per prompt: a prompt's label for a lens is membership (positive for its own concept,
negative for the others), so one cached activation serves every lens.

Two split units (``unit``):
- ``"concept"``: concepts sharing a (normalised) name or an identical prompt text are one group
  (``link_concept_groups``); each group goes to one split, stratified by pack layer, counting
  concepts. A concept's prompts then all sit in one split, so its own lens has positives in that
  split only.
- ``"prompt"``: every concept's prompts are dealt over the three splits (``allocate`` of N by the
  fractions, seeded order), so each lens has train, validation and test positives; identical texts
  (normalised), even of two concepts, are one group and share a split.
Either way ``check_disjoint_texts`` refuses any text found in two splits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lensforge.core.errors import ParamsError
from lensforge.core.splits import (
    SPLITS,
    allocate,
    assign_sized_splits,
    check_disjoint_texts,
    cross_split_keys,
    link_groups,
    normalise_text,
    stable_seed,
)
from lensforge.core.templates import (
    BEHAVIORAL,
    DEFINITIONAL,
    DEFINITIONAL_TEMPLATES,
    WHO,
    TemplateSet,
    clean_lemma,
    normalise_lemma,
    ranked_prompts,
    shuffled,
    template_candidates,
)

EXAMPLE = "example"  # a positive example written in the pack; fills a behavioural slot
UNITS = ("concept", "prompt")
PROMPT_COLUMNS = ["prompt_id", "concept", "pack_layer", "group", "kind", "split", "rank", "text"]
NEGATIVE_COLUMNS = ["concept", "split", "prompt_id", "negative"]

# {lemma} is one of the concept's names; {definition} its definition, first letter lowered.
# Concepts are things, processes, attributes, relations: no template assumes a feeling.
CONCEPT_TEMPLATES = TemplateSet(
    definitional=DEFINITIONAL_TEMPLATES,
    frames=(
        "In everyday language",
        "In a dictionary",
        "In an encyclopedia",
        "In plain words",
        "Put simply",
        "Strictly speaking",
    ),
    behavioral=(
        "Describe a moment when {who} came across {lemma}.",
        "Write one sentence in which {who} talks about {lemma}.",
        "What does {who} notice first about {lemma}?",
        "Tell a short story about {who} and {lemma}.",
        "How would {who} explain {lemma} to a child?",
        "Give an everyday example of {lemma} that {who} might meet.",
        "Imagine {who} thinking about {lemma}. What comes to mind?",
        "Write a diary line by {who} about {lemma}.",
        "Describe how {who} would recognise {lemma}.",
        "What would {who} say {lemma} is for?",
        "Show {lemma} through what {who} sees or does.",
        "Ask {who} a question about {lemma}.",
    ),
    who=WHO,
)


# --------------------------------------------------------------------------------------------
# Prompts of one concept


def _words(text: str) -> str:
    """Camel case split into words, acronyms kept (``AIArtifact`` -> "AI artifact")."""
    tokens = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", text)
    words = [t if len(t) > 1 and t.isupper() else t.lower() for t in tokens]
    return " ".join(words) or clean_lemma(text)


def term_words(term: str) -> str:
    """A term as words, for a concept without lemmas: the part after the last ``_`` (HatCat
    writes ``Parent_Child Name``) split by ``_words`` (``CreatedThings`` -> "created things")."""
    return _words(term.rsplit("_", 1)[-1])


def readable_definition(definition: str) -> str:
    """A SUMO definition without its markup: ``&%Term`` references as words
    (``&%AutonomousAgent`` -> "autonomous agent") and ``;;`` comment marks dropped."""
    text = re.sub(r"&%([A-Za-z0-9_]+)", lambda m: _words(m[1].replace("_", " ")), definition)
    return " ".join(text.replace(";;", " ").split())


def concept_names(lemmas: Iterable[str], aliases: Iterable[str], term: str) -> list[str]:
    """The names templates write for a concept: its lemmas and aliases cleaned, one per
    ``normalise_lemma`` form (the first in sorted order), sorted; ``term_words`` if none."""
    names: dict[str, str] = {}
    for name in sorted(clean_lemma(n) for n in [*lemmas, *aliases] if clean_lemma(n)):
        names.setdefault(normalise_lemma(name), name)
    return sorted(names.values()) or [term_words(term)]


def name_keys(names: Iterable[str]) -> list[str]:
    """The keys under which two concepts share a name."""
    return sorted({normalise_lemma(name) for name in names})


def concept_prompts(
    names: Sequence[str],
    definition: str,
    examples: Sequence[str],
    *,
    n_prompts: int,
    behavioral_ratio: float,
    seed: int,
    where: str,
) -> list[tuple[str, str]]:
    """``n_prompts`` (kind, text) pairs for one concept, ranked, distinct as ``normalise_text``
    keys, deterministic for ``seed``: definitional slots take shuffled definitional templates,
    behavioural slots take the shuffled positive ``examples`` first, then behavioural templates.
    The definition is read through ``readable_definition``.

    Raises ``DataError`` naming ``where`` when the concept cannot fill the slots (no definition,
    or fewer distinct candidates than slots).
    """
    definitional, behavioral = template_candidates(
        names, readable_definition(definition), templates=CONCEPT_TEMPLATES
    )
    rng = np.random.default_rng(seed)
    ranked_definitional = [(DEFINITIONAL, text) for text in shuffled(definitional, rng)]
    written = sorted({" ".join(e.split()) for e in examples if isinstance(e, str) and e.strip()})
    ranked_behavioral = [(EXAMPLE, text) for text in shuffled(written, rng)] + [
        (BEHAVIORAL, text) for text in shuffled(behavioral, rng)
    ]
    # slots of one kind are at most n_prompts: only that many candidates can be dealt
    seen = {normalise_text(text) for _, text in ranked_definitional[:n_prompts]}
    distinct = []
    for kind, text in ranked_behavioral:
        if len(distinct) == n_prompts:
            break
        if normalise_text(text) not in seen:
            seen.add(normalise_text(text))
            distinct.append((kind, text))
    return ranked_prompts(
        ranked_definitional,
        distinct,
        n_prompts=n_prompts,
        behavioral_ratio=behavioral_ratio,
        where=where,
        hint="lower n_prompts, or give the concept a definition",
    )


# --------------------------------------------------------------------------------------------
# Prompts of the selected concepts


def select_concepts(concepts: pd.DataFrame, *, pack_layers: Sequence[int]) -> pd.DataFrame:
    """The concepts on ``pack_layers``, in (pack layer, term) order, with their ``names``."""
    chosen = concepts[concepts["pack_layer"].astype(int).isin(list(pack_layers))].copy()
    if chosen.empty:
        present = sorted(set(concepts["pack_layer"].astype(int)))
        raise ParamsError(
            f"no concept on pack layers {list(pack_layers)}; the pack has layers {present}",
            row="concept_prompts.pack_layers",
            rule="pack layers exist",
        )
    chosen["pack_layer"] = chosen["pack_layer"].astype(int)
    chosen["names"] = [
        concept_names(lemmas, aliases, term)
        for lemmas, aliases, term in zip(
            chosen["lemmas"], chosen["aliases"], chosen["term"], strict=True
        )
    ]
    return chosen.sort_values(["pack_layer", "term"]).reset_index(drop=True)


def generate_prompts(
    chosen: pd.DataFrame, *, n_prompts: int, behavioral_ratio: float, seed: int
) -> pd.DataFrame:
    """Ranked prompts of every chosen concept (``select_concepts``): columns prompt_id, concept,
    pack_layer, kind, rank, text; ``prompt_id`` is ``<term>|<rank>``."""
    rows = []
    for concept in chosen.itertuples(index=False):
        ranked = concept_prompts(
            concept.names,
            concept.definition,
            concept.positive_examples,
            n_prompts=n_prompts,
            behavioral_ratio=behavioral_ratio,
            seed=stable_seed(seed, concept.term),
            where=f"{concept.term} ({concept.file})",
        )
        for rank, (kind, text) in enumerate(ranked):
            rows.append(
                (f"{concept.term}|{rank}", concept.term, concept.pack_layer, kind, rank, text)
            )
    columns = ["prompt_id", "concept", "pack_layer", "kind", "rank", "text"]
    return pd.DataFrame(rows, columns=columns)


def link_concept_groups(chosen: pd.DataFrame, prompts: pd.DataFrame) -> dict[str, str]:
    """Concept -> group: concepts sharing a name (``name_keys``) or an identical prompt text
    (``normalise_text``) are one group, as connected components (``link_groups``), named after
    the alphabetically first term."""
    texts = prompts.groupby("concept")["text"].agg(list)
    keys = [
        [f"name:{key}" for key in name_keys(names)]
        + [f"text:{normalise_text(text)}" for text in texts.get(term, [])]
        for term, names in zip(chosen["term"], chosen["names"], strict=True)
    ]
    terms = list(chosen["term"])
    return dict(zip(terms, link_groups(terms, keys), strict=True))


def split_by_concept(
    chosen: pd.DataFrame, groups: dict[str, str], *, fractions: Sequence[float], seed: int
) -> dict[str, str]:
    """Concept -> split: each group in one split, close to ``fractions`` in every pack layer,
    counting concepts (``assign_sized_splits``; a group may span pack layers)."""
    members = pd.DataFrame(
        {"group": chosen["term"].map(groups), "stratum": chosen["pack_layer"].astype(str)}
    )
    sizes = pd.crosstab(members["group"], members["stratum"])
    split_of_group = assign_sized_splits(sizes, fractions, seed=stable_seed(seed, "concept split"))
    return {term: split_of_group[group] for term, group in groups.items()}


def shape_key(text: str, *, templates: TemplateSet = CONCEPT_TEMPLATES) -> str:
    """A prompt's text with its template's variable words (the person a behavioural template
    names, the frame a definitional one opens with) blanked: two prompts of one concept with the
    same shape differ only in those words ("How would a teacher / a stranger explain X?")."""
    key = normalise_text(text)
    for word in sorted((*templates.who, *templates.frames), key=len, reverse=True):
        key = key.replace(normalise_text(word), "\u2026")
    return key


def split_within_concepts(
    prompts: pd.DataFrame, *, fractions: Sequence[float], seed: int
) -> pd.Series:
    """The split of each prompt row when every concept's prompts are dealt over the splits.

    Per concept (in term order) its prompts are grouped by ``shape_key`` (near-copies of one
    template never straddle splits) and ``allocate(n_groups, fractions)`` slots, in a seeded
    order, go to the groups in rank order; a group holding a text (``normalise_text``) met
    before, in another concept, keeps the split that text got there.
    """
    keys = prompts["text"].map(normalise_text)
    shapes = prompts["text"].map(shape_key)
    split_of_text: dict[str, str] = {}
    splits = pd.Series(index=prompts.index, dtype=object)
    for concept, part in prompts.sort_values("rank").groupby("concept", sort=True):
        groups: dict[str, list] = {}
        for index in part.index:
            groups.setdefault(shapes[index], []).append(index)
        fixed = {
            shape: next((split_of_text[keys[i]] for i in rows if keys[i] in split_of_text), None)
            for shape, rows in groups.items()
        }
        quota = dict(zip(SPLITS, allocate(len(groups), fractions), strict=True))
        for split in fixed.values():
            if split is not None:
                quota[split] -= 1
        slots = [split for split in SPLITS for _ in range(max(quota[split], 0))]
        free = iter(shuffled(slots, np.random.default_rng(stable_seed(seed, concept))))
        for shape, rows in groups.items():
            split = fixed[shape] or next(free)
            for index in rows:
                split_of_text.setdefault(keys[index], split)
                splits[index] = split_of_text[keys[index]]
    return splits


def cross_split_shapes(table: pd.DataFrame) -> int:
    """(concept, template shape) pairs whose prompts sit in more than one split (0 when
    ``split_within_concepts`` placed them)."""
    shapes = table["concept"] + "\x1f" + table["text"].map(shape_key)
    return len(cross_split_keys(list(table["split"]), [[s] for s in shapes]))


def build_prompt_table(
    concepts: pd.DataFrame,
    *,
    pack_layers: Sequence[int],
    n_prompts: int,
    behavioral_ratio: float,
    fractions: Sequence[float],
    seed: int,
    unit: str,
    file: str,
) -> pd.DataFrame:
    """The prompt table (``PROMPT_COLUMNS``) of the concepts on ``pack_layers``, split by
    ``unit`` (``"concept"`` or ``"prompt"``, see the module docstring).

    ``concepts`` is a validated pack table (``pack.read_pack(...).concepts``). ``group`` names
    the unit that never straddles splits: the concept group, or (unit ``prompt``) the group of
    identical texts. Raises ``DataError`` (naming ``file``, the table's path) when a text lands
    in two splits, and ``ValueError`` for an unknown ``unit``.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown split unit {unit!r}, expected one of {UNITS}")
    chosen = select_concepts(concepts, pack_layers=pack_layers)
    table = generate_prompts(
        chosen, n_prompts=n_prompts, behavioral_ratio=behavioral_ratio, seed=seed
    )
    if unit == "concept":
        groups = link_concept_groups(chosen, table)
        split_of = split_by_concept(chosen, groups, fractions=fractions, seed=seed)
        table["group"] = table["concept"].map(groups)
        table["split"] = table["concept"].map(split_of)
    else:
        table["split"] = split_within_concepts(table, fractions=fractions, seed=seed)
        text_keys = [[normalise_text(text)] for text in table["text"]]
        table["group"] = link_groups(list(table["prompt_id"]), text_keys)
    check_disjoint_texts(table, text_column="text", id_column="prompt_id", file=file)
    return table[PROMPT_COLUMNS]


# --------------------------------------------------------------------------------------------
# Counts


def shared_lemma_counts(table: pd.DataFrame, chosen: pd.DataFrame) -> dict[str, int]:
    """``n_cross_split_lemmas``: name keys found in two splits (0 with unit ``concept``; with
    unit ``prompt`` every concept's own names are in every split by design).
    ``n_cross_split_lemmas_between_concepts``: name keys that two *different* concepts carry
    into two different splits."""
    names = dict(zip(chosen["term"], chosen["names"].map(name_keys), strict=True))
    row_keys = [names[concept] for concept in table["concept"]]
    places: dict[str, set[tuple[str, str]]] = {}
    for concept, split, keys in zip(table["concept"], table["split"], row_keys, strict=True):
        for key in keys:
            places.setdefault(key, set()).add((concept, split))
    between = sum(
        any(c1 != c2 and s1 != s2 for c1, s1 in where for c2, s2 in where)
        for where in places.values()
    )
    return {
        "n_cross_split_lemmas": len(cross_split_keys(list(table["split"]), row_keys)),
        "n_cross_split_lemmas_between_concepts": int(between),
    }


def prompt_counts(table: pd.DataFrame, chosen: pd.DataFrame) -> dict[str, int]:
    """Flat counts of a prompt table: concepts, prompts and concepts per split and kind, groups,
    concepts without lemmas (named by their term) or definition, and shared-lemma counts."""
    bare = chosen["lemmas"].map(len).eq(0) & chosen["aliases"].map(len).eq(0)
    counts = {
        "n_concepts": len(chosen),
        "n_prompts": len(table),
        "n_groups": int(table["group"].nunique()),
        "n_concepts_without_lemmas": int(bare.sum()),
        "n_concepts_without_definition": int(
            (~chosen["definition"].map(lambda d: isinstance(d, str) and bool(d.strip()))).sum()
        ),
        "n_concepts_with_examples": int(chosen["positive_examples"].map(len).gt(0).sum()),
    }
    for split in SPLITS:
        rows = table[table["split"] == split]
        counts[f"{split}/n_prompts"] = len(rows)
        counts[f"{split}/n_concepts"] = int(rows["concept"].nunique())
    for kind, n in table["kind"].value_counts().sort_index().items():
        counts[f"kind_{kind}/n_prompts"] = int(n)
    counts["cross_split_identical_texts"] = len(
        cross_split_keys(list(table["split"]), [[normalise_text(x)] for x in table["text"]])
    )
    counts["cross_split_template_shapes"] = cross_split_shapes(table)
    return {**counts, **shared_lemma_counts(table, chosen)}


# --------------------------------------------------------------------------------------------
# Negatives


def parents_map(concepts: pd.DataFrame) -> dict[str, list[str]]:
    """Term -> its parent terms (the concept files' ``parent_concepts``)."""
    return {
        term: list(parents) if isinstance(parents, list) else []
        for term, parents in zip(concepts["term"], concepts["parent_concepts"], strict=True)
    }


def siblings(parents: dict[str, list[str]], *, among: Iterable[str]) -> dict[str, set[str]]:
    """Concept -> the concepts of ``among`` sharing a parent with it; concepts without parents
    (the pack's roots) count as siblings of each other."""
    members = sorted(set(among))
    children: dict[str, set[str]] = {}
    for term in members:
        for parent in parents.get(term) or ["(root)"]:
            children.setdefault(parent, set()).add(term)
    return {
        term: set().union(*(children[p] for p in parents.get(term) or ["(root)"])) - {term}
        for term in members
    }


def children_map(parents: dict[str, list[str]]) -> dict[str, list[str]]:
    """Term -> its child terms (the inverse of ``parents_map``)."""
    children: dict[str, list[str]] = {}
    for child, ps in parents.items():
        for parent in ps:
            children.setdefault(parent, []).append(child)
    return children


def lineage(parents: dict[str, list[str]], children: dict[str, list[str]], term: str) -> set[str]:
    """Every ancestor and descendant of ``term`` (a concept's own kind: never its negative)."""
    found: set[str] = set()
    for step in (parents, children):
        todo = list(step.get(term, []))
        while todo:
            node = todo.pop()
            if node not in found:
                found.add(node)
                todo.extend(step.get(node, []))
    return found


def concept_negatives(
    table: pd.DataFrame,
    concepts: pd.DataFrame,
    *,
    targets: Iterable[str],
    random_ratio: float,
    seed: int,
) -> pd.DataFrame:
    """The negatives of each target concept in each split it has prompts in (``NEGATIVE_COLUMNS``).

    ``negative`` is ``sibling`` (every prompt, in that split, of a concept sharing a parent:
    hard negatives, in table order) or ``random`` (``ceil(random_ratio x n)`` prompts of other
    concepts in that split, n = the concept's own prompts there, in a seeded draw order; fewer
    when fewer exist). Never a prompt of the concept itself, nor one with the text of one of its
    own prompts; random draws also skip its ancestors and descendants (``lineage``).
    Deterministic for ``seed``. ``concepts`` (the pack table) gives the parents.
    """
    parents = parents_map(concepts)
    children = children_map(parents)
    owner_codes, owner_names = pd.factorize(table["concept"])
    code_of = {name: code for code, name in enumerate(owner_names)}
    key_codes, key_names = pd.factorize(table["text"].map(normalise_text))
    family = siblings(parents, among=owner_names)
    own_of = pd.Series(key_codes).groupby(owner_codes).unique().to_dict()
    wanted = [term for term in sorted(set(targets)) if term in code_of]
    excluded = np.zeros(len(owner_names), dtype=bool)  # scratch: concepts a draw skips
    own_keys = np.zeros(len(key_names), dtype=bool)  # scratch: the target's own texts
    parts = []
    for split in SPLITS:
        in_split = np.flatnonzero(table["split"].to_numpy() == split)
        owners, keys = owner_codes[in_split], key_codes[in_split]
        ids = table["prompt_id"].to_numpy()[in_split]
        n_own = np.bincount(owners, minlength=len(owner_names))
        for term in wanted:
            code = code_of[term]
            if n_own[code] == 0:
                continue
            own_keys[own_of[code]] = True
            usable = ~own_keys[keys]
            own_keys[own_of[code]] = False
            kin = [code_of[t] for t in family[term]]
            excluded[kin] = True
            hard = excluded[owners] & usable
            skip = [code, *(code_of[t] for t in lineage(parents, children, term) if t in code_of)]
            excluded[skip] = True
            other = ~excluded[owners] & usable
            excluded[:] = False
            n_random = math.ceil(random_ratio * int(n_own[code]))
            rng = np.random.default_rng(stable_seed(seed, term, split))
            drawn = rng.choice(
                np.flatnonzero(other), size=min(n_random, int(other.sum())), replace=False
            )
            for kind, chosen in (("sibling", ids[hard]), ("random", ids[drawn])):
                parts.append((term, split, kind, chosen))
    return pd.DataFrame(
        {
            "concept": [term for term, _, _, chosen in parts for _ in chosen],
            "split": [split for _, split, _, chosen in parts for _ in chosen],
            "prompt_id": [i for *_, chosen in parts for i in chosen],
            "negative": [kind for _, _, kind, chosen in parts for _ in chosen],
        },
        columns=NEGATIVE_COLUMNS,
    )


CONCEPT_TABLE_COLUMNS = ["concept", "pack_layer", "parents", "synsets", "canonical_synset"]


def concept_table(chosen: pd.DataFrame) -> pd.DataFrame:
    """One row per selected concept (``CONCEPT_TABLE_COLUMNS``): what the trainer, evaluation
    and the lens pack need of the pack, lists joined with ``|``."""
    return pd.DataFrame(
        {
            "concept": chosen["term"],
            "pack_layer": chosen["pack_layer"].astype(int),
            "parents": chosen["parent_concepts"].map("|".join),
            "synsets": chosen["synsets"].map("|".join),
            "canonical_synset": chosen["canonical_synset"].fillna(""),
        }
    )[CONCEPT_TABLE_COLUMNS]
