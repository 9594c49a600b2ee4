"""A randomly initialised tiny BERT encoder + a character-level WordPiece tokenizer, as an HF folder.

The adjudication tests need a real transformers encoder (real attention masks, dropout,
``save_pretrained`` / ``from_pretrained``, ``AutoModel``) but no weights from a hub: a 2-layer,
32-wide BERT from a config, and a WordPiece vocabulary of single characters (and their ``##``
continuations), so any English text tokenizes without ``[UNK]`` floods.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARACTERS = string.ascii_lowercase + string.digits + string.punctuation
N_LAYERS = 2
D_MODEL = 32


def build_tiny_encoder(out_dir: Path) -> Path:
    """Save a random 2-layer, 32-wide BERT and its tokenizer under ``out_dir``; returns it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens = SPECIAL_TOKENS + list(CHARACTERS) + [f"##{c}" for c in CHARACTERS]
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=D_MODEL,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    BertModel(config).to(torch.float32).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """Session fixture; a test module enables it with ``tiny_encoder_dir = tiny_encoder.tiny_encoder_dir``."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"))
