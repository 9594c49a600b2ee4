"""Token sequences for every branch: tokenise, pad a batch, pool a masked batch to one vector.

- ``tokenize``: token ids per text with the tokenizer's special tokens, cut to ``max_length`` by
  the tokenizer's own truncation (which keeps trailing special tokens such as BERT's ``[SEP]``),
  not padded; also how many texts were cut, so a caller can report it.
- ``pad_batch``: a dict of ``input_ids`` and ``attention_mask`` (``model(**batch)`` works), padded
  on either side. Pooling and position ids read the mask, so the side never changes a vector.
- ``masked_mean`` / ``last_token``: one vector per row from ``(batch, seq, d_model)`` states,
  reading only real tokens (non-finite values at pad positions never leak in), computed and
  returned in float32. A row without any real token is an error, not a zero vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

PADDING_SIDES = ("left", "right")


class Tokens(NamedTuple):
    """Token ids per text (unpadded) and how many texts were cut to ``max_length``."""

    ids: list[list[int]]
    n_truncated: int


def tokenize(tokenizer, texts: Sequence[str], *, max_length: int) -> Tokens:
    """Token ids per text, special tokens added, at most ``max_length`` ids each (module doc).

    The texts are tokenised once; only when some text is longer are they tokenised again with
    the tokenizer's truncation, so the common case costs one call.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    texts = list(texts)
    ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    n_truncated = sum(len(row) > max_length for row in ids)
    if n_truncated:
        ids = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length)[
            "input_ids"
        ]
    return Tokens([list(row) for row in ids], n_truncated)


def pad_id_of(tokenizer) -> int:
    """Token id used for padding; its value never matters (masked), only that it is a valid id."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    return 0


def pad_batch(
    token_ids: Sequence[Sequence[int]], *, pad_id: int, padding_side: str = "right"
) -> dict[str, torch.Tensor]:
    """``{"input_ids", "attention_mask"}``, both long ``(batch, longest)``, padded with ``pad_id``
    on ``padding_side`` (``right`` keeps every token at the index it has alone)."""
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"padding_side must be left or right, got {padding_side!r}")
    if not token_ids or any(len(ids) == 0 for ids in token_ids):
        raise ValueError("pad_batch needs at least one sequence and no empty sequence")
    longest = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), longest), pad_id, dtype=torch.long)  # (batch, seq)
    attention_mask = torch.zeros((len(token_ids), longest), dtype=torch.long)  # (batch, seq)
    for i, ids in enumerate(token_ids):
        span = slice(0, len(ids)) if padding_side == "right" else slice(longest - len(ids), longest)
        input_ids[i, span] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[i, span] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each token among its row's real tokens (pads get 0): ``(batch, seq)``.

    With these, a left-padded row sees the same positions as it would alone.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def check_mask(attention_mask: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the batch rows that have no real token."""
    empty = (attention_mask.sum(dim=1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"rows {empty} of the batch have no real token to pool")


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``(batch, seq, d)`` over each row's real tokens: float32 ``(batch, d)``.

    Pads are excluded by selection, not multiplication, so a NaN or inf at a pad stays out.
    """
    check_mask(attention_mask)
    keep = attention_mask.bool().unsqueeze(-1)  # (batch, seq, 1)
    total = torch.where(keep, hidden.float(), 0.0).sum(dim=1)  # (batch, d)
    return total / attention_mask.sum(dim=1, keepdim=True).float()  # (batch, d)


def last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's state at its last real token, wherever the pads are: float32 ``(batch, d)``."""
    check_mask(attention_mask)
    n_rows, seq = attention_mask.shape
    positions = torch.arange(seq, device=hidden.device).expand(n_rows, seq)  # (batch, seq)
    last = torch.where(attention_mask.bool(), positions, -1).amax(dim=1)  # (batch,)
    return hidden[torch.arange(n_rows, device=hidden.device), last].float()  # (batch, d)
