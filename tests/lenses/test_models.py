"""Lens modules, loss terms against hand-computed values, and saving / loading with a card."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from lensforge.core.errors import ArtifactError, ParamsError
from lensforge.core.params import LossParams
from lensforge.lenses import models

LOSS = LossParams(margin_weight=0.5, ortho_weight=1e-4, margin_target=0.5, margin_floor=0.05)
E = math.e


def test_tripole_loss_terms_match_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    directions = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    weights = torch.tensor([2.0, 0.5, 0.5])

    terms = models.lens_loss(
        F.log_softmax(logits, dim=1), labels, directions, weights=weights, loss=LOSS
    )

    nll = [math.log(E**2 + 2) - 2, math.log(E + 2) - 1, math.log(E + 2)]
    # margins: (e^2 - 1)/(e^2 + 2) = 0.68 (above target: 0), (e - 1)/(e + 2) = 0.364,
    # (1 - e)/(e + 2) = -0.364 (below the floor: counted as 0.05)
    hinge = [0.0, 0.5 - (E - 1) / (E + 2), 0.5 - 0.05]
    # unit directions (1, 0), (1, 1)/sqrt2, (0, 1): two off-diagonal pairs with cosine^2 = 1/2
    ortho = 2 * (0.5 + 0.0 + 0.5)
    expected_ce = (2.0 * nll[0] + 0.5 * nll[1] + 0.5 * nll[2]) / 3
    expected_margin = 0.5 * (2.0 * hinge[0] + 0.5 * hinge[1] + 0.5 * hinge[2]) / 3
    assert terms["ce"].item() == pytest.approx(expected_ce, rel=1e-6)
    assert terms["margin"].item() == pytest.approx(expected_margin, rel=1e-6)
    assert terms["ortho"].item() == pytest.approx(1e-4 * ortho, rel=1e-6)
    assert terms["total"].item() == pytest.approx(
        expected_ce + expected_margin + 1e-4 * ortho, rel=1e-6
    )


def test_margins_are_p_true_minus_best_other():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.5, 0.2], [0.1, 0.1, 0.8]])
    got = models.margins(probs.log(), torch.tensor([0, 0, 2]))
    assert got.tolist() == pytest.approx([0.5, -0.2, 0.7])


def test_margin_floor_bounds_the_hinge_and_stops_its_gradient_below_the_floor():
    margin = torch.tensor([-0.8, 0.02, 0.3, 0.9], requires_grad=True)
    hinge = models.margin_hinge(margin, target=0.5, floor=0.05)
    assert hinge.tolist() == pytest.approx([0.45, 0.45, 0.2, 0.0])
    hinge.sum().backward()
    assert margin.grad.tolist() == [0.0, 0.0, -1.0, 0.0]


def test_shrinking_the_weights_never_lowers_the_margin_or_ortho_terms():
    torch.manual_seed(3)
    lens = models.build_lens("tripole", d_model=8)
    x, labels = torch.randn(64, 8), torch.randint(0, 3, (64,))
    with torch.no_grad():  # make the lens fit these rows a bit, so margins are positive
        lens.poles.weight.copy_(torch.stack([x[labels == c].mean(0) for c in range(3)]) * 3)
    ones = torch.ones(64)

    def terms_at(scale: float) -> dict:
        scaled = models.build_lens("tripole", d_model=8)
        scaled.load_state_dict(lens.state_dict())
        with torch.no_grad():
            scaled.poles.weight.mul_(scale)
            scaled.poles.bias.mul_(scale)
        return models.lens_loss(scaled(x), labels, scaled.directions(), weights=ones, loss=LOSS)

    full, small, zero = terms_at(1.0), terms_at(0.1), terms_at(0.0)
    assert small["margin"] > full["margin"]
    # all-zero weights: every margin is 0, below the floor: the hinge's maximum on every row
    assert zero["margin"].item() == pytest.approx(0.5 * (0.5 - 0.05))
    assert small["ortho"].item() == pytest.approx(full["ortho"].item(), rel=1e-5)
    assert zero["ortho"].item() == pytest.approx(1e-4 * 3)  # ||0 - I||^2: the worst, not the best


def test_ortho_penalty_is_zero_for_orthogonal_directions_of_any_length():
    directions = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.01, 0.0], [0.0, 0.0, 7.0]])
    assert models.ortho_penalty(directions).item() == pytest.approx(0.0, abs=1e-12)


def test_two_head_probabilities_sum_to_one_and_follow_the_head_formula():
    torch.manual_seed(1)
    lens = models.build_lens("two_head", d_model=8)
    x = torch.randn(32, 8)

    probs = models.pole_probabilities(lens, x)

    assert probs.shape == (32, 3)
    assert probs.sum(dim=1).tolist() == pytest.approx([1.0] * 32, abs=1e-6)
    p_extreme = torch.sigmoid(lens.extremeness(x)).squeeze(1)
    p_positive_given_extreme = torch.sigmoid(lens.sign(x)).squeeze(1)
    assert probs[:, 1].tolist() == pytest.approx((1 - p_extreme).tolist(), abs=1e-6)
    expected_negative = p_extreme * (1 - p_positive_given_extreme)
    assert probs[:, 0].tolist() == pytest.approx(expected_negative.tolist(), abs=1e-6)
    assert probs[:, 2].tolist() == pytest.approx(
        (p_extreme * p_positive_given_extreme).tolist(), abs=1e-6
    )
    assert lens.directions().shape == (2, 8)


def test_two_head_cross_entropy_is_extremeness_bce_plus_sign_bce_on_extreme_rows():
    torch.manual_seed(2)
    lens = models.build_lens("two_head", d_model=4)
    x, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    nll = F.nll_loss(lens(x), labels, reduction="none")
    extreme = (labels != 1).float()
    bce_extreme = F.binary_cross_entropy_with_logits(
        lens.extremeness(x).squeeze(1), extreme, reduction="none"
    )
    bce_sign = F.binary_cross_entropy_with_logits(
        lens.sign(x).squeeze(1), (labels == 2).float(), reduction="none"
    )
    assert nll.tolist() == pytest.approx((bce_extreme + extreme * bce_sign).tolist(), abs=1e-5)


def test_standardisation_uses_stored_stats_and_leaves_constant_features_unscaled():
    lens = models.build_lens("tripole", d_model=3)
    lens.set_standardization(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 0.0, 4.0]))
    x = torch.tensor([[3.0, 5.0, 3.0]])
    assert lens.standardize(x).tolist() == [[1.0, 3.0, 0.0]]


def test_loss_params_with_floor_at_or_above_target_are_rejected():
    bad = LossParams(margin_weight=0.5, ortho_weight=1e-4, margin_target=0.5, margin_floor=0.5)
    with pytest.raises(ParamsError, match="margin_floor"):
        models.check_loss_params(bad)


def _saved_lens(tmp_path, kind="tripole"):
    torch.manual_seed(0)
    lens = models.build_lens(kind, d_model=16, hidden=8, dropout=0.1)
    lens.eval()  # dropout off, as every saved lens is used
    lens.set_standardization(torch.randn(16), torch.rand(16) + 0.5)
    lens_dir = tmp_path / "lens"
    card = models.save_lens(lens, lens_dir, card={"simplex": "taste_development", "seed": 0})
    return lens, lens_dir, card


@pytest.mark.parametrize("kind", models.LENS_KINDS)
def test_load_lens_rebuilds_the_saved_lens_in_eval_mode(tmp_path, kind):
    lens, lens_dir, card = _saved_lens(tmp_path, kind)
    x = torch.randn(5, 16)

    loaded, loaded_card = models.load_lens(lens_dir)

    assert not loaded.training
    assert loaded_card == card == json.loads((lens_dir / models.CARD_NAME).read_text())
    assert loaded_card["lens_kind"] == kind and loaded_card["d_model"] == 16
    assert torch.equal(models.pole_probabilities(loaded, x), models.pole_probabilities(lens, x))


def test_load_lens_refuses_missing_weights(tmp_path):
    _, lens_dir, _ = _saved_lens(tmp_path)
    (lens_dir / models.WEIGHTS_NAME).unlink()
    with pytest.raises(ArtifactError, match="weights missing"):
        models.load_lens(lens_dir)


def test_load_lens_refuses_a_missing_card(tmp_path):
    _, lens_dir, _ = _saved_lens(tmp_path)
    (lens_dir / models.CARD_NAME).unlink()
    with pytest.raises(ArtifactError, match="card missing"):
        models.load_lens(lens_dir)


def test_load_lens_refuses_tampered_weights(tmp_path):
    _, lens_dir, _ = _saved_lens(tmp_path)
    weights = lens_dir / models.WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte inside the last tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 .* differs from the card's"):
        models.load_lens(lens_dir)


def test_load_lens_refuses_weights_of_another_lens(tmp_path):
    _, lens_dir, _ = _saved_lens(tmp_path)
    untrained = models.build_lens("tripole", d_model=16)
    other_dir = tmp_path / "other"
    models.save_lens(untrained, other_dir, card={})
    (other_dir / models.WEIGHTS_NAME).replace(lens_dir / models.WEIGHTS_NAME)
    with pytest.raises(ArtifactError, match="differs from the card's"):
        models.load_lens(lens_dir)
