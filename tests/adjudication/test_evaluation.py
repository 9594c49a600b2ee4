"""Offsets tuned on validation only, per-task scores, cross-tables and diagnostics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lensforge.adjudication import evaluation as am
from lensforge.core.errors import DataError

GRID = am.offset_grid(grid_min=-2.0, grid_max=2.0, grid_step=0.5)


def _biased_rows(n_per_class: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose class-1 column is 1.0 too low: class 1 is never predicted untuned."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], n_per_class)
    logits = rng.normal(0, 0.3, size=(len(labels), 3))
    logits[np.arange(len(labels)), labels] += 1.5
    logits[:, 1] -= 2.0
    return logits, labels


def test_offset_grid_contains_zero_and_both_ends():
    grid = am.offset_grid(grid_min=-1.0, grid_max=0.5, grid_step=0.25)
    assert grid.tolist() == [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5]


def test_tuned_offsets_lift_the_suppressed_class_on_validation():
    logits, labels = _biased_rows(40, seed=0)
    offsets = am.tune_offsets(logits, labels, grid=GRID, n_rounds=3)
    assert offsets[0] == 0.0
    assert offsets[1] >= 1.0
    before = am.score_task(logits, labels, class_names=["a", "b", "c"], n_bins=5)["macro_f1"]
    after = am.score_task(logits + offsets, labels, class_names=["a", "b", "c"], n_bins=5)
    assert after["macro_f1"] > before + 0.2


def test_offsets_come_from_validation_only_and_test_labels_cannot_move_them():
    validation = _biased_rows(40, seed=0)
    test_logits, test_labels = _biased_rows(30, seed=1)
    kwargs = {
        "task": "t",
        "class_names": ["a", "b", "c"],
        "n_bins": 5,
        "grid": GRID,
        "n_rounds": 3,
    }
    result = am.evaluate_task(validation, (test_logits, test_labels), **kwargs)
    shuffled = np.random.default_rng(2).permutation(test_labels)
    other = am.evaluate_task(validation, (test_logits, shuffled), **kwargs)
    assert result["offsets"] == other["offsets"]
    assert result["offsets"] == am.tune_offsets(*validation, grid=GRID, n_rounds=3).tolist()
    assert result["tuned"]["macro_f1"] != other["tuned"]["macro_f1"]
    assert result["tuned"]["b_f1"] > result["b"]["f1"]


def test_a_task_without_labelled_test_rows_is_a_data_error_naming_task_split_and_rule():
    validation = _biased_rows(10, seed=0)
    logits, labels = _biased_rows(10, seed=1)
    kwargs = {"class_names": ["a", "b", "c"], "n_bins": 5, "grid": GRID, "n_rounds": 1}
    with pytest.raises(DataError) as caught:
        am.evaluate_task(validation, (logits, np.full_like(labels, -1)), task="stance", **kwargs)
    message = str(caught.value)
    assert "task 'stance' has no labelled test rows" in message
    assert "row stance/test" in message and "rule labelled test rows" in message


def test_per_domain_macro_f1_averages_the_classes_present_in_each_domain():
    rows = pd.DataFrame(
        {"domain": ["x", "x", "y", "y", "y"], "t": ["a", "b", "a", "a", ""]},
    )
    logits = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    result = am.by_domain({"t": logits}, rows, task_classes={"t": ("a", "b")})
    # x: a right, b wrong -> F1 a 2/3, b 0 -> 1/3; y: only class a, one of two right -> 2/3.
    assert result["t"]["x"] == {"macro_f1": pytest.approx(1 / 3), "n_rows": 2}
    assert result["t"]["y"] == {"macro_f1": pytest.approx(2 / 3), "n_rows": 2}
    assert am.by_domain({"t": logits}, rows.assign(domain=""), task_classes={"t": ("a", "b")}) == {}


def _seed_report(f1_a: float, f1_b: float) -> dict:
    scores = dict.fromkeys(("accuracy", "ece_uniform", "ece_equal_mass", "brier"), 0.5)
    tuned = {"macro_f1": 0.6, "accuracy": 0.5, "a_f1": 0.5, "b_f1": 0.5}
    classes = {
        name: {"f1": f1, "precision": 0.5, "recall": 0.5, "support": 4}
        for name, f1 in (("a", f1_a), ("b", f1_b))
    }
    return {
        "t": {"macro_f1": (f1_a + f1_b) / 2, **scores, "tuned": tuned, **classes},
        "by_domain": {"t": {"x": {"macro_f1": f1_a, "n_rows": 4}}},
    }


def test_seeds_give_mean_sample_std_and_the_catastrophic_run_count():
    runs = {"seed_0": _seed_report(0.8, 0.0), "seed_1": _seed_report(0.6, 0.4)}
    summary = am.summarize_seeds(runs, task_classes={"t": ("a", "b")}, catastrophic_f1=0.0)
    assert summary["t"]["macro_f1"] == pytest.approx(0.45)
    assert summary["t"]["macro_f1_std"] == pytest.approx(0.0707, abs=1e-4)
    assert summary["t"]["a"]["f1"] == pytest.approx(0.7)
    assert summary["t"]["a"]["f1_std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert summary["t"]["a"]["support"] == 4
    assert summary["t"]["tuned"]["macro_f1_std"] == 0.0
    assert summary["t"]["n_catastrophic_runs"] == 1
    assert summary["t"]["by_domain"]["x"]["n_rows"] == 4


def test_unlabelled_rows_are_left_out_of_a_task():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [5.0, 0.0, 0.0]])
    labels = np.array([0, 1, 2, -1])
    kept_logits, kept_labels = am.labelled(logits, labels)
    assert kept_labels.tolist() == [0, 1, 2]
    scores = am.score_task(kept_logits, kept_labels, class_names=["x", "y", "z"], n_bins=2)
    assert scores["accuracy"] == 1.0
    assert scores["y"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert scores["brier"] == pytest.approx(np.sum((am.softmax(kept_logits) - np.eye(3)) ** 2) / 3)


def test_cross_table_counts_predictions_of_one_task_per_true_class_of_the_other():
    given = np.array([0, 0, 1, 2, -1])
    predicted = np.array([2, 2, 0, 1, 0])
    table = am.cross_table(
        given, predicted, given_names=["neg", "neu", "pos"], predicted_names=["np", "obj", "par"]
    )
    assert table == {
        "neg": {"np": 0, "obj": 0, "par": 2},
        "neu": {"np": 1, "obj": 0, "par": 0},
        "pos": {"np": 0, "obj": 1, "par": 0},
    }


def test_diagnostics_name_dead_classes_collapse_and_a_dominant_loss():
    labels = np.array([0, 1, 2, 0])
    flat = np.full((4, 3), 1 / 3)
    scores = {"t": {"a": {"f1": 0.0}, "b": {"f1": 0.5}, "c": {"f1": 0.9}}}
    messages = am.diagnostics(
        scores,
        {"t": (labels, flat)},
        {"t/weighted": 9.0, "u/weighted": 1.0},
        task_classes={"t": ["a", "b", "c"]},
        catastrophic_f1=0.0,
        dominant_loss_fraction=0.8,
        collapse_separation=0.05,
    )
    text = "\n".join(messages)
    assert "class 'a' has test F1 0.000" in text
    assert "probability collapse on b" in text
    assert "'t/weighted' is 90% of the total loss" in text
