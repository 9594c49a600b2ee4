"""Plain-words diagnostics on hand-made scores and probabilities with known answers."""

from __future__ import annotations

import numpy as np

from lensforge.core import diagnostics
from tests.core.test_metrics import HAND_PROBS, HAND_Y, POLES


def test_balancing_experiment_run_1_raises_imbalance_suspected():
    message = diagnostics.imbalance_diagnostic(
        {"negative": 0.901, "neutral": 0.308, "positive": 0.861},
        minority="neutral",
        minority_f1=0.5,
        majority_f1=0.8,
    )
    assert message.startswith("imbalance suspected: neutral F1 0.308 < 0.5")


def test_imbalance_is_not_suspected_when_a_majority_pole_is_also_poor():
    f1 = {"negative": 0.636, "neutral": 0.000, "positive": 0.082}  # the balancing experiment, run 2
    assert (
        diagnostics.imbalance_diagnostic(f1, minority="neutral", minority_f1=0.5, majority_f1=0.8)
        is None
    )


def test_a_loss_component_above_the_fraction_is_reported():
    message = diagnostics.dominant_loss_diagnostic(
        {"ce": 0.9, "margin": 0.1, "ortho": 0.0}, fraction=0.8
    )
    assert message.startswith("loss component 'ce' is 90% of the total loss")


def test_balanced_or_single_loss_components_are_not_reported():
    assert diagnostics.dominant_loss_diagnostic({"ce": 0.5, "margin": 0.4}, fraction=0.8) is None
    assert diagnostics.dominant_loss_diagnostic({"ce": 0.5, "margin": 0.0}, fraction=0.8) is None


def test_uniform_probabilities_collapse_every_class():
    y = np.array([0, 1, 2, 0])
    messages = diagnostics.collapse_diagnostics(
        y, np.full((4, 3), 1 / 3), class_names=POLES, separation=0.05
    )
    assert len(messages) == 3
    assert messages[1].startswith("probability collapse on neutral")


def test_separated_probabilities_do_not_collapse():
    assert (
        diagnostics.collapse_diagnostics(HAND_Y, HAND_PROBS, class_names=POLES, separation=0.05)
        == []
    )
