"""Test metrics of the adjudication classifiers (one per seed), with per-class logit offsets
tuned on validation, per-domain scores, baselines and the spread over seeds.

``evaluate_adjudicator`` predicts the validation and test rows with one saved classifier; the
rest is pure numpy over logits and label ids (``tasks.NO_LABEL`` = the task has no label for the
row; such rows are left out of that task's metrics). The classification and calibration numbers
come from ``lensforge.core.metrics`` (one definition for lenses and adjudications).
``summarize_seeds`` gives each task's test metrics as mean and sample standard deviation over
the seeds' models and counts catastrophic runs (a class at F1 <= ``catastrophic_f1``);
``compare_baselines`` puts the ``baselines`` beside the model and says in words when the model
does not beat TF-IDF, or when the domain alone comes within ``domain_margin`` of it.

Offsets: an additive bias per class on the logits, found by coordinate ascent over a grid on the
VALIDATION rows only (each round tries every grid value for each class but the first, which stays
0 since only differences matter; ties keep the current value), to maximise validation macro-F1.
They shift the decision boundaries toward minority classes without retraining; test numbers are
reported untuned and tuned, side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lensforge.adjudication import baselines, encoders, finetune_loop
from lensforge.adjudication.tasks import NO_LABEL, TaskClasses, label_ids
from lensforge.core import metrics, sequences
from lensforge.core.diagnostics import collapse_diagnostics, dominant_loss_diagnostic
from lensforge.core.errors import DataError
from lensforge.core.params import EvaluateAdjudicationsParams


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)  # (n, k)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _macro_f1(logits: np.ndarray, labels: np.ndarray) -> float:
    return metrics.macro_f1_score(labels, logits.argmax(axis=1), n_classes=logits.shape[1])


def offset_grid(*, grid_min: float, grid_max: float, grid_step: float) -> np.ndarray:
    """Grid values from ``grid_min`` to ``grid_max`` (inclusive) that always contain 0."""
    n_below = int(round(-grid_min / grid_step))
    n_above = int(round(grid_max / grid_step))
    return np.arange(-n_below, n_above + 1) * grid_step


def tune_offsets(
    logits: np.ndarray, labels: np.ndarray, *, grid: np.ndarray, n_rounds: int
) -> np.ndarray:
    """Per-class offsets (k,) maximising macro-F1 of ``argmax(logits + offsets)`` on these rows.

    Pass validation rows only: the function sees nothing else, so test cannot leak into it.
    """
    logits = np.asarray(logits, dtype=np.float64)  # (n, k)
    labels = np.asarray(labels)
    offsets = np.zeros(logits.shape[1])
    best = _macro_f1(logits, labels)
    for _ in range(n_rounds):
        improved = False
        for c in range(1, logits.shape[1]):
            for value in grid:
                trial = offsets.copy()
                trial[c] = value
                score = _macro_f1(logits + trial, labels)
                if score > best + 1e-12:
                    best, offsets, improved = score, trial, True
        if not improved:
            break
    return offsets


def labelled(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.asarray(labels) != NO_LABEL
    return np.asarray(logits, dtype=np.float64)[keep], np.asarray(labels)[keep]


def score_task(
    logits: np.ndarray, labels: np.ndarray, *, class_names: Sequence[str], n_bins: int
) -> dict[str, object]:
    """Per class precision / recall / F1 / support, macro-F1, accuracy, ECE (uniform and
    equal-mass bins) and multi-class Brier on the labelled rows."""
    probs = softmax(logits)
    predicted = probs.argmax(axis=1)
    per_class = metrics.per_class_scores(labels, predicted, n_classes=len(class_names))
    scores: dict[str, object] = {
        "macro_f1": float(np.mean(per_class["f1"])),
        "accuracy": metrics.accuracy_score(labels, predicted),
        "ece_uniform": metrics.expected_calibration_error(
            labels, probs, n_bins=n_bins, binning="uniform"
        ),
        "ece_equal_mass": metrics.expected_calibration_error(
            labels, probs, n_bins=n_bins, binning="equal_mass"
        ),
        "brier": metrics.brier_loss(labels, probs),
    }
    for c, name in enumerate(class_names):
        scores[name] = {m: per_class[m][c] for m in ("precision", "recall", "f1", "support")}
    return scores


def require_labelled(labels: np.ndarray, *, task: str, split: str) -> None:
    """A ``DataError`` naming task, split and rule when no row of ``split`` has the task's label."""
    if not np.any(np.asarray(labels) != NO_LABEL):
        raise DataError(
            f"task {task!r} has no labelled {split} rows, so it cannot be evaluated (check "
            "adjudicate.split and the task's ratings)",
            row=f"{task}/{split}",
            rule=f"labelled {split} rows",
        )


