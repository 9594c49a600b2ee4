"""A randomly initialised tiny causal LM + a locally built tokenizer, saved as an HF folder.

Tests need a real transformers model (real decoder layers, real attention masks, real
``save_pretrained``/``from_pretrained``) but no weights from a hub: this builds a 4-layer Gemma-3
text model of width 32 from a config and a word-level tokenizer from a fixed vocabulary, both
deterministic for a given torch seed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>"]
WORDS = [
    "a",
    "an",
    "the",
    "i",
    "you",
    "he",
    "she",
    "it",
    "we",
    "they",
    "me",
    "my",
    "your",
    "this",
    "that",
    "is",
    "am",
    "are",
    "was",
    "be",
    "been",
    "being",
    "do",
    "does",
    "did",
    "have",
    "has",
    "had",
    "not",
    "no",
    "yes",
    "and",
    "or",
    "but",
    "so",
    "if",
    "when",
    "then",
    "than",
    "of",
    "to",
    "in",
    "on",
    "at",
    "by",
    "for",
    "with",
    "from",
    "about",
    "as",
    "into",
    "like",
    "feel",
    "feeling",
    "felt",
    "think",
    "know",
    "want",
    "need",
    "love",
    "hate",
    "fear",
    "joy",
    "sad",
    "happy",
    "angry",
    "calm",
    "taste",
    "food",
    "sweet",
    "bitter",
    "sour",
    "good",
    "bad",
    "new",
    "old",
    "small",
    "big",
    "person",
    "people",
    "someone",
    "something",
    "thing",
    "way",
    "time",
    "day",
    "life",
    "world",
    "work",
    "friend",
    "word",
    "mean",
    "means",
    "defined",
    "definition",
    "describe",
    "behaviour",
    "behavior",
    "act",
    "acts",
    "show",
    "shows",
    ".",
    ",",
    "!",
    "?",
    "'",
    "-",
]
N_LAYERS = 4
D_MODEL = 32


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer: lower-cased, split on whitespace and punctuation, <bos> prepended."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + sorted(set(WORDS)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="left",
    )


def build_tiny_model(out_dir: Path) -> Path:
    """Save a random 4-layer, 32-wide Gemma-3 causal LM and its tokenizer under ``out_dir``.

    Returns ``out_dir``, loadable with ``AutoModelForCausalLM`` / ``AutoTokenizer``. The sliding
    window (8 tokens) is shorter than test prompts, so the local-attention layers really slide.
    """
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=D_MODEL,
        intermediate_size=64,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"] * (N_LAYERS // 2),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = Gemma3ForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
