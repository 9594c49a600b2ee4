"""What the subject model writes about each sampled concept, and its activations meanwhile.

``sample_prompts``: per sampled concept, ``n_positive`` of its own pool prompts (rank order: the
prompts the concept branch trains on first) and ``n_negative`` of the negatives the concept branch
gives its lens (siblings and random others, every split), drawn with a seeded RNG per concept.

``generate``: batched continuation of every prompt by a causal LM (left padding, prompts sorted
by length so a batch pads little), greedy or temperature sampling seeded per batch. A forward
hook on decoder layer ``layer`` (1-based) reads the residual stream the activation cache reads:

- the *prompt* vector is the prefill's vector pooled like the activation cache the concept
  lenses were trained on (``activations.pooling``: last prompt token or mean over the prompt);
- the *generated* vector is the mean over the output's text tokens as the model reads them back
  (decode step ``j`` feeds generated token ``j - 1``). The stop token is not a text token; a
  continuation cut by ``max_new_tokens`` is never fed its last token, so its mean leaves that
  one out. An output without text tokens (the stop token first) has no generated vector (NaN).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from lensforge.core import sequences
from lensforge.core.errors import DataError
from lensforge.core.splits import stable_seed
from lensforge.quality import quadrants

SIDES = ("positive", "negative")
SAMPLE_COLUMNS = [
    "sample_id",
    "concept",
    "quadrant",
    "side",
    "prompt_id",
    "prompt_concept",
    "negative",
    "prompt",
]
DECODINGS = ("greedy", "sample")


def sample_prompts(
    sampled: pd.DataFrame,
    pool: pd.DataFrame,
    *,
    negatives: pd.DataFrame,
    n_positive: int,
    n_negative: int,
    seed: int,
) -> pd.DataFrame:
    """The prompts to continue (``SAMPLE_COLUMNS``), positives then negatives per concept.

    ``sampled``: concept, quadrant. ``pool``: the concept prompt pool (prompt_id, concept, rank,
    text). ``negatives``: the concept branch's negatives (concept, prompt_id, negative kind).
    A concept with fewer prompts than asked gets what it has (the counts are reported by
    ``side_counts``); a concept with no pool prompt at all is a ``DataError``.
    """
    texts = pool.set_index("prompt_id")["text"]
    owner = pool.set_index("prompt_id")["concept"]
    rows = []
    for concept, quadrant in zip(sampled["concept"], sampled["quadrant"], strict=True):
        own = pool[pool["concept"] == concept].sort_values(["rank", "prompt_id"])
        if own.empty:
            raise DataError(
                "a sampled concept has no prompt in the pool (rerun concept_prompts?)",
                row=concept,
                rule="concept has prompts",
            )
        for prompt_id in own["prompt_id"].head(n_positive):
            rows.append((concept, quadrant, "positive", prompt_id, concept, ""))
        mine = negatives[negatives["concept"] == concept].drop_duplicates("prompt_id")
        mine = mine.sort_values("prompt_id")
        rng = np.random.default_rng(stable_seed(seed, "negatives", concept))
        picks = rng.permutation(len(mine))[:n_negative]
        for prompt_id, kind in mine.iloc[sorted(picks)][["prompt_id", "negative"]].itertuples(
            index=False
        ):
            rows.append((concept, quadrant, "negative", prompt_id, owner[prompt_id], kind))
    table = pd.DataFrame(rows, columns=SAMPLE_COLUMNS[1:-1])
    table.insert(
        0,
        "sample_id",
        [
            f"{c}|{s}|{i}"
            for i, (c, s) in enumerate(zip(table["concept"], table["side"], strict=True))
        ],
    )
    table["prompt"] = texts.loc[table["prompt_id"]].to_numpy()
    return table


def side_counts(samples: pd.DataFrame) -> dict[str, int]:
    """Fewest positive and negative prompts any sampled concept got."""
    counts = samples.groupby(["concept", "side"]).size().unstack(fill_value=0)
    return {
        f"min_{side}_per_concept": int(counts[side].min()) if side in counts else 0
        for side in SIDES
    }


@dataclasses.dataclass(frozen=True)
class Generations:
    """Per prompt (input order): the output text, its token count (stop token excluded),
    whether it ended with a stop token, and the float32 prompt / generated vectors (n, d_model);
    a generated row is NaN when the output has no text token."""

    outputs: list[str]
    n_tokens: list[int]
    stopped: list[bool]
    prompt_vectors: torch.Tensor
    generated_vectors: torch.Tensor


class _LayerReader:
    """Forward hook collecting the outputs of one decoder layer, one tensor per forward call."""

    def __init__(self, layer_module: nn.Module):
        self.calls: list[torch.Tensor] = []
        self._handle = layer_module.register_forward_hook(self._read)

    def _read(self, module: nn.Module, args: object, output: object) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        self.calls.append(hidden.detach().float())  # (batch, step_len, d_model)

    def remove(self) -> None:
        self._handle.remove()


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    layers = getattr(model.get_decoder(), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no decoder `layers` list")
    return layers


def stop_ids(model: nn.Module, tokenizer) -> set[int]:
    """Token ids that end a continuation: the generation config's and the tokenizer's EOS."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    return {int(i) for i in ids if i is not None}


def text_lengths(new_tokens: torch.Tensor, *, stops: set[int]) -> tuple[list[int], list[bool]]:
    """Per row of generated ids (batch, steps): tokens before the first stop token, and whether
    a stop token came at all."""
    is_stop = torch.isin(new_tokens, torch.tensor(sorted(stops)))  # (batch, steps)
    stopped = is_stop.any(dim=1)
    first = torch.where(stopped, is_stop.int().argmax(dim=1), new_tokens.shape[1])
    return first.tolist(), stopped.tolist()