def evaluate_task(
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    task: str,
    class_names: Sequence[str],
    n_bins: int,
    grid: np.ndarray,
    n_rounds: int,
) -> dict[str, object]:
    """Untuned test scores, offsets tuned on validation, and tuned test scores of one task.

    ``validation`` and ``test`` are (logits (n, k), label ids (n,)) pairs; unlabelled rows are
    dropped first. Raises ``DataError`` when either split has no labelled row.
    """
    require_labelled(validation[1], task=task, split="validation")
    require_labelled(test[1], task=task, split="test")
    val_logits, val_labels = labelled(*validation)
    test_logits, test_labels = labelled(*test)
    offsets = tune_offsets(val_logits, val_labels, grid=grid, n_rounds=n_rounds)
    untuned = score_task(test_logits, test_labels, class_names=class_names, n_bins=n_bins)
    tuned = score_task(test_logits + offsets, test_labels, class_names=class_names, n_bins=n_bins)
    return {
        **untuned,
        "offsets": [float(o) for o in offsets],
        "validation_macro_f1": _macro_f1(val_logits, val_labels),
        "validation_macro_f1_tuned": _macro_f1(val_logits + offsets, val_labels),
        "tuned": {
            "macro_f1": tuned["macro_f1"],
            "accuracy": tuned["accuracy"],
            **{f"{name}_f1": tuned[name]["f1"] for name in class_names},
        },
    }


def cross_table(
    given: np.ndarray,
    predicted: np.ndarray,
    *,
    given_names: Sequence[str],
    predicted_names: Sequence[str],
) -> dict[str, dict[str, int]]:
    """Counts of ``predicted`` classes among rows of each ``given`` (true) class; rows whose
    given label is missing are left out (the per-class breakdown across tasks that the
    imbalanced-labels experiment used)."""
    table = {}
    for g, g_name in enumerate(given_names):
        rows = given == g
        table[g_name] = {
            p_name: int(np.sum(predicted[rows] == p)) for p, p_name in enumerate(predicted_names)
        }
    return table


def diagnostics(
    task_scores: Mapping[str, Mapping[str, object]],
    probabilities: Mapping[str, tuple[np.ndarray, np.ndarray]],
    loss_components: Mapping[str, float],
    *,
    task_classes: Mapping[str, Sequence[str]],
    catastrophic_f1: float,
    dominant_loss_fraction: float,
    collapse_separation: float,
) -> list[str]:
    """Plain-language warnings: a class at (or below) ``catastrophic_f1``, a loss component over
    ``dominant_loss_fraction`` of the final training loss, probability collapse per class."""
    messages = []
    for task, classes in task_classes.items():
        for name in classes:
            f1 = task_scores[task][name]["f1"]
            if f1 <= catastrophic_f1:
                messages.append(
                    f"{task}: class {name!r} has test F1 {f1:.3f} (never or never "
                    "correctly predicted)"
                )
        labels, probs = probabilities[task]
        messages += [
            f"{task}: {m}"
            for m in collapse_diagnostics(
                labels, probs, class_names=classes, separation=collapse_separation
            )
        ]
    dominant = dominant_loss_diagnostic(loss_components, fraction=dominant_loss_fraction)
    if dominant:
        messages.append(dominant)
    return messages


def calibration_rows(
    task: str, logits: np.ndarray, labels: np.ndarray, *, n_bins: int
) -> list[dict[str, object]]:
    """Reliability-curve rows (uniform bins) of one task for the calibration plot."""
    curve = metrics.reliability_curve(labels, softmax(logits), n_bins=n_bins, binning="uniform")
    return [{"task": task, **row} for row in curve]


