"""Concept lens rows, sibling rank accuracy, the saved stack's checks and the pack manifest."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lensforge.concepts import artifacts as lens_io
from lensforge.concepts import evaluation, lens_pack, rows, training
from lensforge.core.errors import ArtifactError, DataError


def _index() -> pd.DataFrame:
    """Six cached prompts: A has 2 train / 1 test, B 1 train / 1 test, C 1 train."""
    return pd.DataFrame(
        {
            "prompt_id": ["a1", "a2", "a3", "b1", "b2", "c1"],
            "concept": ["A", "A", "A", "B", "B", "C"],
            "split": ["train", "train", "test", "train", "test", "train"],
        }
    )


def _negatives() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "concept": ["A", "A", "A", "B"],
            "split": ["train", "train", "train", "test"],
            "prompt_id": ["b1", "c1", "b1", "a3"],
            "negative": ["sibling", "random", "sibling", "sibling"],
        }
    )


def test_split_rows_give_own_prompts_and_interleaved_negatives_by_cache_row():
    positives, negatives = rows.split_rows(_index(), _negatives(), ["A", "B"], split="train")
    assert positives[0].tolist() == [0, 1] and positives[1].tolist() == [3]
    # siblings b1, b1 and random c1 interleave: sibling, random, sibling
    assert negatives[0].tolist() == [3, 5, 3] and negatives[1].tolist() == []


def test_labelled_rows_keep_as_many_negatives_as_the_ratio_allows():
    labelled = rows.labelled_rows(_index(), _negatives(), ["A"], split="train", negative_ratio=0.5)
    index, label = labelled.rows_of(0)
    assert index.tolist() == [0, 1, 3] and label.tolist() == [1.0, 1.0, 0.0]


def test_a_negative_outside_the_cache_is_a_data_error():
    negatives = pd.concat(
        [
            _negatives(),
            pd.DataFrame(
                [{"concept": "A", "split": "train", "prompt_id": "zz", "negative": "random"}]
            ),
        ]  # fmt: skip
    )
    with pytest.raises(DataError, match="not in the activation cache"):
        rows.split_rows(_index(), negatives, ["A"], split="train")


def test_sibling_rank_accuracy_counts_prompts_where_the_own_lens_beats_every_sibling():
    probs = torch.tensor([[0.9, 0.2, 0.5], [0.4, 0.6, 0.1], [0.3, 0.1, 0.8]])  # (rows, lenses)
    ranks = evaluation.sibling_ranks(
        probs, [torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([])], [[1, 2], [0], []]
    )
    # lens 0 wins row 0 (0.9 > 0.5), loses row 1 to lens 1 (0.6 > 0.4): 0.5, stolen by lens 1
    assert ranks[0] == (0.5, 1)
    assert ranks[1] == (1.0, None)  # 0.6 > 0.4 on its only prompt
    assert ranks[2] == (None, None)  # no siblings, no prompts


def _stack(n: int = 3, d: int = 4) -> training.LensStack:
    generator = torch.Generator().manual_seed(0)
    return training.LensStack(
        kind="linear",
        params={"weight": torch.randn(n, d, generator=generator), "bias": torch.zeros(n)},
        feature_mean=torch.zeros(d),
        feature_std=torch.ones(d),
    )


def test_saved_lenses_load_back_and_refuse_a_changed_file_or_other_activations(tmp_path):
    records = pd.DataFrame({"concept": ["A", "B", "C"], "tier": ["A", "F", "F"]})
    lens_io.save_lenses(
        tmp_path, _stack(), records, card={"layer": 2, "activation_manifest_sha256": "abc"}
    )
    weights, loaded, card = lens_io.load_lenses(tmp_path, manifest_sha256="abc")
    assert torch.equal(weights.params["weight"], _stack().params["weight"])
    assert loaded["concept"].tolist() == ["A", "B", "C"] and card["n_lenses"] == 3
    with pytest.raises(ArtifactError, match="other activations"):
        lens_io.load_lenses(tmp_path, manifest_sha256="def")
    weights_path = tmp_path / "lenses.safetensors"
    weights_path.write_bytes(weights_path.read_bytes()[:-1] + b" ")
    with pytest.raises(ArtifactError, match="sha256"):
        lens_io.load_lenses(tmp_path)


def test_pack_manifest_follows_the_weights_order_with_scores_and_synsets():
    records = pd.DataFrame(
        {"concept": ["B", "A"], "pack_layer": [1, 0], "tier": ["F", "A"], "graduated": [0, 1],
         "val_f1": [0.5, 1.0], "threshold": [0.5, 0.5], "samples": [10, 10]}
    )  # fmt: skip
    concepts = pd.DataFrame({"concept": ["A", "B"], "synsets": ["01.n|02.n", ""]})
    tested = pd.DataFrame({"concept": ["A", "B"], "f1": [0.8, 0.4], "auroc": [0.9, ""]})
    card = {"kind": "linear", "layer": 6, "d_model": 4, "activation_manifest_sha256": "abc"}
    pack = lens_pack.manifest(
        records, concepts, tested, card=card, weights_sha256="w", evaluate_sha256="e"
    )
    assert [entry["concept"] for entry in pack["lenses"]] == ["B", "A"]
    assert pack["lenses"][1]["synsets"] == ["01.n", "02.n"] and pack["lenses"][1]["graduated"]
    assert pack["lenses"][0]["test_auroc"] is None and pack["lenses"][1]["test_f1"] == 0.8
    assert pack["model_layer"] == 6 and pack["n_lenses"] == 2


def test_summary_of_lenses_without_siblings_or_scores_holds_no_nan():
    table = pd.DataFrame(
        {"concept": ["A"], "pack_layer": [0], "f1": [float("nan")], "auroc": [None],
         "sibling_rank_accuracy": [None], "graduated": [False], "tier": ["F"]}
    )  # fmt: skip
    import numpy as np

    out = evaluation.summary(
        table, np.array([1, 0]), np.array([0.7, 0.2]), n_bins=10, tier_names=["A"]
    )
    assert out["test_f1_mean"] is None and out["sibling_rank_accuracy_mean"] is None
    assert out["layer_0/test_f1_mean"] is None and out["share_tier_F"] == 1.0


def test_selecting_pack_layers_the_pack_lacks_is_a_params_error():
    from lensforge.concepts import prompts
    from lensforge.core.errors import ParamsError

    concepts = pd.DataFrame({"term": ["A"], "pack_layer": [0], "lemmas": [[]], "aliases": [[]]})
    with pytest.raises(ParamsError, match=r"no concept on pack layers \[9\].*layers \[0\]"):
        prompts.select_concepts(concepts, pack_layers=[9])
