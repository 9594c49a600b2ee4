"""Prompt templates and the machinery that ranks them, for every branch (pure; no file I/O).

A *template set* holds definitional templates (``{lemma}``, ``{definition}``, ``{frame}``) and
behavioural templates (``{lemma}``, ``{who}``). ``template_candidates`` fills a set with the
lemmas and definition of one entry (a synset of a simplex pole, a concept of a concept pack);
``ranked_prompts`` deals the shuffled candidates along ``kind_schedule``, so that "k prompts per
entry" downstream means the rows with ``rank < k`` and every prefix keeps ``behavioral_ratio``
(the S-tier training-strategy note keeps a 60 / 40 behavioural / definitional mix).

``STATE_TEMPLATES`` are the simplex pool's templates (psychological states: "felt {lemma}");
a branch with other entries brings its own set and shares the machinery.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np

from lensforge.core.errors import DataError

DEFINITIONAL = "definitional"
BEHAVIORAL = "behavioral"


@dataclasses.dataclass(frozen=True)
class TemplateSet:
    """Definitional templates with the frames they may open with, behavioural templates with the
    people they may name."""

    definitional: tuple[str, ...]
    frames: tuple[str, ...]
    behavioral: tuple[str, ...]
    who: tuple[str, ...]


# {lemma} is one of the names (a synset's lemma, a concept's lemma or alias); {definition} its
# definition, first letter lowered; {frame} one of the set's frames. Shared by every template set.
DEFINITIONAL_TEMPLATES = (
    "{lemma}: {definition}.",
    "The word '{lemma}' means {definition}.",
    "What is {lemma}? It is {definition}.",
    "{frame}, {lemma} refers to {definition}.",
    "{frame}, the term {lemma} names {definition}.",
    "Define {lemma}. Answer: {definition}.",
    "A short entry for '{lemma}': {definition}.",
    "Explain the concept of {lemma}: {definition}.",
    "{frame}, people use '{lemma}' for {definition}.",
    "Concept: {lemma}. Meaning: {definition}.",
)

# The people a behavioural template may name, shared by every template set.
WHO = (
    "someone",
    "a close friend",
    "a stranger",
    "a child",
    "a colleague",
    "an old man",
    "a young woman",
    "a teacher",
    "a neighbour",
    "a nurse",
)

# The simplex (psychological state) set.
STATE_TEMPLATES = TemplateSet(
    definitional=DEFINITIONAL_TEMPLATES,
    frames=(
        "In psychology",
        "In everyday language",
        "In a dictionary",
        "In plain words",
        "Put simply",
        "Strictly speaking",
    ),
    behavioral=(
        "Describe a moment when {who} felt {lemma}.",
        "Write one sentence in which {who} shows {lemma}.",
        "How does {who} behave when experiencing {lemma}?",
        "What would you notice if {who} were full of {lemma}?",
        "Tell a short story about {who} acting out of {lemma}.",
        "Describe the body language of {who} in a state of {lemma}.",
        "How might {lemma} change the choices {who} makes?",
        "Imagine {who} overwhelmed by {lemma}. What happens next?",
        "Give an everyday example of {lemma} in {who}.",
        "Write a diary line by {who} about {lemma}.",
        "What does {lemma} sound like when {who} speaks?",
        "Show {lemma} through what {who} does, not what they say.",
    ),
    who=WHO,
)


def clean_lemma(lemma: str) -> str:
    """A lemma as templates write it: underscores as spaces, whitespace runs collapsed."""
    return " ".join(lemma.replace("_", " ").split())


def normalise_lemma(lemma: str) -> str:
    """A lemma as the templates write it (underscores as spaces, whitespace collapsed), casefolded:
    the key under which two entries share a lemma (``Joy`` and ``joy`` make the same prompt once
    texts are compared with ``core.splits.normalise_text``)."""
    return clean_lemma(lemma).casefold()


def clean_definition(definition: str) -> str:
    """A definition as templates write it: whitespace collapsed, trailing punctuation dropped,
    first letter lowered (it follows "means", "It is", ...)."""
    text = " ".join(definition.split()).rstrip(".;: ")
    return text[:1].lower() + text[1:] if text else text


def template_candidates(
    lemmas: Sequence[str], definition: str, *, templates: TemplateSet
) -> tuple[list[str], list[str]]:
    """All distinct (definitional, behavioural) prompts ``templates`` can make, each sorted.

    A blank definition makes no definitional prompt (a template would write "means ."); blank
    lemmas are skipped.
    """
    words = sorted({clean_lemma(lemma) for lemma in lemmas if clean_lemma(lemma)})
    meaning = clean_definition(definition)
    definitional = {
        template.format(lemma=lemma, definition=meaning, frame=frame)
        for template, lemma, frame in itertools.product(
            templates.definitional, words, templates.frames
        )
        if meaning
    }
    behavioral = {
        template.format(lemma=lemma, who=who)
        for template, lemma, who in itertools.product(templates.behavioral, words, templates.who)
    }
    return sorted(definitional), sorted(behavioral)


def kind_schedule(n_prompts: int, behavioral_ratio: float) -> list[str]:
    """Kinds for ranks 0..n-1 such that every prefix holds round-down ``behavioral_ratio`` behavioural.

    >>> kind_schedule(5, 0.6)
    ['definitional', 'behavioral', 'definitional', 'behavioral', 'behavioral']
    """
    kinds = []
    for rank in range(n_prompts):
        new_behavioral = math.floor((rank + 1) * behavioral_ratio + 1e-9) > math.floor(
            rank * behavioral_ratio + 1e-9
        )
        kinds.append(BEHAVIORAL if new_behavioral else DEFINITIONAL)
    return kinds


def shuffled(candidates: Sequence[str], rng: np.random.Generator) -> list[str]:
    """``candidates`` in the order of one ``rng.permutation`` draw."""
    return [candidates[i] for i in rng.permutation(len(candidates))]


def ranked_prompts(
    definitional: Sequence[tuple[str, str]],
    behavioral: Sequence[tuple[str, str]],
    *,
    n_prompts: int,
    behavioral_ratio: float,
    where: str,
    hint: str,
) -> list[tuple[str, str]]:
    """``n_prompts`` (kind, text) pairs dealt along ``kind_schedule``: each definitional slot takes
    the next of ``definitional``, each behavioural slot the next of ``behavioral`` (both in
    preference order; a behavioural slot may hold another kind, e.g. a written example).

    Raises ``DataError`` naming ``where`` (the entry) when a pool is too short; ``hint`` says
    which setting to change.
    """
    kinds = kind_schedule(n_prompts, behavioral_ratio)
    pools = {DEFINITIONAL: definitional, BEHAVIORAL: behavioral}
    for kind, pool in pools.items():
        needed = kinds.count(kind)
        if needed > len(pool):
            raise DataError(
                f"can make only {len(pool)} distinct {kind} prompts, {needed} are needed ({hint})",
                row=where,
                rule="enough distinct prompts",
            )
    taken = dict.fromkeys(pools, 0)
    ranked = []
    for kind in kinds:
        ranked.append(pools[kind][taken[kind]])
        taken[kind] += 1
    return ranked
