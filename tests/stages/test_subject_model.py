"""subject_model stage smoke tests on the tiny random model (source hf, local folder)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from lensforge.core import params as params_mod
from lensforge.core import paths
from lensforge.core.errors import ParamsError
from lensforge.stages import subject_model


def hf_params(project_root, name_or_path: str) -> params_mod.Params:
    params = params_mod.load(project_root / paths.PARAMS)
    model = dataclasses.replace(params.model, source="hf", name_or_path=name_or_path, layers=(2,))
    return dataclasses.replace(params, model=model)


def test_subject_model_saves_a_loadable_hf_folder_with_its_card(
    project_root, tiny_model_dir, tmp_path
):
    subject_model.run(hf_params(project_root, str(tiny_model_dir)), root=tmp_path)

    model_dir = tmp_path / paths.SUBJECT_MODEL_DIR
    card = json.loads((model_dir / paths.MODEL_CARD_NAME).read_text())
    assert card["source"] == "hf" and card["name_or_path"] == str(tiny_model_dir)
    assert (card["n_layers"], card["d_model"]) == (4, 32)
    assert set(card["weights_sha256"]) == {"model.safetensors"}
    assert "conversion_seconds" not in card  # a timing would change the folder's hash
    metrics = json.loads((tmp_path / paths.SUBJECT_MODEL_METRICS).read_text())
    assert metrics["conversion_seconds"] > 0 and metrics["load_seconds"] > 0
    assert (metrics["n_layers"], metrics["d_model"]) == (4, 32)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.num_hidden_layers == 4 and tokenizer("a b")["input_ids"][0] == 2
    assert not (tmp_path / "models" / "subject.tmp").exists()


def test_a_failed_subject_model_run_leaves_no_output_folder(project_root, tmp_path):
    with pytest.raises(ParamsError, match="cannot load model"):
        subject_model.run(hf_params(project_root, str(tmp_path / "no_model_here")), root=tmp_path)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == []
    assert not (tmp_path / paths.SUBJECT_MODEL_METRICS).exists()
