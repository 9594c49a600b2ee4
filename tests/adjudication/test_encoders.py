"""The adjudication classifier: pooling, save/load round trip, refusal of missing or foreign weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lensforge.adjudication import encoders
from lensforge.core import paths, sequences
from lensforge.core.errors import ArtifactError
from tests.helpers import tiny_encoder

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir

CLASSES = {"sentiment": ["negative", "neutral", "positive"], "polarization": ["x", "y", "z"]}
HEAD = {"hidden_size": 8, "n_hidden": 1, "dropout": 0.1}


def _model(tiny_encoder_dir, pooling: str = "mean") -> tuple:
    encoder, tokenizer = encoders.load_pretrained(str(tiny_encoder_dir))
    model = encoders.MultiTaskClassifier(encoder, task_classes=CLASSES, pooling=pooling, **HEAD)
    return model.eval(), tokenizer


@pytest.mark.parametrize("pooling", encoders.POOLINGS)
def test_padding_does_not_change_a_sentence_vector(tiny_encoder_dir, pooling):
    model, tokenizer = _model(tiny_encoder_dir, pooling)
    texts = ["short one", "a much longer sentence here"]
    ids = sequences.tokenize(tokenizer, texts, max_length=32).ids
    alone = sequences.pad_batch(ids[:1], pad_id=tokenizer.pad_token_id)
    padded = sequences.pad_batch(ids, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        a = model(**alone)["sentiment"][0]
        b = model(**padded)["sentiment"][0]
    assert torch.allclose(a, b, atol=1e-5)


def test_saved_classifier_loads_back_with_identical_logits(tiny_encoder_dir, tmp_path):
    model, tokenizer = _model(tiny_encoder_dir)
    card = {"task_classes": CLASSES, "pooling": "mean", "head": HEAD, "max_length": 32}
    encoders.save_adjudicator(tmp_path, model, tokenizer, card=card)
    loaded, loaded_tokenizer, loaded_card = encoders.load_adjudicator(tmp_path)
    ids = sequences.tokenize(loaded_tokenizer, ["great film", "terrible, awful"], max_length=32).ids
    before = encoders.predict_logits(model, ids, batch_size=1, pad_id=0)
    after = encoders.predict_logits(loaded, ids, batch_size=2, pad_id=0)
    for task in CLASSES:
        assert torch.allclose(before[task], after[task], atol=1e-5)
    assert loaded_card["weights_sha256"] and "pooler" not in json.dumps(list(loaded.state_dict()))


def test_loading_refuses_missing_weights(tiny_encoder_dir, tmp_path):
    model, tokenizer = _model(tiny_encoder_dir)
    card = {"task_classes": CLASSES, "pooling": "mean", "head": HEAD, "max_length": 32}
    encoders.save_adjudicator(tmp_path, model, tokenizer, card=card)
    (tmp_path / encoders.WEIGHTS_NAME).unlink()
    with pytest.raises(ArtifactError, match="untrained model"):
        encoders.load_adjudicator(tmp_path)
    with pytest.raises(ArtifactError, match="trained weights not found"):
        encoders.load_adjudicator(tmp_path / "never_trained")


def test_loading_refuses_weights_that_differ_from_the_card_or_the_model(tiny_encoder_dir, tmp_path):
    model, tokenizer = _model(tiny_encoder_dir)
    card = {"task_classes": CLASSES, "pooling": "mean", "head": HEAD, "max_length": 32}
    encoders.save_adjudicator(tmp_path, model, tokenizer, card=card)
    card_path = tmp_path / encoders.CARD_NAME
    written = json.loads(card_path.read_text())
    written["weights_sha256"] = "0" * 64
    card_path.write_text(json.dumps(written))
    with pytest.raises(ArtifactError, match="differs from the card"):
        encoders.load_adjudicator(tmp_path)
    # a card asking for deeper or wider heads than the saved weights have
    for head in ({**HEAD, "n_hidden": 2}, {**HEAD, "hidden_size": 16}):
        encoders.save_adjudicator(tmp_path, model, tokenizer, card={**card, "head": head})
        with pytest.raises(ArtifactError, match="do not match the model"):
            encoders.load_adjudicator(tmp_path)


def test_packaged_minilm_is_found_offline(tmp_path):
    location = encoders.encoder_location("minilm", "", root=tmp_path)
    assert location.endswith("model")
    with pytest.raises(ValueError, match="unknown encoder source"):
        encoders.encoder_location("bert", "", root=tmp_path)


def test_the_subject_encoder_must_have_been_built_first(tmp_path):
    with pytest.raises(ArtifactError, match="run the subject_model stage first"):
        encoders.encoder_location("subject", "", root=tmp_path)


def test_the_subject_model_as_encoder_runs_forward_and_backward(tiny_model_dir, tmp_path):
    """The tiny random Gemma-3 (the subject model's architecture) at models/subject: one
    forward and backward pass of the multi-task classifier reaches the decoder layers."""
    shutil.copytree(tiny_model_dir, tmp_path / paths.SUBJECT_MODEL_DIR)
    location = encoders.encoder_location("subject", "", root=tmp_path)
    encoder, tokenizer = encoders.load_pretrained(location)
    model = encoders.MultiTaskClassifier(
        encoder,
        task_classes={"stance": ("against", "none", "favor")},
        pooling="mean",
        hidden_size=8,
        n_hidden=1,
        dropout=0.0,
    )
    batch = sequences.pad_batch(
        sequences.tokenize(tokenizer, ["i love this", "no"], max_length=8).ids,
        pad_id=sequences.pad_id_of(tokenizer),
    )
    logits = model(batch["input_ids"], batch["attention_mask"])["stance"]  # (2, 3)
    assert logits.shape == (2, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    first_layer = next(p for n, p in model.named_parameters() if ".layers.0." in n)
    assert first_layer.grad is not None and first_layer.grad.abs().sum() > 0
