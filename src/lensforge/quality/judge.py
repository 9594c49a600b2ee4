"""Judging outputs locally: which concept an output is about, and how relevant it is to one.

``Judge`` is the interface: given items (output, the concept to grade against, the concept the
prompt was written for, the candidate concepts), it returns per item the inferred topic (one of
the candidates) and a 1-5 relevance grade. ``EmbeddingJudge`` implements it with a sentence
encoder; an LLM judge would implement the same method by asking its two questions.

The embedding judge:

- embeds each output and every candidate's definition (L2-normalised mean-pooled token states,
  the all-MiniLM-L6-v2 recipe); the *inferred topic* is the candidate with the nearest definition
  (cosine), so topic accuracy has a chance level of 1 / number of candidates;
- the *relevance* of an output to a concept is the cosine to that concept's definition, cut into
  grades 1-5 at ``edges`` (grade = 1 + number of edges at or below the cosine);
- an output with no visible character gets grade 1 and no topic (an LLM judge would say as
  much), instead of whatever an encoder makes of an empty string.

Calibration on the pack (``calibrate``): cosines are not comparable across encoders, so the edges
come from the pack itself. For up to ``n_concepts`` concepts with written positive examples
(``training_hints.positive_examples``, seeded draw), *related* pairs are (definition, one of its
own examples) and *unrelated* pairs (definition, an example of another concept drawn at random).
The calibrated scale puts the median unrelated cosine at 0 and the median related cosine at 1;
``grade_levels`` (params) are the lower edges of grades 2-5 on that scale. With the defaults
(0.25, 0.5, 0.75, 1.0), grade 5 means "as close to the definition as a typical example the pack's
authors wrote for it", grade 1 "no closer than a quarter of the way up from unrelated text".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from lensforge.core import sequences
from lensforge.core.errors import DataError
from lensforge.core.params import JudgeParams
from lensforge.core.splits import stable_seed

Embed = Callable[[Sequence[str]], torch.Tensor]  # texts -> (n, d) L2-normalised rows
N_GRADES = 5


@dataclasses.dataclass(frozen=True)
class JudgeItem:
    output: str
    concept: str  # the concept relevance is graded against
    target: str  # the concept the prompt was written for (the right topic)
    candidates: tuple[str, ...]  # concepts the topic is inferred among (target included)


@dataclasses.dataclass(frozen=True)
class Judgment:
    topic: str  # inferred topic, "" when none could be inferred
    relevance: int  # 1-5
    score: float  # the judge's raw relevance score (cosine for the embedding judge)


class Judge(Protocol):
    name: str

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]: ...


class SentenceEncoder:
    """Texts -> L2-normalised mean-pooled vectors of an HF encoder folder (MiniLM's recipe);
    each distinct text is encoded once."""

    def __init__(self, location: str, *, max_length: int, batch_size: int):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(location)
        self.model = AutoModel.from_pretrained(location, dtype=torch.float32).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        todo = sorted({t for t in texts if t not in self._cache})
        pad_id = sequences.pad_id_of(self.tokenizer)
        with torch.inference_mode():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                ids = sequences.tokenize(self.tokenizer, chunk, max_length=self.max_length).ids
                batch = sequences.pad_batch(ids, pad_id=pad_id)
                hidden = self.model(**batch).last_hidden_state  # (batch, seq, d)
                vectors = sequences.masked_mean(hidden, batch["attention_mask"])  # (batch, d)
                vectors = torch.nn.functional.normalize(vectors, dim=1)
                self._cache.update(zip(chunk, vectors, strict=True))
        return torch.stack([self._cache[t] for t in texts])  # (n, d)


@dataclasses.dataclass(frozen=True)
class Calibration:
    unrelated_cosine: float  # median cosine of (definition, another concept's example)
    related_cosine: float  # median cosine of (definition, its own example)
    n_pairs: int  # pairs of each kind

    def edges(self, levels: Sequence[float]) -> tuple[float, ...]:
        """Absolute cosine edges of grades 2-5 for ``levels`` on the calibrated scale."""
        span = self.related_cosine - self.unrelated_cosine
        return tuple(self.unrelated_cosine + level * span for level in levels)


def calibrate(
    embed: Embed,
    definitions: Mapping[str, str],
    examples: Mapping[str, Sequence[str]],
    *,
    n_concepts: int,
    seed: int,
) -> Calibration:
    """Anchor the grade scale on the pack (module doc). ``examples``: concept -> its written
    positive examples. Raises ``DataError`` with fewer than two concepts that have a definition
    and an example, or when own examples are not closer than others' (the scale would invert)."""
    usable = sorted(c for c, texts in examples.items() if texts and definitions.get(c))
    if len(usable) < 2:
        raise DataError(
            "calibration needs at least two concepts with a definition and a positive example",
            rule="calibration pairs",
        )
    rng = np.random.default_rng(stable_seed(seed, "calibration"))
    chosen = [usable[i] for i in sorted(rng.permutation(len(usable))[:n_concepts])]
    own = [examples[c][int(rng.integers(len(examples[c])))] for c in chosen]
    shift = rng.integers(1, len(chosen), size=len(chosen)) if len(chosen) > 1 else [0]
    other = [own[(i + int(k)) % len(chosen)] for i, k in enumerate(shift)]
    defs = embed([definitions[c] for c in chosen])  # (n, d)
    related = (defs * embed(own)).sum(dim=1)  # (n,)
    unrelated = (defs * embed(other)).sum(dim=1)  # (n,)
    calibration = Calibration(
        float(unrelated.median()), float(related.median()), n_pairs=len(chosen)
    )
    if calibration.related_cosine <= calibration.unrelated_cosine:
        raise DataError(
            f"the encoder puts own examples no closer to a definition than other concepts' "
            f"({calibration.related_cosine:.3f} <= {calibration.unrelated_cosine:.3f}): its "
            f"cosines cannot grade relevance",
            rule="related closer than unrelated",
        )
    return calibration


def relevance_grade(score: float, *, edges: Sequence[float]) -> int:
    """1 + the number of ``edges`` at or below ``score`` (edges increasing, 4 of them)."""
    return 1 + sum(score >= edge for edge in edges)


def topic_candidates(
    target: str, siblings: Sequence[str], *, others: Sequence[str], n_random: int, seed: int
) -> tuple[str, ...]:
    """``target``, its siblings and ``n_random`` concepts of ``others`` (neither the target nor
    a sibling), drawn with an RNG seeded by the target; sorted."""
    fixed = {target, *siblings}
    pool = sorted(set(others) - fixed)
    rng = np.random.default_rng(stable_seed(seed, "candidates", target))
    extra = [pool[i] for i in rng.permutation(len(pool))[:n_random]]
    return tuple(sorted(fixed | set(extra)))


class EmbeddingJudge:
    """The ``Judge`` of the module doc over an ``embed`` function and concept definitions."""

    name = "embedding"

    def __init__(self, embed: Embed, definitions: Mapping[str, str], *, edges: Sequence[float]):
        if len(edges) != N_GRADES - 1 or any(
            b <= a for a, b in zip(edges, edges[1:], strict=False)
        ):
            raise ValueError(f"edges must be {N_GRADES - 1} increasing numbers, got {edges}")
        self.embed = embed
        self.definitions = dict(definitions)
        self.edges = tuple(edges)

    def _definition_vectors(self, concepts: Sequence[str]) -> dict[str, torch.Tensor]:
        missing = sorted(c for c in concepts if not self.definitions.get(c))
        if missing:
            raise DataError(
                f"no definition for concept(s) {missing[:10]}", row=missing[0], rule="definition"
            )
        vectors = self.embed([self.definitions[c] for c in concepts])
        return dict(zip(concepts, vectors, strict=True))

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        needed = sorted({c for it in items for c in (it.concept, it.target, *it.candidates)})
        defs = self._definition_vectors(needed)
        outputs = self.embed([it.output for it in items])  # (n, d)
        judgments = []
        for item, vector in zip(items, outputs, strict=True):
            if not item.output.strip():
                judgments.append(Judgment(topic="", relevance=1, score=float("nan")))
                continue
            candidates = torch.stack([defs[c] for c in item.candidates])  # (k, d)
            topic = item.candidates[int((candidates @ vector).argmax())]
            score = float(defs[item.concept] @ vector)
            grade = relevance_grade(score, edges=self.edges)
            judgments.append(Judgment(topic=topic, relevance=grade, score=score))
        return judgments


def judgments_frame(items: Sequence[JudgeItem], judgments: Sequence[Judgment]) -> pd.DataFrame:
    """Columns ``topic``, ``topic_correct``, ``n_candidates``, ``relevance``, ``relevance_score``."""
    return pd.DataFrame(
        {
            "topic": [j.topic for j in judgments],
            "topic_correct": [j.topic == it.target for it, j in zip(items, judgments, strict=True)],
            "n_candidates": [len(it.candidates) for it in items],
            "relevance": [j.relevance for j in judgments],
            "relevance_score": [j.score for j in judgments],
        }
    )


def sample_items(
    samples: pd.DataFrame,
    *,
    siblings: Mapping[str, Sequence[str]],
    others: Sequence[str],
    n_random: int,
    seed: int,
) -> list[JudgeItem]:
    """One ``JudgeItem`` per sample (``samples``: output, concept, prompt_concept): relevance to
    the sampled concept, topic inferred among the prompt's own concept, its siblings and
    ``n_random`` of ``others`` (``topic_candidates``)."""
    candidates = {
        target: topic_candidates(
            target, sorted(siblings.get(target, ())), others=others, n_random=n_random, seed=seed
        )
        for target in sorted(set(samples["prompt_concept"]))
    }
    return [
        JudgeItem(output=output, concept=concept, target=target, candidates=candidates[target])
        for output, concept, target in zip(
            samples["output"], samples["concept"], samples["prompt_concept"], strict=True
        )
    ]


def make_judge(
    config: JudgeParams,
    location: str,
    *,
    definitions: Mapping[str, str],
    examples: Mapping[str, Sequence[str]],
    seed: int,
) -> tuple[Judge, dict[str, float | int]]:
    """The judge ``config.kind`` names, calibrated on the pack, and its calibration numbers
    (for the metrics). ``location``: the encoder folder or HF id."""
    if config.kind != "embedding":
        raise ValueError(f"unknown judge kind {config.kind!r}; expected 'embedding'")
    embed = SentenceEncoder(location, max_length=config.max_length, batch_size=config.batch_size)
    calibration = calibrate(
        embed, definitions, examples, n_concepts=config.calibration_concepts, seed=seed
    )
    made = EmbeddingJudge(embed, definitions, edges=calibration.edges(config.grade_levels))
    numbers = {
        "calibration_pairs": calibration.n_pairs,
        "calibration_unrelated_cosine": round(calibration.unrelated_cosine, 4),
        "calibration_related_cosine": round(calibration.related_cosine, 4),
    }
    return made, numbers
