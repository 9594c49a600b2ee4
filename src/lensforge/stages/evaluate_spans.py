"""evaluate_spans stage: every seed's span model on validation and test -> metrics and plots.

Loads each model ``train_spans`` saved under ``models/spans/seed_<seed>`` (none, or one trained on
other windows or features: a hard error, never an untrained model), chooses its membership
threshold on the validation windows, scores the test windows (and the held-out instrument's)
once at that threshold, and puts the mean and sample standard deviation over seeds, the two
baselines on the same windows and the diagnostics in words into ``metrics/evaluate_spans.json``
(``spans.evaluation``). Plots: the first seed's predictions on a few test windows, and the loss
share per epoch and task, read from that seed's ``train/<task>/weighted`` training curves (the
curves ``train_spans`` writes for every epoch; its metrics file keeps only the best and last
epochs). Writes the plots' tables first and the metrics last.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.core import artifacts, paths
from lensforge.core.params import Params
from lensforge.spans import evaluation
from lensforge.spans import windows as span_windows
from lensforge.spans.model import load_span_models

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    config = params.evaluate_spans
    windows, index, features, _ = span_windows.read_window_set(root)
    windows_path = paths.under(root, paths.SPAN_WINDOWS)
    training_path = paths.under(root, paths.TRAIN_SPANS_METRICS)
    training = artifacts.read_json(training_path, what="span training metrics (train_spans)")
    models = load_span_models(root)
    runs, first_probs = {}, None
    for loaded in models:
        evaluation.check_trained_on(
            loaded.card, windows_path=windows_path, feature_names=features["features"]
        )
        best = evaluation.best_record(training, loaded.seed, path=training_path)
        runs[f"seed_{loaded.seed}"], predictions = evaluation.evaluate_model(
            loaded, windows, index, config=config, best=best
        )
        first_probs = predictions["span_probs"] if first_probs is None else first_probs

    first = models[0]
    baselines = evaluation.baseline_report(
        windows,
        index,
        feature_index=evaluation.baseline_feature_index(features),
        return_index=evaluation.baseline_feature_index(features, evaluation.RETURN_FEATURE),
        horizon=int(features["label"]["horizon"]),
        config=config,
    )
    diagnostics = [f"{seed}: {m}" for seed, run in runs.items() for m in run["diagnostics"]]
    report = {
        "seeds": [loaded.seed for loaded in models],
        "iou": config.iou,
        "chosen_threshold": {seed: run["threshold"] for seed, run in runs.items()},
        **evaluation.summarize_seeds(runs),
        "baselines": baselines,
        "diagnostics": diagnostics,
        "runs": runs,
    }
    windows_frame = evaluation.windows_plot_frame(
        index,
        windows,
        first_probs,
        n=config.plot_windows,
        threshold=runs[f"seed_{first.seed}"]["threshold"],
    )
    curves = evaluation.read_loss_curves(
        paths.train_spans_live_dir(root, first.seed), tasks=first.card["tasks"]
    )
    artifacts.write_csv(paths.under(root, paths.EVALUATE_SPANS_WINDOWS_PLOT), windows_frame)
    artifacts.write_csv(
        paths.under(root, paths.EVALUATE_SPANS_LOSS_SHARE_PLOT),
        evaluation.loss_share_frame(curves),
    )
    artifacts.write_json(paths.under(root, paths.EVALUATE_SPANS_METRICS), report)
    for message in diagnostics:
        log.warning("%s", message)
    test = report["test"]
    log.info(
        "test span F1 over %d seed(s): %.3f (sample std %s); separation %s; volatility rule %.3f, "
        "in-window rule %.3f, logistic %.3f",
        len(runs),
        test["span_f1"],
        test["span_f1_std"],
        test["separation"],
        baselines["volatility_rule"]["test"]["span_f1"],
        baselines["window_rule"]["test"]["span_f1"],
        baselines["logistic"]["test"]["span_f1"],
    )
