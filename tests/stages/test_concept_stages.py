"""Concept stage smoke tests: the real first-light archive (pack layers 0-1, 28 concepts), the
tiny random subject model, tmp folders; every stage's ``run`` in pipeline order."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pandas as pd
import pytest
import torch
from safetensors import safe_open

from lensforge.activations import cache
from lensforge.core import params as params_mod
from lensforge.core import paths
from lensforge.core.errors import DataError, ParamsError
from lensforge.stages import (
    concept_activations,
    concept_prompts,
    evaluate_concepts,
    lens_pack,
    subject_model,
    train_concepts,
    validate_concepts,
)


def tiny_params(project_root, tiny_model_dir, **prompt_overrides) -> params_mod.Params:
    params = params_mod.load(project_root / paths.PARAMS)
    model = dataclasses.replace(
        params.model, source="hf", name_or_path=str(tiny_model_dir), layers=(2,)
    )
    overrides = {"pack_layers": (0, 1), "per_concept": 8, **prompt_overrides}
    prompts = dataclasses.replace(params.concept_prompts, **overrides)
    training = dataclasses.replace(params.train_concepts, layer=2)
    return dataclasses.replace(
        params, model=model, concept_prompts=prompts, train_concepts=training
    )


def project(root, project_root):
    shutil.copytree(project_root / paths.CONCEPTS_RAW_DIR, root / paths.CONCEPTS_RAW_DIR)
    return root


@pytest.fixture(scope="module")
def done(tmp_path_factory, project_root, tiny_model_dir):
    root = project(tmp_path_factory.mktemp("concepts"), project_root)
    params = tiny_params(project_root, tiny_model_dir)
    for stage in (validate_concepts, concept_prompts, subject_model, concept_activations,
                  train_concepts, evaluate_concepts, lens_pack):  # fmt: skip
        stage.run(params, root=root)
    return root, params


def test_the_branch_writes_every_output_and_metrics_file(done):
    root, _ = done
    for path in (
        paths.VALIDATE_CONCEPTS_METRICS, paths.CONCEPT_PROMPTS_METRICS,
        paths.CONCEPT_ACTIVATIONS_METRICS, paths.TRAIN_CONCEPTS_METRICS,
        paths.EVALUATE_CONCEPTS_METRICS, paths.LENS_PACK_METRICS, paths.EVALUATE_CONCEPTS_F1,
        paths.EVALUATE_CONCEPTS_TIERS, paths.EVALUATE_CONCEPTS_F1_BY_SAMPLES,
    ):  # fmt: skip
        assert (root / path).is_file(), path
    assert json.loads((root / paths.VALIDATE_CONCEPTS_METRICS).read_text())["success"] is True
    counts = json.loads((root / paths.CONCEPT_PROMPTS_METRICS).read_text())
    assert counts["n_concepts"] == 28 and counts["n_prompts"] == 28 * 8
    assert counts["cross_split_identical_texts"] == 0 and counts["cross_split_template_shapes"] == 0
    assert not list(root.glob("**/*.tmp"))


def test_every_concept_lens_is_in_the_pack_with_its_record(done):
    root, _ = done
    manifest = json.loads((root / paths.LENS_PACK_DIR / paths.LENS_PACK_MANIFEST_NAME).read_text())
    records = pd.read_csv(root / paths.CONCEPT_LENSES_DIR / paths.CONCEPT_RECORDS_NAME)
    assert [e["concept"] for e in manifest["lenses"]] == records["concept"].tolist()
    weights = root / paths.LENS_PACK_DIR / paths.LENS_PACK_WEIGHTS_NAME
    with safe_open(str(weights), framework="pt") as handle:
        assert handle.get_tensor("weight").shape == (28, 32)  # the tiny model's width
        assert torch.isfinite(handle.get_tensor("weight")).all()
    assert set(records["tier"]) <= {"A", "B+", "B", "C+", "C", "F"}
    failed = records[records["tier"] == "F"]
    assert failed["fail_reason"].isin(["data", "schedule", "no_data"]).all()


def test_graduation_reads_no_test_row_perturbed_test_vectors_give_the_same_lenses(done, tmp_path):
    root, params = done
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    from safetensors.torch import load_file, save_file

    act_dir = copy / paths.CONCEPT_ACTIVATIONS_DIR
    index = pd.read_csv(act_dir / paths.ACTIVATION_INDEX_NAME)
    for shard, rows in index[index["split"] == "test"].groupby("shard"):
        tensors = load_file(str(act_dir / shard))
        block = tensors[cache.tensor_name(2)].clone()
        block[torch.tensor(rows["row"].tolist())] = 1e3
        save_file({cache.tensor_name(2): block}, str(act_dir / shard))
    train_concepts.run(params, root=copy)
    name = paths.CONCEPT_WEIGHTS_NAME
    before = (root / paths.CONCEPT_LENSES_DIR / name).read_bytes()
    assert (copy / paths.CONCEPT_LENSES_DIR / name).read_bytes() == before


def test_evaluation_refuses_lenses_trained_on_other_activations(done, tmp_path):
    root, params = done
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    manifest = copy / paths.CONCEPT_ACTIVATIONS_DIR / paths.ACTIVATION_MANIFEST_NAME
    manifest.write_text(manifest.read_text().replace("{", '{"edited": true, ', 1))
    with pytest.raises(Exception, match="other activations"):
        evaluate_concepts.run(params, root=copy)


def test_a_broken_pack_stops_validation_naming_member_concept_and_rule(
    project_root, tiny_model_dir, tmp_path
):
    import io
    import tarfile

    root = tmp_path
    source = project_root / paths.CONCEPT_PACK
    target = root / paths.CONCEPT_PACK
    target.parent.mkdir(parents=True)
    with tarfile.open(source) as src, tarfile.open(target, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if data is not None and member.name.endswith("/layer1/region.json"):
                doc = json.loads(data)
                doc["definition"] = ""
                data = json.dumps(doc).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(DataError, match=r"Region.*definition|definition.*Region"):
        validate_concepts.run(tiny_params(project_root, tiny_model_dir), root=root)
    report = json.loads((root / paths.VALIDATE_CONCEPTS_METRICS).read_text())
    assert report["success"] is False and any(f["row"] == "Region" for f in report["failures"])


def test_pack_layers_the_pack_lacks_are_a_params_error(project_root, tiny_model_dir, tmp_path):
    root = project(tmp_path, project_root)
    with pytest.raises(ParamsError, match="no concept on pack layers"):
        concept_prompts.run(tiny_params(project_root, tiny_model_dir, pack_layers=(9,)), root=root)
