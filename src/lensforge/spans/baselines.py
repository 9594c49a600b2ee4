"""Baselines scored beside the span model, on exactly its windows and with its metrics.

- ``volatility_rule``: a bar is in span when the past-only volatility ratio feature
  (``features.json`` "baseline_feature": back_vol_t / trailing median of back_vol) is at least a
  threshold. The grid is the feature's quantiles on the train windows' bars at
  ``RULE_QUANTILES`` (the feature's scale is whatever the windows stage wrote, so the grid follows
  the data); the threshold is chosen on validation span F1.
- ``window_rule``: the same threshold rule on what a model that reads the whole window can see:
  the standard deviation of the scaled return feature over the next ``horizon`` bars *inside the
  window* (fewer at its end; 0 where fewer than two are left). It reads bars after t, as the
  label does, so it is the yardstick of a non-causal model (``train_spans.encoder.causal:
  false``), never of a forecast.
- ``logistic``: scikit-learn logistic regression (``C`` from params, balanced class weights) per
  bar on that bar's features and those of the ``N_LAGS`` bars before it in the window (the first
  bar stands in for bars before the window: still the past), standardised on train. Fitted on the
  train windows' bars, each bar once when ``train_keys`` say which bars are the same bar of
  the series (windows overlap); the membership threshold is chosen on validation span F1 from
  the same grid as the model's.

Every split other than train and validation (test, holdout) is scored once, at the chosen
threshold, with ``metrics.membership_scores`` (span precision / recall / F1, per-bar AUROC);
the logistic baseline's probabilities also get the in-span minus out-of-span separation.
Inputs are mappings split -> array: ``(n, L)`` feature values or membership, ``(n, L, F)``
features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lensforge.spans import metrics

RULE_QUANTILES = np.round(np.linspace(0.02, 0.98, 49), 2)  # grid of the rule's threshold
N_LAGS = 2  # earlier bars whose features join a bar's own in the logistic baseline
FIT_SPLITS = ("train", "validation")
MAX_ITER = 1000  # lbfgs iterations; standardised inputs converge well within this


def _scored_splits(data: Mapping[str, object]) -> list[str]:
    missing = [name for name in FIT_SPLITS if name not in data]
    if missing:
        raise ValueError(f"baselines need train and validation windows; missing {missing}")
    return [name for name in data if name not in FIT_SPLITS]


def volatility_rule(
    values: Mapping[str, np.ndarray], membership: Mapping[str, np.ndarray], *, iou: float
) -> dict:
    """The volatility-threshold rule (module doc): chosen threshold, validation F1 per grid
    value, and the scores of every split but train and validation."""
    scored = _scored_splits(values)
    grid = np.unique(np.quantile(np.asarray(values["train"], dtype=np.float64), RULE_QUANTILES))
    threshold, f1_by_threshold = metrics.choose_threshold(
        values["validation"], membership["validation"], thresholds=grid.tolist(), iou=iou
    )
    return {
        "threshold": threshold,
        "validation_span_f1": f1_by_threshold[repr(threshold)],
        **{
            name: metrics.membership_scores(
                values[name], membership[name], threshold=threshold, iou=iou
            )
            for name in scored
        },
    }


def forward_volatility(returns: np.ndarray, *, horizon: int) -> np.ndarray:
    """(n, L) per-bar returns -> (n, L): std (ddof 0) of the returns at bars t+1 .. t+horizon of
    the same window (fewer near its end), 0 where fewer than two bars follow."""
    returns = np.asarray(returns, dtype=np.float64)
    length = returns.shape[1]
    out = np.zeros(returns.shape)
    for t in range(length - 2):
        ahead = returns[:, t + 1 : min(length, t + 1 + horizon)]  # (n, <= horizon)
        out[:, t] = ahead.std(axis=1)
    return out


def lagged_bar_features(features: np.ndarray, *, n_lags: int) -> np.ndarray:
    """(n, L, F) -> (n, L, F * (1 + n_lags)): each bar's features, then those of the bar 1 .. n_lags
    earlier in the window (the window's first bar where that falls before it)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 3:
        raise ValueError(f"features must be (n, L, F), got shape {features.shape}")
    length = features.shape[1]
    blocks = [features]
    for lag in range(1, n_lags + 1):
        source = np.maximum(np.arange(length) - lag, 0)  # (L,) bar read for each bar
        blocks.append(features[:, source, :])
    return np.concatenate(blocks, axis=2)


def _bar_rows(
    features: np.ndarray, membership: np.ndarray, keys: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    x = lagged_bar_features(features, n_lags=N_LAGS)
    x = x.reshape(-1, x.shape[2])  # (n * L, F * (1 + lags))
    y = np.asarray(membership).reshape(-1).astype(np.int64)
    if keys is None:
        return x, y
    keys = np.asarray(keys).reshape(-1)
    if keys.shape != y.shape:
        raise ValueError(f"train_keys must be (n, L) like the membership, got {keys.shape}")
    # the same bar appears in overlapping windows with the same label but (through the lags
    # clipped at the window's edge) possibly different inputs: keep its first occurrence
    _, first = np.unique(keys, return_index=True)
    return x[np.sort(first)], y[np.sort(first)]


def fit_logistic(x: np.ndarray, y: np.ndarray, *, c: float):
    """Standardise then balanced L2 logistic regression on bar rows (x (m, d), y (m,) 0/1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y)) < 2:
        raise ValueError("the logistic baseline needs in-span and out-of-span train bars")
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, class_weight="balanced", max_iter=MAX_ITER),
    )
    return model.fit(x, y)


def _window_probs(model, features: np.ndarray) -> np.ndarray:
    x = lagged_bar_features(features, n_lags=N_LAGS)
    n, length, width = x.shape
    return model.predict_proba(x.reshape(-1, width))[:, 1].reshape(n, length)  # (n, L)


def logistic(
    features: Mapping[str, np.ndarray],
    membership: Mapping[str, np.ndarray],
    *,
    thresholds: Sequence[float],
    c: float,
    iou: float,
    train_keys: np.ndarray | None,
) -> dict:
    """The per-bar logistic baseline (module doc): chosen threshold, validation F1, and the
    scores (plus separation) of every split but train and validation."""
    scored = _scored_splits(features)
    x, y = _bar_rows(features["train"], membership["train"], train_keys)
    model = fit_logistic(x, y, c=c)
    threshold, f1_by_threshold = metrics.choose_threshold(
        _window_probs(model, features["validation"]),
        membership["validation"],
        thresholds=thresholds,
        iou=iou,
    )
    report = {
        "threshold": threshold,
        "validation_span_f1": f1_by_threshold[repr(threshold)],
        "n_train_bars": int(len(y)),
    }
    for name in scored:
        probs = _window_probs(model, features[name])
        report[name] = {
            **metrics.membership_scores(probs, membership[name], threshold=threshold, iou=iou),
            **metrics.separation(membership[name], probs),
        }
    return report