def generated_means(calls: Sequence[torch.Tensor], n_text: Sequence[int]) -> torch.Tensor:
    """Mean over each row's first ``n_text`` generated tokens of the decode-step vectors
    (``calls[1:]``, one (batch, 1, d) per step, step j reading token j - 1): (batch, d), NaN for
    a row without a token that was read back."""
    steps = torch.cat(list(calls[1:]), dim=1) if len(calls) > 1 else None  # (batch, steps, d)
    d_model = calls[0].shape[-1]
    out = torch.full((len(n_text), d_model), float("nan"))
    for row, n in enumerate(n_text):
        n_read = min(n, 0 if steps is None else steps.shape[1])
        if n_read:
            out[row] = steps[row, :n_read].mean(dim=0)
    return out


def _pool_prompt(hidden: torch.Tensor, mask: torch.Tensor, *, pooling: str) -> torch.Tensor:
    if pooling == "last":
        return sequences.last_token(hidden, mask)  # (batch, d_model)
    if pooling == "mean":
        return sequences.masked_mean(hidden, mask)  # (batch, d_model)
    raise ValueError(f"unknown prompt pooling {pooling!r}; expected last or mean")


def _decode_kwargs(decoding: str, *, temperature: float) -> dict:
    if decoding == "greedy":
        return {"do_sample": False}
    if decoding == "sample":
        return {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    raise ValueError(f"unknown decoding {decoding!r}; expected one of {DECODINGS}")


def generate(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    layer: int,
    max_new_tokens: int,
    max_length: int,
    batch_size: int,
    decoding: str,
    temperature: float,
    seed: int,
    prompt_pooling: str,
) -> Generations:
    """Continue every text (module doc); ``model`` is a causal LM in eval mode on the CPU."""
    kwargs = _decode_kwargs(decoding, temperature=temperature)
    layers = decoder_layers(model)
    if not 1 <= layer <= len(layers):
        raise ValueError(f"layer {layer} outside the model's 1..{len(layers)} decoder layers")
    ids = sequences.tokenize(tokenizer, texts, max_length=max_length).ids
    pad_id = sequences.pad_id_of(tokenizer)
    stops = stop_ids(model, tokenizer)
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    outputs, n_tokens, stopped = [""] * len(ids), [0] * len(ids), [False] * len(ids)
    prompt_vectors = torch.zeros(len(ids), model.config.get_text_config().hidden_size)
    generated_vectors = torch.zeros_like(prompt_vectors)
    reader = _LayerReader(layers[layer - 1])
    try:
        with tqdm(total=len(ids), unit="prompt", desc="generate") as bar:
            for number, batch_rows in enumerate(batches):
                batch = sequences.pad_batch(
                    [ids[i] for i in batch_rows], pad_id=pad_id, padding_side="left"
                )
                reader.calls.clear()
                with torch.inference_mode(), torch.random.fork_rng():
                    torch.manual_seed(stable_seed(seed, "generate", number) % 2**63)
                    full = model.generate(
                        **batch, max_new_tokens=max_new_tokens, pad_token_id=pad_id, **kwargs
                    )  # (batch, prompt_len + steps)
                new = full[:, batch["input_ids"].shape[1] :]  # (batch, steps)
                n_text, ended = text_lengths(new, stops=stops)
                prompt_vectors[batch_rows] = _pool_prompt(
                    reader.calls[0], batch["attention_mask"], pooling=prompt_pooling
                )
                generated_vectors[batch_rows] = generated_means(reader.calls, n_text)
                for k, row in enumerate(batch_rows):
                    outputs[row] = tokenizer.decode(new[k, : n_text[k]], skip_special_tokens=True)
                    n_tokens[row], stopped[row] = n_text[k], ended[k]
                bar.update(len(batch_rows))
    finally:
        reader.remove()
    if not torch.isfinite(prompt_vectors).all():
        raise DataError(f"non-finite prompt activations at layer {layer}", rule="finite")
    return Generations(outputs, n_tokens, stopped, prompt_vectors, generated_vectors)


def summary(
    samples: pd.DataFrame, quadrant_table: pd.DataFrame, *, per_quadrant: int, seconds: float
) -> dict[str, int | float]:
    """The quality_samples metrics: concepts per quadrant (``n_<q>``), quadrants short of
    ``per_quadrant`` (``short_<q>``: how many concepts are missing; 0 when none), sampled
    concepts, generations per side, fewest prompts per concept, token counts and timing."""
    counts = quadrants.quadrant_counts(quadrant_table)
    short = quadrants.shortfalls(quadrant_table, per_quadrant=per_quadrant)
    return {
        "n_pack_concepts": len(quadrant_table),
        **{f"n_{q}": n for q, n in counts.items()},
        **{f"short_{q}": short.get(q, 0) for q in quadrants.QUADRANTS},
        "n_sampled_concepts": int(samples["concept"].nunique()),
        "n_samples": len(samples),
        **{f"n_{side}": int((samples["side"] == side).sum()) for side in SIDES},
        **side_counts(samples),
        "mean_new_tokens": round(float(samples["n_tokens"].mean()), 2),
        "share_stopped": round(float(samples["stopped"].mean()), 4),
        "seconds": round(seconds, 2),
        "samples_per_second": round(len(samples) / seconds, 3) if seconds > 0 else None,
    }
