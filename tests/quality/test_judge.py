"""``quality.judge``: the embedding judge on a tiny random encoder with planted neighbours.

A random encoder knows no meaning, but it maps one text to one vector: an output that copies a
definition is that definition's exact neighbour (cosine 1), which plants the right answer."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lensforge.core.errors import DataError
from lensforge.quality import judge
from tests.helpers import tiny_encoder

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir

DEFINITIONS = {
    "Vodka": "an unaged colorless liquor originating in russia",
    "Whip": "a long flexible rod used to urge a horse on",
    "Clinic": "a medical establishment run by a group of medical specialists",
    "Violin": "bowed stringed instrument that is the highest member of the violin family",
    "Chest": "furniture with drawers for keeping clothes",
}


@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir):
    return judge.SentenceEncoder(str(tiny_encoder_dir), max_length=64, batch_size=2)


def test_the_encoder_gives_unit_rows_and_one_vector_per_text(encoder):
    vectors = encoder(["abc", "a longer text here", "abc"])
    assert vectors.shape == (3, tiny_encoder.D_MODEL)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(vectors[0], vectors[2])


def test_a_copied_definition_is_inferred_as_its_topic_and_graded_5(encoder):
    judged = judge.EmbeddingJudge(encoder, DEFINITIONS, edges=(0.2, 0.4, 0.6, 0.99))
    candidates = tuple(sorted(DEFINITIONS))
    items = [
        judge.JudgeItem(DEFINITIONS["Whip"], "Vodka", "Whip", candidates),  # off-topic negative
        judge.JudgeItem(DEFINITIONS["Vodka"], "Vodka", "Vodka", candidates),
        judge.JudgeItem("  ", "Vodka", "Vodka", candidates),
    ]
    whip, vodka, empty = judged.judge(items)
    assert whip.topic == "Whip" and vodka.topic == "Vodka"
    assert vodka.relevance == 5 and vodka.score == pytest.approx(1.0, abs=1e-5)
    assert whip.score < 0.99 and whip.relevance < 5
    assert (empty.topic, empty.relevance) == ("", 1)
    frame = judge.judgments_frame(items, [whip, vodka, empty])
    assert frame["topic_correct"].tolist() == [True, True, False]
    assert frame["n_candidates"].tolist() == [5, 5, 5]


def test_relevance_grade_counts_edges_at_or_below_the_score():
    edges = (0.1, 0.2, 0.3, 0.4)
    assert [judge.relevance_grade(s, edges=edges) for s in (-1, 0.1, 0.25, 0.39, 0.4, 0.9)] == [
        1,
        2,
        3,
        4,
        5,
        5,
    ]


def test_calibration_puts_own_examples_at_1_and_others_at_0(encoder):
    examples = {c: [d] for c, d in DEFINITIONS.items()}  # own example = the definition itself
    calibration = judge.calibrate(encoder, DEFINITIONS, examples, n_concepts=10, seed=0)
    assert calibration.related_cosine == pytest.approx(1.0, abs=1e-5)
    assert calibration.unrelated_cosine < 1.0 and calibration.n_pairs == 5
    edges = calibration.edges((0.0, 0.5, 0.75, 1.0))
    assert edges[0] == pytest.approx(calibration.unrelated_cosine)
    assert edges[3] == pytest.approx(calibration.related_cosine)
    assert edges[1] == pytest.approx((calibration.unrelated_cosine + 1.0) / 2, abs=1e-5)


def test_calibration_refuses_too_few_pairs_and_an_inverted_scale():
    with pytest.raises(DataError, match="at least two"):
        judge.calibrate(
            lambda t: torch.eye(len(t)), DEFINITIONS, {"Vodka": ["x"]}, n_concepts=5, seed=0
        )

    def constant(texts):  # every text the same vector: own examples no closer than others
        return torch.nn.functional.normalize(torch.ones(len(texts), 4), dim=1)

    examples = {c: ["some example"] for c in DEFINITIONS}
    with pytest.raises(DataError, match="no closer"):
        judge.calibrate(constant, DEFINITIONS, examples, n_concepts=5, seed=0)


def test_a_candidate_without_definition_is_a_data_error(encoder):
    judged = judge.EmbeddingJudge(encoder, DEFINITIONS, edges=(0.1, 0.2, 0.3, 0.4))
    with pytest.raises(DataError, match="no definition") as exc:
        judged.judge([judge.JudgeItem("text", "Vodka", "Vodka", ("Ghost", "Vodka"))])
    assert exc.value.row == "Ghost"
    with pytest.raises(ValueError, match="increasing"):
        judge.EmbeddingJudge(encoder, DEFINITIONS, edges=(0.3, 0.2, 0.4, 0.5))


def test_topic_candidates_are_target_siblings_and_seeded_randoms():
    others = [f"R{i}" for i in range(20)] + ["T", "S1"]
    got = judge.topic_candidates("T", ["S1", "S2"], others=others, n_random=3, seed=0)
    assert {"T", "S1", "S2"} <= set(got) and len(got) == 6
    assert got == judge.topic_candidates("T", ["S2", "S1"], others=others, n_random=3, seed=0)


def test_sample_items_grade_against_the_sampled_concept_and_infer_among_the_prompts_own():
    samples = pd.DataFrame(
        {"output": ["o1", "o2"], "concept": ["Vodka", "Vodka"], "prompt_concept": ["Vodka", "Whip"]}
    )
    siblings = {"Vodka": {"Whip"}, "Whip": {"Vodka", "Chest"}}
    items = judge.sample_items(
        samples, siblings=siblings, others=list(DEFINITIONS), n_random=0, seed=0
    )
    assert [(i.concept, i.target) for i in items] == [("Vodka", "Vodka"), ("Vodka", "Whip")]
    assert items[0].candidates == ("Vodka", "Whip")
    assert items[1].candidates == ("Chest", "Vodka", "Whip")
