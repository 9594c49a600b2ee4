"""Extraction core: the cut model, length-sorted batches, shards and the finite check."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lensforge.activations import cache, extraction
from lensforge.core import sequences
from lensforge.core.errors import DataError, ParamsError
from tests.core.test_sequences import padded

TEXTS = [
    "i feel happy about the sweet food that my friend has made for me today",
    "a",
    "you think it is good or bad when people act like that in the world",
    "bitter taste",
    "what does it mean to love someone",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    full = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    token_ids, _ = sequences.tokenize(tokenizer, TEXTS, max_length=64)
    return tiny_model_dir, full, token_ids


def full_model_last_token(full, token_ids, layer: int) -> torch.Tensor:
    """Reference: each prompt alone through the whole model, hidden_states[layer] at its end."""
    with torch.inference_mode():
        rows = [
            full(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0, -1]
            for ids in token_ids
        ]
    return torch.stack(rows)  # (n, d_model)


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("layer", [1, 2, 3])
def test_cut_model_equals_the_full_models_hidden_state_at_that_layer(tiny, layer, padding_side):
    model_dir, full, token_ids = tiny
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(model_dir).eval(), [layer])
    input_ids, mask = padded(token_ids, padding_side=padding_side)
    with torch.inference_mode():
        pooled = sequences.last_token(cut(input_ids, mask)[layer], mask)  # (n, d_model)
    expected = full_model_last_token(full, token_ids, layer)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=0)


def test_one_pass_over_several_layers_equals_one_pass_per_layer(tiny):
    model_dir, full, token_ids = tiny
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(model_dir).eval(), [3, 1, 2])
    assert cut.layers == (1, 2, 3) and len(cut.decoder.layers) == 3  # stops after the deepest
    input_ids, mask = padded(token_ids)
    with torch.inference_mode():
        captured = cut(input_ids, mask)
    assert sorted(captured) == [1, 2, 3]
    for layer, hidden in captured.items():
        pooled = sequences.last_token(hidden, mask)  # (n, d_model)
        expected = full_model_last_token(full, token_ids, layer)
        torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=0)


def test_repeated_or_empty_layer_lists_are_params_errors():
    with pytest.raises(ParamsError, match="repeats a layer"):
        extraction.check_layers([2, 2], n_layers=4)
    with pytest.raises(ParamsError, match="at least one layer"):
        extraction.check_layers([], n_layers=4)


def test_cut_model_keeps_only_the_layers_up_to_l_and_no_lm_head(tiny):
    model_dir, _, _ = tiny
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(model_dir), [2])
    assert len(cut.decoder.layers) == 2
    assert not any("lm_head" in name for name, _ in cut.named_modules())


def test_cut_model_at_the_top_layer_returns_the_stream_before_the_final_norm(tiny):
    model_dir, full, token_ids = tiny
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(model_dir).eval(), [4])
    input_ids, mask = padded(token_ids[:1])
    with torch.inference_mode():
        stream = cut(input_ids, mask)[4]  # (1, seq, d_model)
        expected = full(input_ids, output_hidden_states=True).hidden_states[4]
        torch.testing.assert_close(full.model.norm(stream), expected, atol=1e-5, rtol=0)


def test_layer_outside_one_to_n_layers_is_a_params_error_naming_key_and_layer_count(tiny):
    for layer in (0, 5):
        with pytest.raises(ParamsError, match=r"model\.layers must name layers between 1 and 4"):
            extraction.validate_layer(layer, n_layers=4)
    with pytest.raises(ParamsError, match="has 4 decoder layers") as info:
        extraction.CutModel(AutoModelForCausalLM.from_pretrained(tiny[0]), [2, 5])
    assert info.value.row == "model.layers"


def test_plan_batches_puts_longest_prompts_first_and_ties_in_pool_order():
    batches = extraction.plan_batches([2, 5, 3, 5, 1], batch_size=2)
    assert batches == [[1, 3], [2, 0], [4]]


def test_length_sorted_batches_give_every_prompt_its_own_vector_in_pool_order(tiny):
    model_dir, full, token_ids = tiny
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(model_dir).eval(), [2])
    batches = extraction.plan_batches([len(ids) for ids in token_ids], batch_size=2)
    assert batches[0] != [0, 1]  # the sort really reorders these prompts
    out = torch.full((len(token_ids), 32), float("nan"))  # (n, d_model)
    for positions, vectors in extraction.iter_vectors(
        cut,
        token_ids,
        batches,
        pooling="last",
        pad_id=0,
        prompt_ids=[f"p{i}" for i in range(len(token_ids))],
        device=torch.device("cpu"),
    ):
        out[positions] = vectors[2]
    torch.testing.assert_close(out, full_model_last_token(full, token_ids, 2), atol=1e-5, rtol=0)


def test_check_finite_raises_naming_the_layer_and_the_prompt_ids():
    vectors = torch.ones(3, 2)  # (n, d_model)
    vectors[1, 0] = float("nan")
    vectors[2, 1] = float("-inf")
    with pytest.raises(DataError, match=r"layer 7 for 2 prompt\(s\): \['b', 'c'\]") as info:
        extraction.check_finite(vectors, layer=7, prompt_ids=["a", "b", "c"], what="activations")
    assert info.value.rule == "finite activations"
    extraction.check_finite(torch.ones(3, 2), layer=7, prompt_ids=["a", "b", "c"], what="x")


def test_a_model_that_outputs_nan_fails_the_extraction(tiny):
    model_dir, _, token_ids = tiny
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(model_dir).eval(), [2])
    with torch.no_grad():
        cut.decoder.layers[1].mlp.down_proj.weight.fill_(float("nan"))
    stream = extraction.iter_vectors(
        cut,
        token_ids,
        [[0, 1]],
        pooling="mean",
        pad_id=0,
        prompt_ids=["first", "second"],
        device=torch.device("cpu"),
    )
    with pytest.raises(DataError, match=r"layer 2 for 2 prompt\(s\): \['first', 'second'\]"):
        next(stream)


def test_float16_overflow_is_caught_before_a_shard_is_written(tmp_path):
    vectors = torch.tensor([[1.0, 2.0], [1e6, 0.0]])  # (n, d_model), 1e6 > float16 max
    with pytest.raises(DataError, match=r"float16 activations .* \['big'\]"):
        extraction.write_shards(
            [([0, 1], {3: vectors})],
            [("s.safetensors", [0, 1])],
            tmp_path,
            dtype="float16",
            prompt_ids=["small", "big"],
        )
    assert not (tmp_path / "s.safetensors").exists()


def test_rank_batches_are_disjoint_and_together_cover_every_batch():
    batches = [[i] for i in range(7)]
    for world_size in (1, 2, 3):
        parts = [
            extraction.rank_batches(batches, rank=r, world_size=world_size)
            for r in range(world_size)
        ]
        assert sorted(b[0] for part in parts for b in part) == list(range(7))
    assert extraction.rank_batches(batches, rank=1, world_size=3) == [[1], [4]]


def pool_frame(n: int) -> pd.DataFrame:
    columns = [c for c in cache.INDEX_COLUMNS if c not in ("shard", "row")]
    return pd.DataFrame({c: [f"{c}{i}" for i in range(n)] for c in columns})


def test_index_puts_every_prompt_in_exactly_one_shard_row_in_pool_order():
    pool = pool_frame(7)
    batches = extraction.plan_batches(
        [3, 1, 4, 1, 5, 9, 2], batch_size=2
    )  # [[5,4],[2,0],[6,1],[3]]
    index = extraction.build_index(pool, batches, world_size=2, shard_size=3)
    assert list(index.columns) == cache.INDEX_COLUMNS
    assert index["prompt_id"].tolist() == pool["prompt_id"].tolist()
    assert not index.duplicated(["shard", "row"]).any()
    # rank 0 runs [5,4],[6,1] -> shard 0 rows 5,4,6 and shard 1 row 1; rank 1 runs [2,0],[3].
    r0, r0b, r1 = (
        cache.shard_name(0, rank=0),
        cache.shard_name(1, rank=0),
        cache.shard_name(0, rank=1),
    )
    assert list(zip(index["shard"], index["row"], strict=True)) == [
        (r1, 1), (r0b, 0), (r1, 0), (r1, 2), (r0, 1), (r0, 0), (r0, 2),
    ]  # fmt: skip


def test_shards_written_by_two_ranks_read_back_equal_to_one_rank(tiny, tmp_path):
    model_dir, _, token_ids = tiny
    cut = extraction.CutModel(AutoModelForCausalLM.from_pretrained(model_dir).eval(), [1, 3])
    pool = pool_frame(len(token_ids))
    batches = extraction.plan_batches([len(ids) for ids in token_ids], batch_size=2)
    vectors = {}
    for world_size in (1, 2):
        out_dir = tmp_path / f"world{world_size}"
        out_dir.mkdir()
        for rank in range(world_size):
            extraction.extract_to_shards(
                cut, token_ids, batches, out_dir, rank=rank, world_size=world_size, shard_size=2,
                pooling="mean", dtype="float32", pad_id=0, prompt_ids=pool["prompt_id"].tolist(),
                device=torch.device("cpu"),
            )  # fmt: skip
        index = extraction.build_index(pool, batches, world_size=world_size, shard_size=2)
        assert sorted(p.name for p in out_dir.iterdir()) == sorted(set(index["shard"]))
        vectors[world_size] = torch.stack(
            [cache.read_vectors(out_dir, index, layer=layer) for layer in (1, 3)]
        )  # (2, n, d_model)
    assert torch.equal(vectors[1], vectors[2])
    assert not torch.equal(vectors[1][0], vectors[1][1])  # two layers, two sets of vectors
    assert vectors[1].shape == (2, len(token_ids), 32) and torch.isfinite(vectors[1]).all()
