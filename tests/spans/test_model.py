"""The span model: causal encoders read no later bar; saved models load back equal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensforge.core.errors import ArtifactError
from lensforge.spans import model as span_model


def _model(kind: str, *, causal: bool) -> span_model.SpanModel:
    config = span_model.SpanModelConfig(
        n_features=3,
        window=20,
        kind=kind,
        hidden=8,
        n_layers=3,
        kernel=3,
        dropout=0.0,
        causal=causal,
    )
    return span_model.build_model(config, seed=0).eval()


@pytest.mark.parametrize("kind", ["conv", "gru"])
def test_a_causal_encoder_reads_no_later_bar_and_a_centred_one_does(kind):
    x = torch.randn(2, 20, 3, generator=torch.Generator().manual_seed(0))
    later = x.clone()
    later[:, 12:] += 5.0  # change every bar from 12 on
    for causal in (True, False):
        model = _model(kind, causal=causal)
        with torch.no_grad():
            a, b = model(x), model(later)
        for head in ("span", "countdown"):
            same = torch.allclose(a[head][:, :12], b[head][:, :12], atol=1e-6)
            assert same == causal, (kind, causal, head)
        pointers_same = torch.allclose(a["pointers"][..., :12], b["pointers"][..., :12], atol=1e-6)
        assert pointers_same == causal


def test_a_saved_model_loads_back_and_predicts_the_same(tmp_path):
    model = _model("conv", causal=False)
    model.set_standardisation(np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.0]))
    card = {"seed": 4, "countdown_scale": "unit", "countdown_clip": 20.0, "tasks": ["span"]}
    span_model.save_span_model(tmp_path / "models/spans/seed_4", model, card)
    (loaded,) = span_model.load_span_models(tmp_path)
    x = np.random.default_rng(0).normal(size=(3, 20, 3)).astype(np.float32)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.as_tensor(x))["span"]).numpy()
    out = loaded.predict(x, batch_size=2)
    np.testing.assert_allclose(out["span_probs"], expected, rtol=1e-6)
    assert loaded.seed == 4 and out["class_probs"].shape == (3, 3)
    np.testing.assert_allclose(out["start_probs"].sum(axis=1), 1.0, rtol=1e-5)
    assert out["countdown_bars"].shape == (3, 20)


def test_no_model_or_a_broken_one_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="no trained span model"):
        span_model.load_span_models(tmp_path)
    folder = tmp_path / "models/spans/seed_0"
    span_model.save_span_model(folder, _model("gru", causal=True), {"seed": 0})
    (folder / "model.safetensors").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        span_model.load_span_models(tmp_path)
