"""The cache format: pool checks, the cache key, the manifest and finishing a cache folder."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from lensforge.activations import cache
from lensforge.core import paths
from lensforge.core.artifacts import write_safetensors
from lensforge.core.errors import ArtifactError, DataError, ParamsError
from lensforge.core.params import ActivationsParams
from tests.helpers.lens_data import write_pool

SETTINGS = ActivationsParams(
    pooling="last", dtype="float16", compute_dtype="float32", batch_size=32, max_length=64,
    shard_size=4096,
)  # fmt: skip
CARD = {"n_layers": 4, "d_model": 32, "source": "hf", "name_or_path": "tiny", "revision": None}


def key(**changes) -> str:
    fields = {
        "card_sha256": "card", "weights_sha256": {"model.safetensors": "w"}, "pool_sha256": "pool",
        "layers": [2], "settings": SETTINGS, "compute_dtype": "float32",
    }  # fmt: skip
    return cache.cache_key(**{**fields, **changes})["cache_key"]


def test_the_cache_key_changes_with_every_setting_that_changes_a_vector():
    base = key()
    changed = [
        key(card_sha256="other"),
        key(weights_sha256={"model.safetensors": "other"}),
        key(pool_sha256="other"),
        key(layers=[3]),
        key(layers=[2, 3]),
        key(compute_dtype="bfloat16"),
        *(
            key(settings=dataclasses.replace(SETTINGS, **{name: value}))
            for name, value in (("pooling", "mean"), ("dtype", "float32"), ("max_length", 32))
        ),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_the_cache_key_ignores_batch_and_shard_size():
    layout = dataclasses.replace(SETTINGS, batch_size=3, shard_size=7)
    assert key(settings=layout) == key() and len(key()) == 64


def index_frame(shards: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {c: [f"{c}{i}" for i in range(len(shards))] for c in cache.INDEX_COLUMNS}
    ).assign(shard=shards, row=0)


def test_the_manifest_names_origin_dims_and_layout_and_holds_no_timing():
    index = index_frame(["b.safetensors", "a.safetensors", "a.safetensors"])
    card = {**CARD, "weights_sha256": {"model.safetensors": "w"}}
    manifest = cache.build_manifest(
        card, index, card_sha256="card", pool_sha256="pool", layers=[2], settings=SETTINGS,
        compute_dtype="float32", padding_side="right", n_truncated=1, n_processes=2,
    )  # fmt: skip
    assert manifest["model"] == {"source": "hf", "name_or_path": "tiny"}  # None is left out
    assert manifest["shards"] == ["a.safetensors", "b.safetensors"]
    assert (manifest["n_prompts"], manifest["d_model"], manifest["n_processes"]) == (3, 32, 2)
    assert manifest["cache_key"] == key() and manifest["weights_sha256"] == card["weights_sha256"]
    assert not [k for k in manifest if "second" in k or "time" in k or "date" in k]


def test_finish_writes_index_and_manifest_only_when_every_shard_is_there(tmp_path):
    index = index_frame(["a.safetensors", "b.safetensors"])
    write_safetensors(tmp_path / "a.safetensors", {cache.tensor_name(2): torch.zeros(1, 2)})
    with pytest.raises(ArtifactError, match=r"shards missing after extraction: \['b\."):
        cache.finish(tmp_path, index, manifest={"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]
    write_safetensors(tmp_path / "b.safetensors", {cache.tensor_name(2): torch.ones(1, 2)})
    cache.finish(tmp_path, index, manifest={"x": 1})
    assert cache.read_manifest(tmp_path) == {"x": 1}
    assert cache.read_index(tmp_path)["shard"].tolist() == ["a.safetensors", "b.safetensors"]
    index = cache.read_index(tmp_path)
    assert cache.read_vectors(tmp_path, index, layer=2).tolist() == [[0, 0], [1, 1]]
    with pytest.raises(ArtifactError, match="no vectors of layer 3"):
        cache.read_vectors(tmp_path, index, layer=3)


def test_check_layer_names_the_param_and_the_cached_layers():
    cache.check_layer({"layers": [3, 6]}, 6, key="train.layer")
    with pytest.raises(ParamsError, match=r"train.layer is 9.*holds layers \[3, 6\]") as info:
        cache.check_layer({"layers": [3, 6]}, 9, key="train.layer")
    assert info.value.row == "train.layer"


def test_read_pool_checks_ids_texts_and_presence(tmp_path):
    with pytest.raises(ArtifactError, match="run its prompts stage"):
        cache.read_pool(tmp_path / paths.PROMPT_POOL)
    pool = write_pool(tmp_path)
    assert cache.read_pool(tmp_path / paths.PROMPT_POOL).equals(pool[cache.POOL_COLUMNS])
    pool.loc[3, "prompt_id"] = pool.loc[0, "prompt_id"]
    pool.to_csv(tmp_path / paths.PROMPT_POOL, index=False)
    with pytest.raises(DataError, match="duplicate prompt ids") as info:
        cache.read_pool(tmp_path / paths.PROMPT_POOL)
    assert info.value.row == pool.loc[0, "prompt_id"]
    pool.drop(columns=["split"]).to_csv(tmp_path / paths.PROMPT_POOL, index=False)
    with pytest.raises(DataError, match=r"lacks columns \['split'\]"):
        cache.read_pool(tmp_path / paths.PROMPT_POOL)


def test_a_torn_manifest_is_an_artifact_error_naming_the_file(tmp_path):
    (tmp_path / paths.ACTIVATION_MANIFEST_NAME).write_text('{"cache_key": "ab', encoding="utf-8")
    with pytest.raises(ArtifactError, match="activations manifest is not valid JSON") as info:
        cache.read_manifest(tmp_path)
    assert info.value.path == tmp_path / paths.ACTIVATION_MANIFEST_NAME
