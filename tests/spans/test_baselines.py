"""Baselines on tiny synthetic windows whose volatility feature marks the spans."""

from __future__ import annotations

import numpy as np
import pytest

from lensforge.spans import baselines

LENGTH = 30
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _split(rng, n_windows: int, *, span_value: float) -> tuple[np.ndarray, np.ndarray]:
    """Windows with one span each; feature 0 is ``span_value`` on span bars and noise in
    [0.5, 1.5] elsewhere, features 1-2 are noise."""
    membership = np.zeros((n_windows, LENGTH), dtype=np.float32)
    for row in range(n_windows):
        start = rng.integers(2, LENGTH - 12)
        membership[row, start : start + rng.integers(4, 10)] = 1
    features = rng.normal(size=(n_windows, LENGTH, 3))
    features[..., 0] = np.where(
        membership == 1, span_value, rng.uniform(0.5, 1.5, membership.shape)
    )
    return features, membership


def _data(*, test_span_value: float = 3.0):
    rng = np.random.default_rng(0)
    names = ("train", "validation", "test")
    values = {"train": 3.0, "validation": 3.0, "test": test_span_value}
    splits = {name: _split(rng, 40, span_value=values[name]) for name in names}
    return {n: s[0] for n, s in splits.items()}, {n: s[1] for n, s in splits.items()}


def test_volatility_rule_finds_spans_marked_by_its_feature():
    features, membership = _data()
    values = {name: f[..., 0] for name, f in features.items()}
    report = baselines.volatility_rule(values, membership, iou=0.5)
    assert 1.5 < report["threshold"] <= 3.0
    assert report["validation_span_f1"] == 1.0
    assert report["test"]["span_f1"] == 1.0
    assert report["test"]["bar_auroc"] == 1.0
    assert set(report) == {"threshold", "validation_span_f1", "test"}


def test_volatility_rule_threshold_comes_from_validation_not_test():
    # test spans sit at 2.5, below the threshold validation picks: the rule must miss them
    features, membership = _data(test_span_value=2.5)
    values = {name: f[..., 0] for name, f in features.items()}
    report = baselines.volatility_rule(values, membership, iou=0.5)
    assert report["threshold"] > 2.5
    assert report["test"]["span_f1"] == 0.0
    assert report["test"]["n_predicted"] == 0


def test_logistic_baseline_learns_the_feature_and_reports_separation():
    features, membership = _data()
    report = baselines.logistic(
        features, membership, thresholds=THRESHOLDS, c=1.0, iou=0.5, train_keys=None
    )
    assert report["threshold"] in THRESHOLDS
    assert report["test"]["span_f1"] >= 0.9
    assert report["test"]["bar_auroc"] > 0.99
    assert report["test"]["separation"] > 0.5
    assert report["n_train_bars"] == 40 * LENGTH


def test_logistic_baseline_fits_each_series_bar_once():
    features, membership = _data()
    keys = np.arange(40 * LENGTH).reshape(40, LENGTH) // 2  # every bar appears twice
    report = baselines.logistic(
        features, membership, thresholds=THRESHOLDS, c=1.0, iou=0.5, train_keys=keys
    )
    assert report["n_train_bars"] == 40 * LENGTH // 2


def test_lagged_features_read_only_the_bar_and_earlier_bars():
    features = np.arange(6, dtype=np.float64).reshape(1, 6, 1)  # feature = bar index
    lagged = baselines.lagged_bar_features(features, n_lags=2)
    assert lagged.shape == (1, 6, 3)
    np.testing.assert_array_equal(lagged[0, :, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(lagged[0, :, 1], [0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(lagged[0, :, 2], [0, 0, 0, 1, 2, 3])
    assert (lagged[0] <= np.arange(6)[:, None]).all()


def test_baselines_refuse_missing_validation_and_single_class_train():
    features, membership = _data()
    values = {name: f[..., 0] for name, f in features.items()}
    with pytest.raises(ValueError, match="validation"):
        baselines.volatility_rule({"train": values["train"]}, membership, iou=0.5)
    membership = {**membership, "train": np.zeros_like(membership["train"])}
    with pytest.raises(ValueError, match="in-span and out-of-span"):
        baselines.logistic(
            features, membership, thresholds=THRESHOLDS, c=1.0, iou=0.5, train_keys=None
        )


def test_forward_volatility_reads_the_next_bars_of_the_window_only():
    returns = np.array([[0.0, 1.0, -1.0, 3.0, 5.0]])
    got = baselines.forward_volatility(returns, horizon=2)
    expected = [
        np.std([1.0, -1.0]),  # bars 1, 2
        np.std([-1.0, 3.0]),  # bars 2, 3
        np.std([3.0, 5.0]),  # bars 3, 4
        0.0,  # one bar left: no spread
        0.0,  # none left
    ]
    np.testing.assert_allclose(got[0], expected)