def evaluate_all(
    validation: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
    test: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
    loss_components: Mapping[str, float],
    *,
    task_classes: Mapping[str, Sequence[str]],
    n_bins: int,
    grid: np.ndarray,
    n_rounds: int,
    catastrophic_f1: float,
    dominant_loss_fraction: float,
    collapse_separation: float,
) -> tuple[dict, dict[str, list[tuple[str, str]]], list[dict]]:
    """Every task's scores, cross-tables and diagnostics (the metrics JSON), plus per task the
    (actual, predicted) class names of the labelled test rows and the calibration rows.

    ``validation`` and ``test`` are (task -> logits (n, k), task -> label ids (n,)) over the same
    rows for every task (so cross-tables pair one task's truth with the other's prediction).
    """
    scores, probabilities, confusion, calibration = {}, {}, {}, []
    for task, classes in task_classes.items():
        scores[task] = evaluate_task(
            (validation[0][task], validation[1][task]),
            (test[0][task], test[1][task]),
            task=task,
            class_names=classes,
            n_bins=n_bins,
            grid=grid,
            n_rounds=n_rounds,
        )
        logits, labels = labelled(test[0][task], test[1][task])
        probabilities[task] = (labels, softmax(logits))
        calibration += calibration_rows(task, logits, labels, n_bins=n_bins)
        names = np.asarray(classes)
        confusion[task] = list(zip(names[labels], names[logits.argmax(axis=1)], strict=True))
    predicted = {t: np.asarray(test[0][t]).argmax(axis=1) for t in task_classes}
    tables = {}
    pairs = [(g, o) for g in task_classes for o in task_classes if g != o]
    for given, other in pairs:
        tables[f"predicted_{other}_given_{given}"] = cross_table(
            np.asarray(test[1][given]),
            predicted[other],
            given_names=task_classes[given],
            predicted_names=task_classes[other],
        )
    report = {
        **scores,
        "macro_f1": float(np.mean([scores[t]["macro_f1"] for t in task_classes])),
        "cross_tables": tables,
        "diagnostics": diagnostics(
            scores,
            probabilities,
            loss_components,
            task_classes=task_classes,
            catastrophic_f1=catastrophic_f1,
            dominant_loss_fraction=dominant_loss_fraction,
            collapse_separation=collapse_separation,
        ),
    }
    return report, confusion, calibration


def loss_components(card: Mapping[str, object]) -> dict[str, float]:
    """The last training epoch's weighted loss terms (what made up the optimised total)."""
    last = card["training"]["last"]
    kept = [k for k in last if k.endswith("/weighted")] + ["train/uncertainty_reg", "train/rdrop"]
    return {k.removeprefix("train/"): last[k] for k in kept if k.startswith("train/")}


