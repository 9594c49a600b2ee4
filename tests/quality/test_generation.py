"""``quality.generation``: prompt sampling, stop handling, and generation on the tiny model with
the prompt vector checked against the activation extractor's."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lensforge.activations import extraction
from lensforge.core import sequences
from lensforge.core.errors import DataError
from lensforge.quality import generation

TEXTS = [
    "i think the love of my friend is a feeling",
    "you know",
    "they want to be with you when it is not",
    "she felt fear",
    "we do not hate the dog",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, tokenizer


def _generate(tiny, texts, **overrides):
    model, tokenizer = tiny
    settings = dict(layer=2, max_new_tokens=6, max_length=64, batch_size=2, decoding="greedy",
                    temperature=1.0, seed=0, prompt_pooling="last")  # fmt: skip
    settings.update(overrides)
    return generation.generate(model, tokenizer, texts, **settings)


def test_prompt_vectors_are_the_extractors_vectors(tiny, tiny_model_dir, single_torch_thread):
    out = _generate(tiny, TEXTS)
    _, tokenizer = tiny
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), [2])
    ids = sequences.tokenize(tokenizer, TEXTS, max_length=64).ids
    batch = sequences.pad_batch(ids, pad_id=sequences.pad_id_of(tokenizer))
    with torch.inference_mode():
        hidden = cut(batch["input_ids"], batch["attention_mask"])[2]
    expected = extraction.pool(hidden, batch["attention_mask"], pooling="last")
    assert torch.allclose(out.prompt_vectors, expected, atol=1e-4)
    assert out.prompt_vectors.shape == (5, 32) and out.generated_vectors.shape == (5, 32)
    assert len(out.outputs) == 5 and all(0 <= n <= 6 for n in out.n_tokens)


def test_batching_does_not_change_greedy_outputs_or_vectors(tiny, single_torch_thread):
    together = _generate(tiny, TEXTS, batch_size=5)
    alone = [_generate(tiny, [t], batch_size=1) for t in TEXTS]
    assert together.outputs == [a.outputs[0] for a in alone]
    stacked = torch.cat([a.generated_vectors for a in alone])
    assert torch.allclose(together.generated_vectors, stacked, atol=1e-4, equal_nan=True)


def test_sampling_is_seeded(tiny, single_torch_thread):
    first = _generate(tiny, TEXTS, decoding="sample", temperature=1.5, seed=3)
    again = _generate(tiny, TEXTS, decoding="sample", temperature=1.5, seed=3)
    assert first.outputs == again.outputs
    with pytest.raises(ValueError, match="decoding"):
        _generate(tiny, TEXTS, decoding="beam")


def test_text_lengths_stop_at_the_first_stop_token():
    new = torch.tensor([[5, 6, 1, 0], [1, 0, 0, 0], [5, 6, 7, 8]])
    assert generation.text_lengths(new, stops={1}) == ([2, 0, 4], [True, True, False])


def test_generated_means_average_the_tokens_read_back():
    prefill = torch.zeros(2, 3, 2)
    steps = [torch.full((2, 1, 2), float(k)) for k in (1, 2, 3)]  # step k reads token k - 1
    got = generation.generated_means([prefill, *steps], [2, 0])
    assert torch.allclose(got[0], torch.tensor([1.5, 1.5]))
    assert torch.isnan(got[1]).all()  # no text token: no vector
    cut = generation.generated_means([prefill, *steps], [4, 1])  # the 4th token was never read
    assert torch.allclose(cut, torch.tensor([[2.0, 2.0], [1.0, 1.0]]))


def test_sample_prompts_takes_own_prompts_by_rank_and_seeded_negatives():
    pool = pd.DataFrame(
        {
            "prompt_id": [f"K|{i}" for i in range(4)] + [f"S|{i}" for i in range(5)],
            "concept": ["K"] * 4 + ["S"] * 5,
            "rank": [3, 0, 1, 2, 0, 1, 2, 3, 4],
            "text": [f"text {i}" for i in range(9)],
        }
    )
    negatives = pd.DataFrame(
        {"concept": ["K"] * 6, "split": ["train"] * 5 + ["test"],
         "prompt_id": [f"S|{i}" for i in range(5)] + ["S|0"], "negative": ["sibling"] * 6}
    )  # fmt: skip
    sampled = pd.DataFrame({"concept": ["K"], "quadrant": ["A"]})
    got = generation.sample_prompts(
        sampled, pool, negatives=negatives, n_positive=3, n_negative=3, seed=0
    )
    pos, neg = got[got["side"] == "positive"], got[got["side"] == "negative"]
    assert pos["prompt_id"].tolist() == ["K|1", "K|2", "K|3"]
    assert len(neg) == 3 and neg["prompt_id"].is_unique and set(neg["prompt_concept"]) == {"S"}
    assert got["sample_id"].is_unique and got["prompt"].str.startswith("text").all()
    again = generation.sample_prompts(
        sampled, pool, negatives=negatives, n_positive=3, n_negative=3, seed=0
    )
    pd.testing.assert_frame_equal(got, again)
    assert generation.side_counts(got) == {
        "min_positive_per_concept": 3,
        "min_negative_per_concept": 3,
    }
    with pytest.raises(DataError, match="no prompt"):
        generation.sample_prompts(
            pd.DataFrame({"concept": ["Ghost"], "quadrant": ["B"]}), pool,
            negatives=negatives, n_positive=3, n_negative=3, seed=0,
        )  # fmt: skip


def test_generated_vectors_are_the_layer_states_of_the_tokens_read_back(
    tiny, tiny_model_dir, single_torch_thread
):
    model, tokenizer = tiny
    out = _generate(tiny, TEXTS[:2], max_new_tokens=5)
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), [2])
    prompt_ids = sequences.tokenize(tokenizer, TEXTS[:2], max_length=64).ids
    checked = 0
    for row, prompt in enumerate(prompt_ids):
        n_read = min(out.n_tokens[row], 4)  # 5 steps: the 5th token is never fed back
        if n_read == 0:
            continue
        checked += 1
        text_ids = tokenizer(out.outputs[row], add_special_tokens=False)["input_ids"][:n_read]
        ids = torch.tensor([prompt + text_ids])
        with torch.inference_mode():
            hidden = cut(ids, torch.ones_like(ids))[2]  # (1, seq, d)
        expected = hidden[0, len(prompt) : len(prompt) + n_read].mean(dim=0)
        assert torch.allclose(out.generated_vectors[row], expected, atol=1e-4)
    assert checked
