"""activations stage smoke tests: tiny random subject model, a hand-written pool, tmp folders."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from lensforge.activations import cache
from lensforge.core import params as params_mod
from lensforge.core import paths
from lensforge.core.artifacts import file_sha256
from lensforge.core.errors import DataError, ParamsError
from lensforge.stages import activations, subject_model
from tests.helpers.lens_data import TEXTS, write_pool


def stage_params(project_root, name_or_path, *, layers=(2,), **activations_overrides):
    params = params_mod.load(project_root / paths.PARAMS)
    model = dataclasses.replace(
        params.model, source="hf", name_or_path=str(name_or_path), layers=layers
    )
    settings = dataclasses.replace(
        params.activations,
        **{"batch_size": 2, "shard_size": 3, "dtype": "float32", **activations_overrides},
    )
    return dataclasses.replace(params, model=model, activations=settings)


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory, project_root, tiny_model_dir):
    """The tiny model converted once by the subject_model stage, copied into each test's root."""
    root = tmp_path_factory.mktemp("subject_root")
    subject_model.run(stage_params(project_root, tiny_model_dir), root=root)
    return root / paths.SUBJECT_MODEL_DIR


@pytest.fixture()
def root(tmp_path, subject_dir):
    shutil.copytree(subject_dir, tmp_path / paths.SUBJECT_MODEL_DIR)
    return tmp_path


def test_activations_writes_shards_index_manifest_and_metrics(project_root, root):
    pool = write_pool(root)
    params = stage_params(project_root, root / paths.SUBJECT_MODEL_DIR, dtype="float16")
    activations.run(params, root=root)

    act_dir = root / paths.ACTIVATIONS_DIR
    index = cache.read_index(act_dir)
    assert list(index.columns) == cache.INDEX_COLUMNS
    assert index["prompt_id"].tolist() == pool["prompt_id"].tolist()
    assert index[["split", "pole", "label"]].equals(pool[["split", "pole", "label"]])
    assert not index.duplicated(["shard", "row"]).any()
    names = sorted(set(index["shard"]))
    assert names == [cache.shard_name(0), cache.shard_name(1), cache.shard_name(2)]  # 7 rows / 3
    with safe_open(str(act_dir / names[0]), framework="pt") as handle:
        assert list(handle.keys()) == [cache.tensor_name(2)]
        assert handle.get_tensor(cache.tensor_name(2)).dtype == torch.float16
    vectors = cache.read_vectors(act_dir, index, layer=2)  # (7, d_model)
    assert vectors.shape == (7, 32) and torch.isfinite(vectors).all()

    manifest = cache.read_manifest(act_dir)
    card_path = root / paths.SUBJECT_MODEL_DIR / paths.MODEL_CARD_NAME
    assert manifest["model_card_sha256"] == file_sha256(card_path)
    assert manifest["weights_sha256"] == json.loads(card_path.read_text())["weights_sha256"]
    assert manifest["prompt_pool_sha256"] == file_sha256(root / paths.PROMPT_POOL)
    assert manifest["model"]["source"] == "hf"
    assert manifest["layers"] == [2] and manifest["dtype"] == "float16"
    assert manifest["pooling"] == params.activations.pooling
    assert (manifest["n_prompts"], manifest["d_model"], manifest["max_length"]) == (7, 32, 64)
    assert manifest["shards"] == names and len(manifest["cache_key"]) == 64

    metrics = json.loads((root / paths.ACTIVATIONS_METRICS).read_text())
    assert (metrics["n_prompts"], metrics["d_model"], metrics["n_shards"]) == (7, 32, 3)
    assert metrics["prompts_per_second"] > 0 and metrics["n_processes"] == 1
    assert sorted(p.name for p in (root / "data").iterdir()) == ["activations", "prompts"]


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_cached_vectors_equal_each_prompt_run_alone_through_the_full_model(
    project_root, root, pooling
):
    write_pool(root)
    model_dir = root / paths.SUBJECT_MODEL_DIR
    params = stage_params(project_root, model_dir, layers=(1, 3), pooling=pooling)
    activations.run(params, root=root)
    act_dir = root / paths.ACTIVATIONS_DIR
    got = cache.read_vectors(act_dir, cache.read_index(act_dir), layer=3)  # (7, d_model)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    full = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        states = [
            full(**tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states[
                3
            ][0]
            for text in TEXTS
        ]  # each (seq, d_model)
    want = torch.stack([s[-1] if pooling == "last" else s.mean(dim=0) for s in states])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_a_run_that_fails_mid_way_leaves_no_activation_cache(project_root, root):
    # One word's embedding is so large that its prompt overflows float16 storage; the prompt is
    # the shortest, so it runs last, after the earlier shards were already written.
    model_dir = root / paths.SUBJECT_MODEL_DIR
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    bitter = AutoTokenizer.from_pretrained(model_dir).convert_tokens_to_ids("bitter")
    with torch.no_grad():
        model.get_input_embeddings().weight[bitter] = 1e5
    model.save_pretrained(model_dir)
    write_pool(root)
    params = stage_params(project_root, model_dir, pooling="mean", dtype="float16", shard_size=2)

    with pytest.raises(DataError, match=r"float16 activations .* \['taste\|neutral\|syn1\|0'\]"):
        activations.run(params, root=root)
    assert sorted(p.name for p in (root / "data").iterdir()) == ["prompts"]
    assert not (root / paths.ACTIVATIONS_METRICS).exists()


def test_a_layer_above_the_model_is_a_params_error_and_writes_nothing(project_root, root):
    write_pool(root)
    params = stage_params(project_root, root / paths.SUBJECT_MODEL_DIR, layers=(2, 5))
    with pytest.raises(
        ParamsError, match=r"model\.layers must name layers between 1 and 4.* got 5"
    ):
        activations.run(params, root=root)
    assert not (root / paths.ACTIVATIONS_DIR).exists()


def test_a_pool_with_an_empty_text_names_the_prompt(project_root, root):
    write_pool(root, texts=["a good day", "  ", "bitter"])
    params = stage_params(project_root, root / paths.SUBJECT_MODEL_DIR)
    with pytest.raises(DataError, match="empty prompt text") as info:
        activations.run(params, root=root)
    assert info.value.row == "taste|neutral|syn1|0"
    assert not (root / paths.ACTIVATIONS_DIR).exists()