def predict_split(
    model: encoders.MultiTaskClassifier,
    tokenizer,
    table: pd.DataFrame,
    *,
    split: str,
    max_length: int,
    batch_size: int,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(task -> logits (n, k), task -> label ids (n,)) of one split of the adjudicated table."""
    rows = finetune_loop.encode_table(
        table, tokenizer, classes=model.task_classes, split=split, max_length=max_length
    )
    logits = encoders.predict_logits(
        model, rows.input_ids, batch_size=batch_size, pad_id=sequences.pad_id_of(tokenizer)
    )
    return {t: v.numpy() for t, v in logits.items()}, rows.labels


def evaluate_adjudicator(
    model: encoders.MultiTaskClassifier,
    tokenizer,
    table: pd.DataFrame,
    *,
    card: Mapping[str, object],
    config: EvaluateAdjudicationsParams,
) -> tuple[dict, dict[str, list[tuple[str, str]]], list[dict]]:
    """``evaluate_all`` of the saved classifier (described by its ``card``) on the validation
    and test rows of the adjudicated ``table``; the report also names the weights' sha256."""
    kwargs = {"max_length": card["max_length"], "batch_size": config.batch_size}
    offsets = config.offsets
    test = predict_split(model, tokenizer, table, split="test", **kwargs)
    report, confusion, calibration = evaluate_all(
        predict_split(model, tokenizer, table, split="validation", **kwargs),
        test,
        loss_components(card),
        task_classes=model.task_classes,
        n_bins=config.ece_bins,
        grid=offset_grid(
            grid_min=offsets.grid_min, grid_max=offsets.grid_max, grid_step=offsets.grid_step
        ),
        n_rounds=offsets.n_rounds,
        catastrophic_f1=config.catastrophic_f1,
        dominant_loss_fraction=config.dominant_loss_fraction,
        collapse_separation=config.collapse_separation,
    )
    report["weights_sha256"] = card["weights_sha256"]
    report["by_domain"] = by_domain(
        test[0], table[table["split"] == "test"], task_classes=model.task_classes
    )
    return report, confusion, calibration


def present_macro_f1(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int) -> float:
    """Macro-F1 over the classes present in ``y_true`` (a domain may hold only some classes)."""
    per_class = metrics.per_class_scores(y_true, y_pred, n_classes=n_classes)
    present = [f for f, n in zip(per_class["f1"], per_class["support"], strict=True) if n > 0]
    return float(np.mean(present))


def by_domain(
    test_logits: Mapping[str, np.ndarray], test_rows: pd.DataFrame, *, task_classes: TaskClasses
) -> dict[str, dict[str, dict[str, float]]]:
    """Per task and domain of the labelled test rows: macro-F1 over the classes present there,
    and the row count. Empty when no item has a domain."""
    domains = test_rows["domain"].astype(str).to_numpy()
    if not any(domains):
        return {}
    result = {}
    for task, names in task_classes.items():
        y = label_ids(test_rows[task].tolist(), names)
        predicted = np.asarray(test_logits[task]).argmax(axis=1)
        result[task] = {}
        for domain in sorted(set(domains[y != NO_LABEL].tolist())):
            rows = (domains == domain) & (y != NO_LABEL)
            result[task][domain] = {
                "macro_f1": present_macro_f1(y[rows], predicted[rows], n_classes=len(names)),
                "n_rows": int(rows.sum()),
            }
    return result


def _mean_std(values: Sequence[float], key: str) -> dict[str, float | None]:
    """``{key: mean, key_std: sample std}`` over seeds (std ``None`` for one seed)."""
    mean, std = metrics.mean_std(values)
    return {key: mean, f"{key}_std": std}


def summarize_seeds(
    runs: Mapping[str, Mapping[str, object]],
    *,
    task_classes: TaskClasses,
    catastrophic_f1: float,
) -> dict[str, dict]:
    """Per task over the seeds' reports, in the shape of one seed's report: every score is the
    mean over seeds with a ``<score>_std`` sibling (sample std); plus the catastrophic-run count
    and per-domain macro-F1 spreads."""
    reports = list(runs.values())
    summary = {}
    for task, names in task_classes.items():
        parts = [r[task] for r in reports]
        entry: dict[str, object] = {"n_seeds": len(parts)}
        for key in ("macro_f1", "accuracy", "ece_uniform", "ece_equal_mass", "brier"):
            entry |= _mean_std([p[key] for p in parts], key)
        tuned_keys = ["macro_f1", "accuracy", *(f"{n}_f1" for n in names)]
        entry["tuned"] = {}
        for key in tuned_keys:
            entry["tuned"] |= _mean_std([p["tuned"][key] for p in parts], key)
        entry["n_catastrophic_runs"] = sum(
            metrics.is_catastrophic([p[n]["f1"] for n in names], threshold=catastrophic_f1)
            for p in parts
        )
        for name in names:
            entry[name] = {"support": parts[0][name]["support"]}
            for key in ("f1", "precision", "recall"):
                entry[name] |= _mean_std([p[name][key] for p in parts], key)
        domains = reports[0].get("by_domain", {}).get(task, {})
        entry["by_domain"] = {
            d: {
                **_mean_std([r["by_domain"][task][d]["macro_f1"] for r in reports], "macro_f1"),
                "n_rows": domains[d]["n_rows"],
            }
            for d in domains
        }
        summary[task] = entry
    return summary


def split_rows(table: pd.DataFrame, task: str, names: Sequence[str], split: str):
    """(texts, domains, label ids) of the rows of ``split`` labelled for ``task``."""
    rows = table[table["split"] == split]
    y = label_ids(rows[task].tolist(), names)
    keep = y != NO_LABEL
    return (
        rows["text"].to_numpy()[keep].tolist(),
        rows["domain"].astype(str).to_numpy()[keep].tolist(),
        y[keep],
    )


def compare_baselines(
    table: pd.DataFrame,
    summary: Mapping[str, Mapping[str, object]],
    *,
    task_classes: TaskClasses,
    config: EvaluateAdjudicationsParams,
) -> tuple[dict[str, dict], list[str]]:
    """Per task the baselines' scores (``baselines``) on the model's train and test rows, and
    the plain-language comparisons with the model's mean test macro-F1 (module doc)."""
    results, messages = {}, []
    margin = config.baselines.domain_margin
    for task, names in task_classes.items():
        train = split_rows(table, task, names, "train")
        test = split_rows(table, task, names, "test")
        require_labelled(train[2], task=task, split="train")
        require_labelled(test[2], task=task, split="test")
        try:
            results[task] = baselines.evaluate_baselines(
                train, test, class_names=names, config=config.baselines
            )
        except ValueError as exc:  # e.g. no TF-IDF term left after min_df on few train texts
            raise DataError(
                f"task {task!r}: the baselines cannot be fitted on its train rows: {exc}",
                row=f"{task}/train",
                rule="baselines fit",
            ) from None
        model = summary[task]["macro_f1"]
        tfidf = results[task]["tfidf_logreg"]["macro_f1"]
        if model <= tfidf:
            messages.append(
                f"{task}: the fine-tuned model (test macro-F1 {model:.3f}, mean over seeds) does "
                f"not beat TF-IDF + logistic regression ({tfidf:.3f}) on the same rows"
            )
        domain = results[task].get("domain_only", {}).get("macro_f1")
        if domain is not None and domain >= model - margin:
            messages.append(
                f"{task}: predicting from the domain alone reaches test macro-F1 {domain:.3f}, "
                f"within {margin:.2f} of the model's {model:.3f}: the label follows the source "
                "more than the text"
            )
    return results, messages
