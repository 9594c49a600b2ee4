"""Overlap labels (``prompts.overlap``), soft targets and the overlap-aware scores, on hand-made rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lensforge.core.errors import ParamsError
from lensforge.core.params import LossParams
from lensforge.lenses import evaluation, models, overlap
from lensforge.lenses.hatcat import POLES

NO_HINGE = LossParams(margin_weight=0.0, ortho_weight=0.0, margin_target=0.5, margin_floor=0.05)


def _index() -> pd.DataFrame:
    """Two single-pole synsets and one neutral+positive synset (a row set per pole) per split."""
    rows = []
    for split in ("train", "validation", "test"):
        for pole, poles in (
            ("negative", "negative"),
            ("positive", "positive"),
            ("neutral", "neutral+positive"),
            ("positive", "neutral+positive"),
        ):
            for rank in range(2):
                rows.append(
                    {
                        "prompt_id": f"{split}|{pole}|{poles}|{rank}",
                        "simplex": "taste",
                        "pole": pole,
                        "label": POLES.index(pole),
                        "poles": poles,
                        "split": split,
                        "text": f"{poles} {split} {rank}",
                    }
                )
    return pd.DataFrame(rows)


def test_join_poles_orders_as_poles_and_rejects_unknown_names():
    assert overlap.join_poles(["positive", "neutral"]) == "neutral+positive"
    # as ``groupby(...).agg`` passes it: a Series whose index is not the poles
    assert (
        overlap.join_poles(pd.Series(["positive", "neutral"], index=[7, 9])) == "neutral+positive"
    )
    with pytest.raises(ValueError, match="unknown poles"):
        overlap.join_poles(["happy"])


def test_primary_pole_follows_the_rule():
    assert overlap.primary_pole("negative+neutral", rule="neutral") == "neutral"
    assert overlap.primary_pole("negative+neutral", rule="polar") == "negative"
    assert overlap.primary_pole("positive", rule="polar") == "positive"
    with pytest.raises(ParamsError, match="overlap_primary"):
        overlap.primary_pole("negative+neutral", rule="first")


def test_duplicate_keeps_every_row_hard():
    index = _index()
    rows = overlap.labelled_rows(index, mode="duplicate", primary="neutral")
    assert len(rows) == len(index) and not rows["soft"].any()


@pytest.mark.parametrize("primary", ["neutral", "polar"])
def test_primary_keeps_one_row_set_per_synset_labelled_with_its_primary_pole(primary):
    rows = overlap.labelled_rows(_index(), mode="primary", primary=primary)
    overlapping = rows[rows["poles"] == "neutral+positive"]
    expected = "neutral" if primary == "neutral" else "positive"
    assert set(overlapping["pole"]) == {expected}
    assert len(overlapping) == 6  # 2 prompts x 3 splits
    assert not rows["soft"].any()


def test_soft_marks_only_train_rows_of_overlap_synsets():
    rows = overlap.labelled_rows(_index(), mode="soft", primary="neutral")
    soft = rows[rows["soft"]]
    assert set(soft["split"]) == {"train"} and set(soft["poles"]) == {"neutral+positive"}
    held_out = rows[rows["split"] != "train"]
    primary = overlap.labelled_rows(_index(), mode="primary", primary="neutral")
    pd.testing.assert_frame_equal(
        held_out.drop(columns="soft"), primary[primary["split"] != "train"].drop(columns="soft")
    )


def test_exclude_removes_overlap_synsets_from_train_only():
    rows = overlap.labelled_rows(_index(), mode="exclude", primary="neutral")
    train = rows[rows["split"] == "train"]
    assert not train["poles"].str.contains("+", regex=False).any()
    assert set(train["pole"]) == {"negative", "positive"}
    for split in ("validation", "test"):
        part = rows[rows["split"] == split]
        assert (part["poles"] == "neutral+positive").sum() == 2  # the primary copy stays


def test_unknown_mode_is_a_params_error():
    with pytest.raises(ParamsError, match="prompts.overlap"):
        overlap.labelled_rows(_index(), mode="merge", primary="neutral")


def test_target_matrix_splits_a_soft_row_evenly_over_its_poles():
    targets = overlap.target_matrix(
        np.array([1, 2]),
        np.array(["neutral+positive", "neutral+positive"]),
        np.array([True, False]),
    )
    assert targets.tolist() == [[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]


def test_a_half_half_soft_target_gives_the_expected_cross_entropy_gradient():
    logits = torch.tensor([[0.3, -1.2, 2.0]], requires_grad=True)
    targets = torch.tensor([[0.0, 0.5, 0.5]])
    terms = models.lens_loss(
        torch.log_softmax(logits, dim=-1),
        torch.tensor([1]),
        torch.eye(3),
        weights=torch.ones(1),
        loss=NO_HINGE,
        targets=targets,
    )
    terms["ce"].backward()
    expected = torch.softmax(logits.detach(), dim=-1) - targets  # d CE / d logits = p - q
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    p = torch.softmax(logits.detach(), dim=-1)[0]
    assert terms["ce"].item() == pytest.approx(-(0.5 * p[1].log() + 0.5 * p[2].log()).item())


def test_soft_rows_take_no_margin_hinge():
    log_probs = torch.log(torch.tensor([[0.2, 0.4, 0.4], [0.2, 0.4, 0.4]]))
    loss = LossParams(margin_weight=1.0, ortho_weight=0.0, margin_target=0.5, margin_floor=0.05)
    hard = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    soft = torch.tensor([[0.0, 0.5, 0.5], [0.0, 1.0, 0.0]])
    common = dict(weights=torch.ones(2), loss=loss)
    labels = torch.tensor([1, 1])
    with_hard = models.lens_loss(log_probs, labels, torch.eye(3), targets=hard, **common)
    with_soft = models.lens_loss(log_probs, labels, torch.eye(3), targets=soft, **common)
    assert with_soft["margin"].item() == pytest.approx(with_hard["margin"].item() / 2)


def test_overlap_scores_on_a_hand_made_example():
    # rows: neg, neg, neu+pos (label neu), neu+pos (label neu), pos
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 2, 0, 2])
    poles = ["negative", "negative", "neutral+positive", "neutral+positive", "positive"]
    scores = evaluation.overlap_scores(y, pred, poles, class_names=POLES)
    # set-valued: row 3 predicts positive, which applies -> counted as a positive hit;
    # row 4 predicts negative, which does not apply -> stays a neutral miss.
    # effective truth [0, 0, 2, 1, 2] vs pred [0, 1, 2, 0, 2]
    # negative: tp 1, fp 1, fn 1 -> F1 0.5; neutral: tp 0 -> 0; positive: tp 2, fp 0, fn 0 -> 1
    assert scores["set/accuracy"] == pytest.approx(3 / 5)
    assert scores["set/negative/f1"] == pytest.approx(0.5)
    assert scores["set/neutral/f1"] == 0.0
    assert scores["set/positive/f1"] == pytest.approx(1.0)
    assert scores["set/macro_f1"] == pytest.approx(0.5)
    # single-pole rows 0, 1, 4: truth [0, 0, 2] vs pred [0, 1, 2]; neutral has no such row
    assert scores["single_pole/n_rows"] == 3 and scores["overlap_rows"] == 2
    assert scores["single_pole/negative/f1"] == pytest.approx(2 / 3)
    assert scores["single_pole/positive/f1"] == pytest.approx(1.0)
    assert scores["single_pole/macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_overlap_scores_refuse_a_label_outside_its_poles():
    with pytest.raises(ValueError, match="applicable"):
        evaluation.overlap_scores(np.array([0]), np.array([0]), ["neutral"], class_names=POLES)


def test_contradictory_texts_counts_texts_with_two_labels():
    rows = pd.DataFrame(
        {
            "simplex": ["a", "a", "a", "b", "b"],
            "label": [0, 1, 2, 0, 0],
            "text": ["Same text", "same  text", "other", "x", "x"],
        }
    )
    assert overlap.contradictory_texts(rows) == {"a": 1, "b": 0}
