"""Lens evaluation: one run's scores, grades and diagnostics; the summary over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from lensforge.core import metrics
from lensforge.core.params import EvaluateParams
from lensforge.lenses import evaluation
from lensforge.lenses.hatcat import POLES
from tests.core.test_metrics import HAND_PROBS, HAND_Y, TIERS

EVALUATE = EvaluateParams(
    ece_bins=10,
    catastrophic_f1=0.0,
    imbalance_minority_f1=0.5,
    imbalance_majority_f1=0.8,
    dominant_loss_fraction=0.8,
    collapse_separation=0.05,
    tiers=TIERS,
)


def test_evaluate_run_grades_validation_and_test_macro_f1_separately():
    scores, messages = evaluation.evaluate_run(
        HAND_Y,
        HAND_PROBS,
        val_macro_f1=0.91,
        loss_components={"ce": 0.5, "margin": 0.4, "ortho": 0.0},
        class_names=POLES,
        config=EVALUATE,
    )
    # test predictions 0, 0, 1, 2 against 0, 1, 1, 2: F1 2/3, 2/3, 1
    assert scores["macro_f1"] == pytest.approx(7 / 9)
    assert (scores["tier"], scores["test_tier"]) == ("B+", "C")
    assert scores["catastrophic"] == 0
    assert scores["confusion/neutral/negative"] == 1
    assert messages == []


def test_evaluate_run_reports_a_catastrophic_run_and_a_dominant_loss():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]])
    scores, messages = evaluation.evaluate_run(
        y,
        probs,
        val_macro_f1=0.5,
        loss_components={"ce": 0.9, "margin": 0.1},
        class_names=POLES,
        config=EVALUATE,
    )
    assert scores["catastrophic"] == 1 and scores["tier"] == "F"
    assert messages[0] == "catastrophic run: neutral F1 0.000 <= 0.0"
    assert messages[1].startswith("loss component 'ce' is 90%")


def _run(macro_f1: float, neutral_f1: float, val_macro_f1: float, catastrophic: int) -> dict:
    return {
        "macro_f1": macro_f1,
        "accuracy": 0.8,
        "ece_uniform": 0.1,
        "brier": 0.3,
        "neutral/f1": neutral_f1,
        "neutral/support": 13,
        "confusion/neutral/neutral": 4,
        "negative/f1": 0.9,
        "positive/f1": 0.9,
        "val_macro_f1": val_macro_f1,
        "tier": metrics.graduation_tier(val_macro_f1, tiers=TIERS),
        "test_tier": metrics.graduation_tier(macro_f1, tiers=TIERS),
        "catastrophic": catastrophic,
    }


def test_summarize_seeds_gives_mean_std_sums_and_per_seed_values():
    runs = {3: _run(0.70, 0.30, 0.86, 0), 1: _run(0.32, 0.00, 0.82, 1)}
    summary = evaluation.summarize_seeds(runs, class_names=POLES, config=EVALUATE)
    assert summary["n_seeds"] == 2 and summary["n_catastrophic"] == 1
    assert summary["macro_f1_mean"] == pytest.approx(0.51)
    assert summary["neutral/f1_std"] == pytest.approx(np.std([0.30, 0.0], ddof=1))
    assert summary["neutral/support"] == 13
    assert summary["confusion/neutral/neutral"] == 8
    assert summary["tier"] == "C+"  # mean validation macro-F1 0.84
    assert summary["test_tier"] == "F"  # mean test macro-F1 0.51
    assert summary["seed_1/catastrophic"] == 1 and summary["seed_3/tier"] == "B"
    assert summary["seed_1/neutral/f1"] == 0.0


def test_summarize_a_single_seed_has_no_std_keys():
    summary = evaluation.summarize_seeds(
        {0: _run(0.7, 0.3, 0.9, 0)}, class_names=POLES, config=EVALUATE
    )
    assert summary["macro_f1_mean"] == 0.7
    assert not any(key.endswith("_std") for key in summary)
