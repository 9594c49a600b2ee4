"""Activation extraction: one vector per prompt from the residual stream after decoder layer L.

- Cut: the decoder stack keeps only its first L layers, so the layers above it and the LM head
  are never run (nor kept in memory). A forward hook on layer L reads its output, which is the
  full model's ``hidden_states[L]``; the stack's own output cannot be used, because the stack
  applies its final norm to whatever its last layer returns.
- Batches: prompts are sorted by token count (longest first, ties in pool order), so a batch pads
  little; positions travel with every batch and the index restores pool order.
- Pooling reads the attention mask, so last-non-pad and masked-mean are right for left and right
  padding alike. Position ids come from the mask too.
- Data-parallel: the batch plan is a pure function of the token counts, so every process computes
  the same plan. Rank r runs batches r, r + W, r + 2W, ... (disjoint, similar lengths on every rank)
  and writes shards named by its rank; the main process derives the index from the same plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from lensforge.activations import cache
from lensforge.core.artifacts import write_safetensors
from lensforge.core.errors import DataError, ParamsError

POOLINGS = ("last", "mean")
STORAGE_DTYPES = {"float16": torch.float16, "float32": torch.float32}
# Right padding keeps every prompt's tokens at the indices they have alone; left padding gives the
# same vectors (position ids come from the mask; tests check both), so this is not a result setting.
PADDING_SIDE = "right"


def validate_layer(layer: int, *, n_layers: int) -> None:
    """``model.layer`` counts decoder layers from 1; 0 (embeddings) or past the top is an error."""
    if not 1 <= layer <= n_layers:
        raise ParamsError(
            f"model.layer must be between 1 and {n_layers} (the subject model has {n_layers} "
            f"decoder layers), got {layer}",
            row="model.layer",
            rule="1 <= layer <= n_layers",
        )


COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def compute_dtype(name: str) -> torch.dtype:
    """Forward-pass precision from ``activations.compute_dtype`` (a param: it changes the vectors).

    float32 is the CPU default (bf16 matmuls are slow there); bfloat16 is the GPU choice.
    """
    return COMPUTE_DTYPES[name]


class CutModel(nn.Module):
    """The decoder stack of a causal LM cut after ``layer`` layers; returns that layer's output.

    This is the residual stream after ``layer`` decoder layers, i.e. the full model's
    ``hidden_states[layer]`` for every layer below the top; at the top layer it is the stream
    before the final norm (HF's ``hidden_states[-1]`` has the norm applied).
    Mutates ``model`` (its layer list loses everything above ``layer``): load a fresh model for it.
    """

    def __init__(self, model: nn.Module, layer: int):
        super().__init__()
        decoder = model.get_decoder()
        layers = getattr(decoder, "layers", None)
        if not isinstance(layers, nn.ModuleList):
            raise TypeError(f"{type(model).__name__} has no decoder `layers` list to cut")
        validate_layer(layer, n_layers=len(layers))
        decoder.layers = nn.ModuleList(layers[:layer])
        self.decoder = decoder
        self.layer = layer
        self._captured: torch.Tensor | None = None
        decoder.layers[layer - 1].register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, args: object, output: object) -> None:
        self._captured = output[0] if isinstance(output, tuple) else output

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (batch, seq)
        self._captured = None
        self.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        )
        hidden, self._captured = self._captured, None
        if hidden is None:
            raise RuntimeError(f"layer {self.layer} was not run by the decoder forward")
        return hidden  # (batch, seq, d_model)


def _check_mask(attention_mask: torch.Tensor) -> None:
    empty = (attention_mask.sum(dim=1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"rows {empty} of the batch have no real token to pool")


def pool_last(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's vector at its last real token, wherever the pads are. Returns float32."""
    _check_mask(attention_mask)
    n_rows, seq = attention_mask.shape
    positions = torch.arange(seq, device=hidden.device).expand(n_rows, seq)  # (batch, seq)
    last = torch.where(attention_mask.bool(), positions, -1).amax(dim=1)  # (batch,)
    return hidden[torch.arange(n_rows, device=hidden.device), last].float()  # (batch, d_model)


def pool_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over each row's real tokens (pads excluded, even if non-finite). Returns float32."""
    _check_mask(attention_mask)
    keep = attention_mask.bool().unsqueeze(-1)  # (batch, seq, 1)
    total = torch.where(keep, hidden.float(), 0.0).sum(dim=1)  # (batch, d_model)
    return total / attention_mask.sum(dim=1, keepdim=True).float()  # (batch, d_model)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, *, pooling: str) -> torch.Tensor:
    if pooling == "last":
        return pool_last(hidden, attention_mask)
    if pooling == "mean":
        return pool_mean(hidden, attention_mask)
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


def tokenize(tokenizer, texts: Sequence[str], *, max_length: int) -> tuple[list[list[int]], int]:
    """Token ids per text (with the tokenizer's special tokens, e.g. ``<bos>``), each cut to
    ``max_length`` tokens; also returns how many texts were cut."""
    ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    n_truncated = sum(len(row) > max_length for row in ids)
    return [list(row[:max_length]) for row in ids], n_truncated


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
    """The cache index: pool rows in pool order with ``cache.INDEX_COLUMNS`` (shard file, row)."""
    shard = [""] * len(pool)
    row = [-1] * len(pool)
    for _, name, positions in shard_layout(batches, world_size=world_size, shard_size=shard_size):
        for offset, pos in enumerate(positions):
            shard[pos], row[pos] = name, offset
    index = pool.reset_index(drop=True).assign(shard=shard, row=row)
    return index[cache.INDEX_COLUMNS]


def pad_batch(
    token_ids: Sequence[Sequence[int]], *, pad_id: int, padding_side: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)``, both ``(batch, longest)``, padded on ``padding_side``."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be left or right, got {padding_side!r}")
    longest = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), longest), pad_id, dtype=torch.long)  # (batch, seq)
    attention_mask = torch.zeros((len(token_ids), longest), dtype=torch.long)  # (batch, seq)
    for i, ids in enumerate(token_ids):
        span = slice(0, len(ids)) if padding_side == "right" else slice(longest - len(ids), longest)
        input_ids[i, span] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[i, span] = 1
    return input_ids, attention_mask


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
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield ``(positions, vectors)`` per batch: pooled float32 ``(batch, d_model)`` on the CPU.

    Each batch is checked for non-finite values before it is yielded.
    """
    with torch.inference_mode():
        for positions in batches:
            input_ids, attention_mask = pad_batch(
                [token_ids[p] for p in positions], pad_id=pad_id, padding_side=PADDING_SIDE
            )
            hidden = cut(input_ids.to(device), attention_mask.to(device))  # (batch, seq, d_model)
            vectors = pool(hidden, attention_mask.to(device), pooling=pooling).cpu()
            check_finite(
                vectors,
                layer=cut.layer,
                prompt_ids=[prompt_ids[p] for p in positions],
                what="activations",
            )
            if progress is not None:
                progress.update(len(positions))
            yield positions, vectors


def write_shards(
    batch_vectors: Iterable[tuple[list[int], torch.Tensor]],
    shards: Sequence[tuple[str, list[int]]],
    out_dir: Path,
    *,
    dtype: str,
    layer: int,
    prompt_ids: Sequence[str],
) -> None:
    """Write the stream of batch vectors as ``shards`` (name, positions), in stream order.

    Vectors are cast to the storage ``dtype`` and checked again (float16 overflows to inf).
    """
    storage = STORAGE_DTYPES[dtype]
    pending_pos: list[int] = []
    pending: list[torch.Tensor] = []
    shard_iter = iter(shards)
    name, expected = next(shard_iter, ("", []))
    for positions, vectors in batch_vectors:
        pending_pos.extend(positions)
        pending.append(vectors)
        while expected and len(pending_pos) >= len(expected):
            block = torch.cat(pending)  # (pending, d_model)
            n_rows = len(expected)
            if pending_pos[:n_rows] != expected:
                raise RuntimeError(f"shard {name} rows do not follow the batch plan")
            stored = block[:n_rows].to(storage)  # (shard_rows, d_model)
            check_finite(
                stored,
                layer=layer,
                prompt_ids=[prompt_ids[p] for p in expected],
                what=f"{dtype} activations (overflow? try dtype float32)",
            )
            write_safetensors(
                Path(out_dir) / name,
                {cache.SHARD_TENSOR: stored},
            )  # no metadata: safetensors orders several keys at random, so bytes would vary
            pending_pos, pending = pending_pos[n_rows:], [block[n_rows:]]
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
    with tqdm(total=n_mine, unit="prompt", desc=f"layer {cut.layer}", disable=rank != 0) as bar:
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
        write_shards(stream, shards, out_dir, dtype=dtype, layer=cut.layer, prompt_ids=prompt_ids)
    return n_mine


def pad_id_of(tokenizer) -> int:
    """Token id used for padding; its value never matters (masked), only that it is a valid id."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    return 0
