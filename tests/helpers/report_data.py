"""Small hand-made metrics files of every branch, laid out as the stages write them, for the report.

``write_report_inputs(root)`` fills ``root`` with what the ``report`` stage reads: two simplexes
(one with a ``/`` in its name) of two seeds each, two adjudication tasks, a concept branch, and,
when asked, the layer sweep and data-quality files. Numbers are made up but consistent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lensforge.core import curves, paths

SIMPLEXES = ("warmth", "aspiration/social_mobility")
SEEDS = (0, 1)
POLES = ("negative", "neutral", "positive")
TASKS = {"sentiment": ("negative", "neutral", "positive"), "stance": ("against", "for")}
QUADRANTS = ("A", "B")


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def write_simplex_inputs(root: Path) -> None:
    balance = {"strategy": "median_target", "base_prompts": 5}
    evaluate: dict[str, object] = {"diagnostics": []}
    confusion, f1_rows, calibration = [], [], []
    for k, simplex in enumerate(SIMPLEXES):
        balance[simplex] = {"imbalance_ratio": 1.1, "n_rows": 30} | {
            pole: {"n_rows": 10 + i, "n_synsets": 3, "weight": 1.0} for i, pole in enumerate(POLES)
        }
        evaluate |= {
            f"{simplex}/tier": "B",
            f"{simplex}/test_tier": "C",
            f"{simplex}/macro_f1_mean": 0.7 - 0.1 * k,
            f"{simplex}/macro_f1_std": 0.02,
            f"{simplex}/set/macro_f1_mean": 0.75 - 0.1 * k,  # not a simplex of its own
            f"{simplex}/n_catastrophic": k,
            f"{simplex}/n_seeds": len(SEEDS),
        }
        for seed in SEEDS:
            for actual in POLES:
                for predicted in POLES:
                    n = 4 if actual == predicted else 1
                    confusion += [(f"{simplex}:{actual}", f"{simplex}:{predicted}", seed)] * n
            for i, pole in enumerate(POLES):
                f1_rows.append(
                    (f"{simplex} {pole} seed {seed}", 0.5 + 0.1 * i, simplex, pole, seed)
                )
            history = [
                {"epoch": epoch, "train/total": 1.0 / epoch, "train/ce": 0.8 / epoch}
                | {"val/macro_f1": 0.5 + 0.05 * epoch, "val/f1_neutral": 0.3 + 0.02 * epoch}
                for epoch in (1, 2, 3)
            ]
            curves.write_curves(
                history, paths.train_live_dir(root, simplex, seed), step_key="epoch"
            )
        calibration += [(0.4, 0.35, simplex, 5), (0.7, 0.72, simplex, 9), (0.9, 0.95, simplex, 6)]
    _write_json(paths.under(root, paths.BALANCE_SUMMARY), balance)
    _write_json(paths.under(root, paths.EVALUATE_METRICS), evaluate)
    columns = ["actual", "predicted", "seed"]
    _write_csv(
        paths.under(root, paths.EVALUATE_CONFUSION), pd.DataFrame(confusion, columns=columns)
    )
    columns = ["run", "f1_score", "simplex", "pole", "seed"]
    _write_csv(paths.under(root, paths.EVALUATE_F1_BY_SEED), pd.DataFrame(f1_rows, columns=columns))
    columns = ["confidence", "accuracy", "simplex", "count"]
    frame = pd.DataFrame(calibration, columns=columns)
    _write_csv(paths.under(root, paths.EVALUATE_CALIBRATION), frame)


def write_adjudication_inputs(root: Path) -> None:
    report: dict[str, object] = {"diagnostics": [], "macro_f1": 0.7}
    calibration = []
    for task, classes in TASKS.items():
        entry: dict[str, object] = {
            "accuracy": 0.8,
            "ece_uniform": 0.05,
            "macro_f1": 0.7,
            "tuned": {"macro_f1": 0.72} | {f"{name}_f1": 0.7 for name in classes},
        }
        entry |= {
            name: {"f1": 0.6, "precision": 0.6, "recall": 0.6, "support": 5} for name in classes
        }
        report[task] = entry
        pairs = [(a, p) for a in classes for p in classes for _ in range(3 if a == p else 1)]
        path = paths.adjudication_confusion_path(root, task)
        _write_csv(path, pd.DataFrame(pairs, columns=["actual", "predicted"]))
        calibration += [(task, 0.5, 0.45, 4), (task, 0.8, 0.85, 7)]
    _write_json(paths.under(root, paths.EVALUATE_ADJUDICATIONS_METRICS), report)
    frame = pd.DataFrame(calibration, columns=["task", "confidence", "accuracy", "count"])
    _write_csv(paths.under(root, paths.EVALUATE_ADJUDICATIONS_CALIBRATION), frame)


def write_concept_inputs(root: Path) -> None:
    summary = {"n_concepts": 4, "test_f1_mean": 0.6, "share_tier_A": 0.5, "layer_1/n_concepts": 4}
    _write_json(paths.under(root, paths.EVALUATE_CONCEPTS_METRICS), summary)
    tiers = pd.DataFrame(
        [(1, "A", 2, "layer 1 A"), (1, "F", 1, "layer 1 F"), (2, "A", 1, "layer 2 A")],
        columns=["pack_layer", "tier", "n_concepts", "layer_tier"],
    )
    _write_csv(paths.under(root, paths.EVALUATE_CONCEPTS_TIERS), tiers)
    bins = pd.DataFrame({"f1_bin": ["0.0-0.5", "0.5-1.0"], "n_concepts": [1, 3]})
    _write_csv(paths.under(root, paths.EVALUATE_CONCEPTS_F1), bins)
    samples = pd.DataFrame(
        {
            "concept": ["A", "B", "C", "D"],
            "samples": [10, 12, 14, 16],
            "test_f1": [0.2, 0.6, 0.8, 0.8],
        }
    )
    _write_csv(paths.under(root, paths.EVALUATE_CONCEPTS_F1_BY_SAMPLES), samples)


def write_layer_sweep(root: Path) -> None:
    """Validation peaks at layer 4, test at layer 6: the report must mark the validation best."""
    rows = []
    for simplex in SIMPLEXES:
        for layer, val, test in ((2, 0.5, 0.5), (4, 0.8, 0.6), (6, 0.7, 0.9)):
            rows.append((layer, simplex, val, test, val - 0.2, test - 0.2))
    columns = ["layer", "simplex", "val_macro_f1", "test_macro_f1", "val_neutral_f1"]
    frame = pd.DataFrame(rows, columns=[*columns, "test_neutral_f1"])
    _write_csv(paths.under(root, paths.LAYER_SWEEP_PLOT), frame)


def write_data_quality(root: Path) -> None:
    keys = ("n_concepts", "lens_f1_mean", "ceiling", "target", "relevance_gap", "retention")
    summary = {f"{q}/{key}": 0.5 + 0.1 * i for i, q in enumerate(QUADRANTS) for key in keys}
    _write_json(paths.under(root, paths.DATA_QUALITY_METRICS), summary)
    grades = pd.DataFrame(
        [
            (f"{q} {side} {grade}", q, side, 10, grade, share)
            for q in QUADRANTS
            for side in ("positive", "negative")
            for grade, share in (("good", 0.6), ("repetitive", 0.4))
        ],
        columns=["group", "quadrant", "side", "n", "grade", "share"],
    )
    _write_csv(paths.under(root, paths.DATA_QUALITY_BY_QUADRANT), grades)
    gap = pd.DataFrame(
        {
            "concept": ["a", "b", "c"],
            "quadrant": ["A", "A", "B"],
            "relevance_gap": [0.5, 1.0, 2.0],
            "good_share": [0.2, 0.3, 0.4],
            "topic_accuracy": [0.5, 0.6, 0.7],
            "f1": [0.4, 0.6, 0.9],
        }
    )
    _write_csv(paths.under(root, paths.DATA_QUALITY_GAP_VS_F1), gap)


def write_span_inputs(root: Path) -> None:
    scores = {"span_f1": 0.7, "span_precision": 0.6, "span_recall": 0.8, "bar_auroc": 0.9}
    evaluate = {
        "test": scores | {"span_f1_std": 0.05},
        "baselines": {
            name: {"test": {k: v / 2 for k, v in scores.items()}}
            for name in ("volatility_rule", "window_rule", "logistic")
        },
    }
    _write_json(paths.under(root, paths.EVALUATE_SPANS_METRICS), evaluate)
    shares = pd.DataFrame(
        {"epoch": [1, 2], "class": [0.1, 0.2], "pointers": [0.2, 0.2], "span": [0.1, 0.2]}
    ).assign(countdown=[0.6, 0.4])
    _write_csv(paths.under(root, paths.EVALUATE_SPANS_LOSS_SHARE_PLOT), shares)
    windows = pd.DataFrame({"position": range(6), "in_span": [0, 1, 1, 0, 0, 1]}).assign(
        predicted_probability=[0.1, 0.8, 0.7, 0.2, 0.1, 0.6]
    )
    _write_csv(paths.under(root, paths.EVALUATE_SPANS_WINDOWS_PLOT), windows)


def write_report_inputs(root: Path, *, layer_sweep: bool = True, data_quality: bool = True) -> Path:
    """Every file the report reads under ``root``; the optional ones on request. Returns root."""
    write_simplex_inputs(root)
    write_adjudication_inputs(root)
    write_concept_inputs(root)
    write_span_inputs(root)
    if layer_sweep:
        write_layer_sweep(root)
    if data_quality:
        write_data_quality(root)
    return root


def expected_figure_ids(*, layer_sweep: bool = True, data_quality: bool = True) -> set[str]:
    """The figure ids a report over ``write_report_inputs`` must hold."""
    slugs = [paths.simplex_slug(s) for s in SIMPLEXES]
    ids = {"fig-balance", "fig-adjudication-f1", "fig-adjudication-calibration"}
    ids |= {f"fig-{kind}-{slug}" for slug in slugs for kind in ("confusion", "f1-seeds")}
    ids |= {f"fig-{kind}-{slug}" for slug in slugs for kind in ("calibration", "curves")}
    ids |= {f"fig-adjudication-confusion-{task}" for task in TASKS}
    ids |= {"fig-concept-tiers", "fig-concept-f1", "fig-concept-f1-samples"}
    ids |= {"fig-span-loss-share", "fig-span-windows"}
    if layer_sweep:
        ids |= {f"fig-layer-sweep-{slug}" for slug in slugs}
    if data_quality:
        ids |= {"fig-quality-ceiling", "fig-quality-grades", "fig-quality-gap-f1"}
    return ids
