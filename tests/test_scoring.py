"""Token-by-token scoring (``lensforge.scoring``) on the tiny model with hand-made lenses."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lensforge import scoring
from lensforge.activations import extraction
from lensforge.concepts import training as concept_training
from lensforge.core.errors import ArtifactError
from lensforge.lenses import models

D_MODEL = 32  # the tiny model's width


@pytest.fixture(scope="module")
def cut_and_tokenizer(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return extraction.CutModel(model, [1, 2]), AutoTokenizer.from_pretrained(tiny_model_dir)


def _lens(seed: int) -> models.Lens:
    torch.manual_seed(seed)
    return models.build_lens("tripole", d_model=D_MODEL).eval()


def test_token_vectors_are_the_stream_or_its_running_mean():
    hidden = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    assert torch.equal(scoring.token_vectors(hidden, pooling="last"), hidden)
    expected = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    assert torch.allclose(scoring.token_vectors(hidden, pooling="mean"), expected)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_the_last_token_of_a_text_scores_like_the_extractors_vector_of_that_text(
    cut_and_tokenizer, pooling
):
    cut, tokenizer = cut_and_tokenizer
    lenses = {0: _lens(0), 1: _lens(1)}
    reader = scoring.SimplexReader("taste", layer=2, pooling=pooling, lenses=lenses)
    scorer = scoring.Scorer(cut, tokenizer, [reader])
    text = "What would you notice if a teacher were full of consideration?"
    scored = scorer.score(text)

    ids = tokenizer([text], add_special_tokens=True)["input_ids"]
    ((_, vectors),) = extraction.iter_vectors(
        cut, ids, [[0]], pooling=pooling, pad_id=0, prompt_ids=["p"], device=torch.device("cpu")
    )
    cached = vectors[2]  # (1, d_model): what the activations stage stores for this prompt
    want = torch.stack([models.pole_probabilities(lens, cached) for lens in lenses.values()])
    torch.testing.assert_close(
        scored.simplexes["taste"][-1], want.mean(dim=0)[0], atol=1e-5, rtol=0
    )
    assert len(scored.tokens) == len(ids[0]) == len(scored.simplexes["taste"])
    assert scored.seeds == {"taste": [0, 1]}


def test_top_concepts_per_token_are_the_highest_scoring_graduated_lenses(cut_and_tokenizer):
    cut, tokenizer = cut_and_tokenizer
    generator = torch.Generator().manual_seed(0)
    stack = concept_training.LensStack(
        kind="linear",
        params={
            "weight": torch.randn(4, D_MODEL, generator=generator),
            "bias": torch.zeros(4),
        },
        feature_mean=torch.zeros(D_MODEL),
        feature_std=torch.ones(D_MODEL),
    )
    concepts = scoring.ConceptReader(layer=1, pooling="last", weights=stack, concepts=list("abcd"))
    reader = scoring.SimplexReader("taste", layer=2, pooling="last", lenses={0: _lens(0)})
    scorer = scoring.Scorer(cut, tokenizer, [reader], concepts=concepts, top_k=2)
    scored = scorer.score("a sour taste")
    token_ids = tokenizer("a sour taste", add_special_tokens=True)["input_ids"]
    probs = concept_training.score(stack, scorer.hidden(token_ids)[1])  # (seq, 4)
    for t, top in enumerate(scored.concepts):
        order = probs[t].argsort(descending=True)[:2].tolist()
        assert [name for name, _ in top] == [list("abcd")[i] for i in order]
        assert top[0][1] == pytest.approx(float(probs[t].max()))


def test_a_reader_at_a_layer_the_cut_does_not_capture_is_refused(cut_and_tokenizer):
    cut, tokenizer = cut_and_tokenizer
    reader = scoring.SimplexReader("taste", layer=3, pooling="last", lenses={0: _lens(0)})
    with pytest.raises(ValueError, match="captures"):
        scoring.Scorer(cut, tokenizer, [reader])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_card_sha256": "other"}, "another subject model"),
        ({"cache_key": "other"}, "another activation cache"),
        ({"cache_key": None}, "lacks"),
    ],
)
def test_cards_of_another_model_or_cache_are_refused(changes, message, tmp_path):
    card = {"layer": 2, "pooling": "last", "cache_key": "key", "model_card_sha256": "model"}
    card.update(changes)
    card = {k: v for k, v in card.items() if v is not None}
    with pytest.raises(ArtifactError, match=message):
        scoring._check_card(card, where=tmp_path, model_card_sha256="model", cache_key="key")
    scoring._check_card(
        {"layer": 2, "pooling": "last", "cache_key": "key", "model_card_sha256": "model"},
        where=tmp_path,
        model_card_sha256="model",
        cache_key="key",
    )


def test_the_table_has_a_line_per_token_and_marks_generated_ones(cut_and_tokenizer):
    cut, tokenizer = cut_and_tokenizer
    reader = scoring.SimplexReader("taste", layer=2, pooling="last", lenses={0: _lens(0)})
    scored = scoring.Scorer(cut, tokenizer, [reader]).score("bitter and sweet")
    table = scoring.as_table(scored, first_generated=2).splitlines()
    assert len(table) == 2 + len(scored.tokens)
    assert "taste neg" in table[0] and "pole" in table[0]
    assert table[2].startswith(" 0") and table[4].startswith(">2")
    data = scoring.as_json(scored, text="bitter and sweet")
    assert len(data["simplexes"]["taste"]) == len(data["tokens"])
    assert all(sum(row) == pytest.approx(1.0) for row in data["simplexes"]["taste"])
