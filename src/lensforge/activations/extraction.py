"""Activation extraction: one vector per prompt and layer from the residual stream after each of
the decoder layers ``model.layers``, all from one forward pass.

- Cut: the decoder stack keeps only its first L layers (L = the deepest wanted layer), so the
  layers above it and the LM head are never run (nor kept in memory). A forward hook on each
  wanted layer reads its output, which is the full model's ``hidden_states[layer]``; the stack's
  own output cannot be used, because the stack applies its final norm to whatever its last layer
  returns.
- Batches: prompts are sorted by token count (longest first, ties in pool order), so a batch pads
  little; positions travel with every batch and the index restores pool order.
- Tokenising, padding and pooling are ``core.sequences`` (shared with the adjudication encoder):
  pooling reads the attention mask, so last-non-pad and masked-mean are right for left and right
  padding alike. Position ids come from the mask too.
- Data-parallel: the batch plan is a pure function of the token counts, so every process computes
  the same plan. Rank r runs batches r, r + W, r + 2W, ... (disjoint, similar lengths on every rank)
  and writes shards named by its rank; the main process derives the index from the same plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from lensforge.activations import cache, subject
from lensforge.core import sequences
from lensforge.core.artifacts import write_safetensors
from lensforge.core.errors import DataError, ParamsError

POOLINGS = ("last", "mean")
STORAGE_DTYPES = {"float16": torch.float16, "float32": torch.float32}
# Forward-pass precision (``activations.compute_dtype``, a param: it changes the vectors): float32
# is the CPU default (bf16 matmuls are slow there); bfloat16 is the GPU choice.
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Right padding keeps every prompt's tokens at the indices they have alone; left padding gives the
# same vectors (position ids come from the mask; tests check both), so this is not a result setting.
PADDING_SIDE = "right"


def validate_layer(layer: int, *, n_layers: int, key: str = "model.layers") -> None:
    """Layers count decoder layers from 1; 0 (embeddings) or past the top is an error."""
    if not 1 <= layer <= n_layers:
        raise ParamsError(
            f"{key} must name layers between 1 and {n_layers} (the subject model has {n_layers} "
            f"decoder layers), got {layer}",
            row=key,
            rule="1 <= layer <= n_layers",
        )


def check_layers(layers: Sequence[int], *, n_layers: int) -> tuple[int, ...]:
    """``model.layers`` as a sorted tuple: non-empty, no repeats, each a decoder layer."""
    if not layers:
        raise ParamsError("model.layers must list at least one layer", row="model.layers")
    if len(set(layers)) != len(layers):
        raise ParamsError(
            f"model.layers repeats a layer: {list(layers)}", row="model.layers", rule="unique"
        )
    for layer in layers:
        validate_layer(layer, n_layers=n_layers)
    return tuple(sorted(layers))


class CutModel(nn.Module):
    """The decoder stack of a causal LM cut after its deepest wanted layer; returns the residual
    stream after each wanted layer, from one forward pass.

    The stream after ``L`` decoder layers is the full model's ``hidden_states[L]`` for every layer
    below the top; at the top layer it is the stream before the final norm (HF's
    ``hidden_states[-1]`` has the norm applied). Layers above the deepest wanted one and the LM
    head are never run. Mutates ``model`` (its layer list loses everything above the deepest
    layer): load a fresh model for it.
    """

    def __init__(self, model: nn.Module, layers: Sequence[int]):
        super().__init__()
        decoder = model.get_decoder()
        stack = getattr(decoder, "layers", None)
        if not isinstance(stack, nn.ModuleList):
            raise TypeError(f"{type(model).__name__} has no decoder `layers` list to cut")
        self.layers = check_layers(layers, n_layers=len(stack))
        decoder.layers = nn.ModuleList(stack[: self.layers[-1]])
        self.decoder = decoder
        self._captured: dict[int, torch.Tensor] = {}
        for layer in self.layers:
            decoder.layers[layer - 1].register_forward_hook(self._capture_hook(layer))

    def _capture_hook(self, layer: int):
        def capture(module: nn.Module, args: object, output: object) -> None:
            self._captured[layer] = output[0] if isinstance(output, tuple) else output

        return capture

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[int, torch.Tensor]:
        """layer -> its output ``(batch, seq, d_model)``, for every wanted layer."""
        self._captured = {}
        self.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=sequences.position_ids(attention_mask),  # (batch, seq)
            use_cache=False,
        )
        captured, self._captured = self._captured, {}
        missing = [layer for layer in self.layers if layer not in captured]
        if missing:
            raise RuntimeError(f"layers {missing} were not run by the decoder forward")
        return captured


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, *, pooling: str) -> torch.Tensor:
    """One float32 vector per row, ``(batch, d_model)``: ``last`` real token or ``mean`` of them."""
    if pooling == "last":
        return sequences.last_token(hidden, attention_mask)
    if pooling == "mean":
        return sequences.masked_mean(hidden, attention_mask)
    raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")


def check_finite(vectors: torch.Tensor, *, layer: int, prompt_ids: Sequence[str], what: str):
    """Raise ``DataError`` naming the layer and prompts whose vectors hold NaN or inf.

    A non-finite activation is reported, never worked around (no other layer, no clipping).
    """
    bad = (~torch.isfinite(vectors).all(dim=1)).nonzero().flatten().tolist()  # rows
    if bad:
        ids = [prompt_ids[i] for i in bad]
        raise DataError(
            f"non-finite {what} at layer {layer} for {len(ids)} prompt(s): {ids[:20]}",
            row=ids[0],
            rule="finite activations",
        )


def load_cut(
    model_dir: Path, *, layers: Sequence[int], compute_dtype: str
) -> tuple[CutModel, object, dict]:
    """``(cut model, tokenizer, card)`` of the converted subject model, on the CPU.

    The layers are checked against the card before the weights are loaded (a fast, clear error).
    """
    card = subject.read_card(model_dir)
    check_layers(layers, n_layers=card["n_layers"])
    loaded = subject.load_for_extraction(model_dir, dtype=COMPUTE_DTYPES[compute_dtype])
    return CutModel(loaded.model, layers), loaded.tokenizer, card


@dataclasses.dataclass(frozen=True)
class Plan:
    """Token ids per prompt (pool order), their length-sorted batches, and how many were cut."""

    token_ids: list[list[int]]
    batches: list[list[int]]
    n_truncated: int


def plan(tokenizer, texts: Sequence[str], *, max_length: int, batch_size: int) -> Plan:
    """Tokenise the pool (``core.sequences.tokenize``) and plan its batches (``plan_batches``)."""
    tokens = sequences.tokenize(tokenizer, texts, max_length=max_length)
    batches = plan_batches([len(ids) for ids in tokens.ids], batch_size=batch_size)
    return Plan(tokens.ids, batches, tokens.n_truncated)


def plan_batches(lengths: Sequence[int], *, batch_size: int) -> list[list[int]]:
    """Positions grouped in batches of ``batch_size``, longest prompts first, ties in pool order."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def rank_batches(batches: Sequence[list[int]], *, rank: int, world_size: int) -> list[list[int]]:
    """The batches process ``rank`` of ``world_size`` runs: every ``world_size``-th from ``rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size} processes")
    return list(batches[rank::world_size])


def shard_layout(
    batches: Sequence[list[int]], *, world_size: int, shard_size: int
) -> list[tuple[int, str, list[int]]]:
    """``(rank, shard file name, positions)`` for every shard, in the order each rank fills them.

    A rank's vectors form one stream in the order it runs its batches; shard k of that rank holds
    rows ``k * shard_size ...`` of the stream. Writer and index both read this one plan.
    """
    layout = []
    for rank in range(world_size):
        stream = [
            pos
            for batch in rank_batches(batches, rank=rank, world_size=world_size)
            for pos in batch
        ]
        for shard, start in enumerate(range(0, len(stream), shard_size)):
            name = cache.shard_name(shard, rank=rank)
            layout.append((rank, name, stream[start : start + shard_size]))
    return layout


def build_index(
    pool: pd.DataFrame, batches: Sequence[list[int]], *, world_size: int, shard_size: int
) -> pd.DataFrame:
    """The cache index: pool rows in pool order, every pool column but the text, then the shard
    file and the row in it (for the simplex pool: ``cache.INDEX_COLUMNS``)."""
    shard = [""] * len(pool)
    row = [-1] * len(pool)
    for _, name, positions in shard_layout(batches, world_size=world_size, shard_size=shard_size):
        for offset, pos in enumerate(positions):
            shard[pos], row[pos] = name, offset
    index = pool.drop(columns=["text"], errors="ignore").reset_index(drop=True)
    index = index.assign(shard=shard, row=row)
    return index


def iter_vectors(
    cut: CutModel,
    token_ids: Sequence[Sequence[int]],
    batches: Iterable[list[int]],
    *,
    pooling: str,
    pad_id: int,
    prompt_ids: Sequence[str],
    device: torch.device,
    progress: tqdm | None = None,
) -> Iterator[tuple[list[int], dict[int, torch.Tensor]]]:
    """Yield ``(positions, {layer: vectors})`` per batch: pooled float32 ``(batch, d_model)`` on
    the CPU for every layer of ``cut``. Each is checked for non-finite values before it is yielded.
    """
    with torch.inference_mode():
        for positions in batches:
            batch = sequences.pad_batch(
                [token_ids[p] for p in positions], pad_id=pad_id, padding_side=PADDING_SIDE
            )
            input_ids = batch["input_ids"].to(device)  # (batch, seq)
            attention_mask = batch["attention_mask"].to(device)  # (batch, seq)
            vectors = {}
            for layer, hidden in cut(input_ids, attention_mask).items():  # (batch, seq, d_model)
                vectors[layer] = pool(hidden, attention_mask, pooling=pooling).cpu()
                check_finite(
                    vectors[layer],
                    layer=layer,
                    prompt_ids=[prompt_ids[p] for p in positions],
                    what="activations",
                )
            if progress is not None:
                progress.update(len(positions))
            yield positions, vectors


def write_shards(
    batch_vectors: Iterable[tuple[list[int], dict[int, torch.Tensor]]],
    shards: Sequence[tuple[str, list[int]]],
    out_dir: Path,
    *,
    dtype: str,
    prompt_ids: Sequence[str],
) -> None:
    """Write the stream of batch vectors as ``shards`` (name, positions), in stream order; a
    shard holds one tensor per layer (``tensor_name``), rows in the same order.

    Vectors are cast to the storage ``dtype`` and checked again (float16 overflows to inf).
    """
    storage = STORAGE_DTYPES[dtype]
    pending_pos: list[int] = []
    pending: list[dict[int, torch.Tensor]] = []
    shard_iter = iter(shards)
    name, expected = next(shard_iter, ("", []))
    for positions, vectors in batch_vectors:
        pending_pos.extend(positions)
        pending.append(vectors)
        while expected and len(pending_pos) >= len(expected):
            n_rows = len(expected)
            if pending_pos[:n_rows] != expected:
                raise RuntimeError(f"shard {name} rows do not follow the batch plan")
            blocks = {layer: torch.cat([part[layer] for part in pending]) for layer in pending[0]}
            tensors = {}
            for layer, block in blocks.items():  # block: (pending, d_model)
                stored = block[:n_rows].to(storage)  # (shard_rows, d_model)
                check_finite(
                    stored,
                    layer=layer,
                    prompt_ids=[prompt_ids[p] for p in expected],
                    what=f"{dtype} activations (overflow? try dtype float32)",
                )
                tensors[cache.tensor_name(layer)] = stored
            # no metadata: its key order would vary from call to call, so bytes would vary
            write_safetensors(Path(out_dir) / name, tensors)
            pending_pos = pending_pos[n_rows:]
            pending = [{layer: block[n_rows:] for layer, block in blocks.items()}]
            name, expected = next(shard_iter, ("", []))
    if expected or pending_pos:
        raise RuntimeError("the batch stream ended before its shards were filled")


def extract_to_shards(
    cut: CutModel,
    token_ids: Sequence[Sequence[int]],
    batches: Sequence[list[int]],
    out_dir: Path,
    *,
    rank: int,
    world_size: int,
    shard_size: int,
    pooling: str,
    dtype: str,
    pad_id: int,
    prompt_ids: Sequence[str],
    device: torch.device,
) -> int:
    """Run this rank's batches through ``cut`` and write its shards into ``out_dir``.

    Returns the number of prompts this rank processed. A progress bar (prompts/s) shows on rank 0.
    """
    mine = rank_batches(batches, rank=rank, world_size=world_size)
    shards = [
        (name, pos)
        for r, name, pos in shard_layout(batches, world_size=world_size, shard_size=shard_size)
        if r == rank
    ]
    n_mine = sum(len(batch) for batch in mine)
    desc = "layers " + ",".join(map(str, cut.layers))
    with tqdm(total=n_mine, unit="prompt", desc=desc, disable=rank != 0) as bar:
        stream = iter_vectors(
            cut,
            token_ids,
            mine,
            pooling=pooling,
            pad_id=pad_id,
            prompt_ids=prompt_ids,
            device=device,
            progress=bar,
        )
        write_shards(stream, shards, out_dir, dtype=dtype, prompt_ids=prompt_ids)
    return n_mine


def summary(
    index: pd.DataFrame, *, d_model: int, seconds: float, n_truncated: int, n_processes: int
) -> dict:
    """The stage's metrics: counts, and the wall-clock time (kept out of the cache itself)."""
    return {
        "n_prompts": len(index),
        "d_model": d_model,
        "n_shards": int(index["shard"].nunique()),
        "n_truncated": n_truncated,
        "n_processes": n_processes,
        "seconds": round(seconds, 3),
        "prompts_per_second": round(len(index) / seconds, 2),
    }
