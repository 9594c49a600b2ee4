"""``core.sequences``: tokenise, pad and pool, shared by the extractor and the adjudication
encoder, on hand-made tensors and tiny tokenizers with known answers."""

from __future__ import annotations

import pytest
import torch

from lensforge.core import sequences
from tests.helpers.tiny_model import build_tokenizer


def hidden_3x4x2() -> torch.Tensor:
    """Batch of 3 sequences x 4 positions x 2 dims; the value at (b, t) is (10 b + t, -(10 b + t))."""
    base = torch.tensor([[10.0 * b + t for t in range(4)] for b in range(3)])  # (batch, seq)
    return torch.stack([base, -base], dim=-1)  # (batch, seq, d_model)


def test_last_token_takes_the_last_real_token_with_right_padding():
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    pooled = sequences.last_token(hidden_3x4x2(), mask)
    assert pooled.tolist() == [[3.0, -3.0], [11.0, -11.0], [20.0, -20.0]]


def test_last_token_takes_the_last_real_token_with_left_padding():
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    pooled = sequences.last_token(hidden_3x4x2(), mask)
    assert pooled.tolist() == [[3.0, -3.0], [13.0, -13.0], [23.0, -23.0]]


def test_masked_mean_averages_only_real_tokens_with_right_and_left_padding():
    hidden = hidden_3x4x2()
    right = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    left = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    assert sequences.masked_mean(hidden, right).tolist() == [[1.5, -1.5], [10.5, -10.5], [20, -20]]
    assert sequences.masked_mean(hidden, left).tolist() == [[1.5, -1.5], [12.5, -12.5], [23, -23]]


def test_masked_mean_ignores_non_finite_values_at_pad_positions():
    hidden = hidden_3x4x2()
    hidden[1, 2:] = float("nan")
    hidden[2, 1:] = float("inf")
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    assert sequences.masked_mean(hidden, mask).tolist() == [[1.5, -1.5], [10.5, -10.5], [20, -20]]


def test_pooling_a_row_without_real_tokens_raises():
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        sequences.last_token(hidden_3x4x2(), mask)
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        sequences.masked_mean(hidden_3x4x2(), mask)


def padded(token_ids, *, pad_id=0, padding_side="right"):
    batch = sequences.pad_batch(token_ids, pad_id=pad_id, padding_side=padding_side)
    return batch["input_ids"], batch["attention_mask"]


def test_pad_batch_pads_on_the_requested_side():
    ids, mask = padded([[5, 6, 7], [8]], pad_id=9, padding_side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 9, 9]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = padded([[5, 6, 7], [8]], pad_id=9, padding_side="left")
    assert ids.tolist() == [[5, 6, 7], [9, 9, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    batch = sequences.pad_batch([[5, 6, 7], [8]], pad_id=0)  # right by default
    assert set(batch) == {"input_ids", "attention_mask"} and batch["input_ids"][1, 0] == 8
    with pytest.raises(ValueError, match="padding_side"):
        sequences.pad_batch([[1]], pad_id=0, padding_side="middle")
    with pytest.raises(ValueError, match="no empty sequence"):
        sequences.pad_batch([[1], []], pad_id=0)


def test_position_ids_count_real_tokens_so_left_padding_starts_at_zero():
    mask = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 1, 0]])
    assert sequences.position_ids(mask).tolist() == [[0, 1, 2], [0, 0, 1], [0, 1, 1]]


def test_tokenize_adds_bos_and_cuts_long_texts_counting_them():
    tokenizer = build_tokenizer()
    tokens = sequences.tokenize(
        tokenizer, ["a good day", "i feel happy about the food"], max_length=4
    )
    bos = tokenizer.bos_token_id
    assert tokens.n_truncated == 1 and [len(ids) for ids in tokens.ids] == [4, 4]
    assert tokens.ids[1] == tokenizer("i feel happy about the food")["input_ids"][:4]
    assert tokens.ids[1][0] == bos and tokens.ids[0] == tokenizer("a good day")["input_ids"]
    ids, n_truncated = sequences.tokenize(tokenizer, ["a good day"], max_length=64)
    assert n_truncated == 0 and ids == [tokenizer("a good day")["input_ids"]]


def test_tokenize_keeps_a_trailing_special_token_when_it_cuts():
    from transformers import BertTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c"])}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    tokens = sequences.tokenize(tokenizer, ["a b c a b", "a"], max_length=4)
    assert tokens.ids == [[2, 4, 5, 3], [2, 4, 3]] and tokens.n_truncated == 1
    # The same ids as the tokenizer's own truncation, what the adjudication encoder used.
    assert tokens.ids == tokenizer(["a b c a b", "a"], truncation=True, max_length=4)["input_ids"]


def test_pad_id_falls_back_to_eos_then_zero():
    class Tok:
        def __init__(self, pad, eos):
            self.pad_token_id, self.eos_token_id = pad, eos

    assert [sequences.pad_id_of(Tok(*ids)) for ids in ((5, 1), (None, 1), (None, None))] == [
        5,
        1,
        0,
    ]
