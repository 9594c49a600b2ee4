"""Lenses read while the model runs: every token of a text scored by the trained lenses.

``lensforge score`` and ``lensforge generate`` (cli) are thin wrappers around this module. It is a
consumer of both lens branches (simplex lenses from ``models/lenses``, concept lenses from
``models/concept_lenses``), like the stages, so no branch imports another.

A token's vector is what the activation cache would hold for the text ending at that token: the
residual stream after the lens's layer at that position (``last`` pooling), or the mean of the
stream up to it (``mean``). So the score of a pool prompt's last token equals what ``evaluate``
computes from that prompt's cached vector (up to the cache's storage precision).

Lenses are refused (``ArtifactError``) when their card names another subject model (the sha256 of
``models/subject/card.json``) or another activation cache (``cache_key``) than the current one,
or lacks those fields: a lens is only read on the model, layer and settings it was trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lensforge.activations import cache, extraction, subject
from lensforge.concepts import artifacts as concept_io
from lensforge.concepts import training as concept_training
from lensforge.core import artifacts, paths
from lensforge.core.errors import ArtifactError
from lensforge.lenses import models
from lensforge.lenses.hatcat import POLES

GRADUATED = "F"  # concept lenses of this tier did not graduate and are not read


@dataclasses.dataclass
class SimplexReader:
    """The lenses (seed -> lens) of one simplex and where they read the model."""

    simplex: str
    layer: int
    pooling: str
    lenses: dict[int, nn.Module]


@dataclasses.dataclass
class ConceptReader:
    """Every graduated concept lens, stacked, and where they read the model."""

    layer: int
    pooling: str
    weights: concept_training.LensStack
    concepts: list[str]


def _check_card(card: dict, *, where: Path, model_card_sha256: str, cache_key: str) -> None:
    missing = [k for k in ("layer", "pooling", "cache_key", "model_card_sha256") if k not in card]
    if missing:
        raise ArtifactError(
            f"lens card lacks {missing}: retrain it", path=where, rule="card names its model"
        )
    if card["model_card_sha256"] != model_card_sha256:
        raise ArtifactError(
            f"lens was trained on another subject model (model card sha256 "
            f"{card['model_card_sha256'][:12]}..., current {model_card_sha256[:12]}...): "
            "retrain it or switch back to that model",
            path=where,
            rule="lens trained on this model",
        )
    if card["cache_key"] != cache_key:
        raise ArtifactError(
            f"lens was trained on another activation cache (cache key {card['cache_key'][:12]}..., "
            f"current {cache_key[:12]}...; layers, pooling, dtype or prompts changed): rerun train",
            path=where,
            rule="lens trained on this cache",
        )


def load_simplex_readers(
    root: Path, *, simplexes: Sequence[str] | None = None, seed: int | None = None
) -> list[SimplexReader]:
    """The simplex lenses under ``root`` (all simplexes, or ``simplexes``; every seed, or only
    ``seed``), each hash-checked and checked against the current model and cache."""
    model_sha = artifacts.file_sha256(
        paths.under(root, paths.SUBJECT_MODEL_DIR) / paths.MODEL_CARD_NAME
    )
    cache_key = cache.read_manifest(paths.under(root, paths.ACTIVATIONS_DIR))["cache_key"]
    lenses_root = paths.under(root, paths.LENSES_DIR)
    found: dict[str, SimplexReader] = {}
    for card_path in sorted(lenses_root.glob(f"*/seed_*/{models.CARD_NAME}")):
        lens, card = models.load_lens(card_path.parent)
        if simplexes is not None and card.get("simplex") not in simplexes:
            continue
        if seed is not None and card.get("seed") != seed:
            continue
        _check_card(card, where=card_path, model_card_sha256=model_sha, cache_key=cache_key)
        reader = found.setdefault(
            card["simplex"], SimplexReader(card["simplex"], card["layer"], card["pooling"], {})
        )
        if (reader.layer, reader.pooling) != (card["layer"], card["pooling"]):
            raise ArtifactError(
                f"the lenses of {card['simplex']!r} read different layers or poolings",
                path=card_path,
                rule="one layer per simplex",
            )
        reader.lenses[card["seed"]] = lens
    wanted = set(simplexes) if simplexes is not None else None
    if not found or (wanted is not None and wanted - set(found)):
        missing = sorted(wanted - set(found)) if wanted else "any"
        raise ArtifactError(
            f"no trained lens for {missing} (seed {seed if seed is not None else 'any'}): run "
            "the train stage",
            path=lenses_root,
            rule="lenses exist",
        )
    return [found[name] for name in sorted(found)]


def load_concept_reader(root: Path) -> ConceptReader:
    """The graduated concept lenses under ``root``, checked like the simplex lenses."""
    lens_dir = paths.under(root, paths.CONCEPT_LENSES_DIR)
    weights, records, card = concept_io.load_lenses(lens_dir)
    model_sha = artifacts.file_sha256(
        paths.under(root, paths.SUBJECT_MODEL_DIR) / paths.MODEL_CARD_NAME
    )
    cache_key = cache.read_manifest(paths.under(root, paths.CONCEPT_ACTIVATIONS_DIR))["cache_key"]
    _check_card(
        card,
        where=lens_dir / paths.CONCEPT_CARD_NAME,
        model_card_sha256=model_sha,
        cache_key=cache_key,
    )
    keep = torch.as_tensor((records["tier"] != GRADUATED).to_numpy())
    graduated = concept_training.LensStack(
        kind=weights.kind,
        params={name: tensor[keep] for name, tensor in weights.params.items()},
        feature_mean=weights.feature_mean,
        feature_std=weights.feature_std,
    )
    concepts = records.loc[keep.numpy(), "concept"].tolist()
    return ConceptReader(card["layer"], card["pooling"], graduated, concepts)


def token_vectors(hidden: torch.Tensor, *, pooling: str) -> torch.Tensor:
    """Per token, the vector the cache would hold for the text ending there, (seq, d_model):
    the stream at that token (``last``) or the mean of the stream up to it (``mean``)."""
    if pooling == "last":
        return hidden
    if pooling == "mean":
        counts = torch.arange(1, len(hidden) + 1, dtype=hidden.dtype)[:, None]  # (seq, 1)
        return hidden.cumsum(dim=0) / counts
    raise ValueError(f"unknown pooling {pooling!r}")


@dataclasses.dataclass
class Scored:
    """One text's tokens and, per simplex, pole probabilities per token (seq, 3) averaged over
    the seeds read; per token the top concepts (name, probability), when concept lenses are read."""

    tokens: list[str]
    simplexes: dict[str, torch.Tensor]
    seeds: dict[str, list[int]]
    concepts: list[list[tuple[str, float]]] | None


class Scorer:
    """The subject model cut after the deepest layer any reader needs, and the readers."""

    def __init__(
        self,
        cut: extraction.CutModel,
        tokenizer,
        readers: list[SimplexReader],
        *,
        concepts: ConceptReader | None = None,
        top_k: int = 3,
    ):
        needed = {r.layer for r in readers} | ({concepts.layer} if concepts else set())
        if not needed <= set(cut.layers):
            raise ValueError(f"the cut model captures {cut.layers}, the readers need {needed}")
        self.cut, self.tokenizer = cut, tokenizer
        self.readers = readers
        self.concepts = concepts
        self.top_k = top_k

    @classmethod
    def load(
        cls,
        root: Path,
        readers: list[SimplexReader],
        *,
        concepts: ConceptReader | None = None,
        top_k: int = 3,
        compute_dtype: str = "float32",
    ) -> Scorer:
        """The subject model under ``root`` cut after the deepest layer the readers need."""
        layers = sorted({r.layer for r in readers} | ({concepts.layer} if concepts else set()))
        cut, tokenizer, _ = extraction.load_cut(
            paths.under(root, paths.SUBJECT_MODEL_DIR), layers=layers, compute_dtype=compute_dtype
        )
        return cls(cut, tokenizer, readers, concepts=concepts, top_k=top_k)

    def hidden(self, token_ids: Sequence[int]) -> dict[int, torch.Tensor]:
        """layer -> the residual stream (seq, d_model) of one token sequence."""
        input_ids = torch.tensor([list(token_ids)])  # (1, seq)
        with torch.inference_mode():
            captured = self.cut(input_ids, torch.ones_like(input_ids))
        return {layer: hidden[0].float() for layer, hidden in captured.items()}

    def read(self, hidden: dict[int, torch.Tensor], tokens: list[str]) -> Scored:
        """Score every token of one sequence whose streams are ``hidden``."""
        simplexes = {}
        with torch.inference_mode():
            for reader in self.readers:
                x = token_vectors(hidden[reader.layer], pooling=reader.pooling)  # (seq, d)
                probs = [models.pole_probabilities(lens, x) for lens in reader.lenses.values()]
                simplexes[reader.simplex] = torch.stack(probs).mean(dim=0)  # (seq, 3)
            concepts = None
            if self.concepts is not None and self.concepts.concepts:
                x = token_vectors(hidden[self.concepts.layer], pooling=self.concepts.pooling)
                probs = concept_training.score(self.concepts.weights, x)  # (seq, n_concepts)
                top = probs.topk(min(self.top_k, probs.shape[1]), dim=1)
                concepts = [
                    [(self.concepts.concepts[i], float(p)) for p, i in zip(ps, ids, strict=True)]
                    for ps, ids in zip(top.values.tolist(), top.indices.tolist(), strict=True)
                ]
        seeds = {r.simplex: sorted(r.lenses) for r in self.readers}
        return Scored(tokens, simplexes, seeds, concepts)

    def token_strings(self, token_ids: Sequence[int]) -> list[str]:
        return [self.tokenizer.decode([token]) for token in token_ids]

    def score(self, text: str) -> Scored:
        """Every token of ``text`` (special tokens added as the extractor adds them)."""
        token_ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        return self.read(self.hidden(token_ids), self.token_strings(token_ids))


def generate(
    root: Path, scorer: Scorer, prompt: str, *, max_new_tokens: int, compute_dtype: str
) -> tuple[Scored, int]:
    """Greedy continuation of ``prompt`` by the full subject model, then every token (prompt and
    generated) scored by ``scorer``; returns the scores and the number of prompt tokens."""
    loaded = subject.load_for_extraction(
        paths.under(root, paths.SUBJECT_MODEL_DIR),
        dtype=extraction.COMPUTE_DTYPES[compute_dtype],
    )
    inputs = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=True)
    with torch.inference_mode():
        out = loaded.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id,
        )
    token_ids = out[0].tolist()
    scored = scorer.read(scorer.hidden(token_ids), scorer.token_strings(token_ids))
    return scored, inputs["input_ids"].shape[1]


def as_table(scored: Scored, *, first_generated: int | None = None) -> str:
    """A fixed-width table: one line per token, per simplex the three pole probabilities and the
    argmax pole, then the top concepts. ``first_generated`` marks generated tokens with ``>``."""
    header = ["#", "token"]
    for simplex in scored.simplexes:
        header += [f"{simplex[:14]} {pole[:3]}" for pole in POLES] + ["pole"]
    if scored.concepts is not None:
        header.append("top concepts")
    lines = []
    for t, token in enumerate(scored.tokens):
        mark = ">" if first_generated is not None and t >= first_generated else " "
        cells = [f"{mark}{t}", repr(token)[1:-1][:16]]
        for probs in scored.simplexes.values():
            cells += [f"{p:.2f}" for p in probs[t].tolist()]
            cells.append(POLES[int(probs[t].argmax())])
        if scored.concepts is not None:
            cells.append(", ".join(f"{name} {p:.2f}" for name, p in scored.concepts[t]))
        lines.append(cells)
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    render = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in lines
    ]
    head = "  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))
    return "\n".join([head, "-" * len(head), *render])


def as_json(scored: Scored, *, text: str, first_generated: int | None = None) -> dict:
    """The scores as plain JSON values."""
    out = {
        "text": text,
        "tokens": scored.tokens,
        "poles": list(POLES),
        "seeds": scored.seeds,
        "simplexes": {name: probs.tolist() for name, probs in scored.simplexes.items()},
    }
    if scored.concepts is not None:
        out["top_concepts"] = [[[name, p] for name, p in top] for top in scored.concepts]
    if first_generated is not None:
        out["first_generated_token"] = first_generated
    return out


def read_texts(path: Path) -> list[str]:
    """One text per non-empty line of ``path``."""
    texts = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise ArtifactError("no text to score", path=path, rule="one text per line")
    return texts
