"""Lens evaluation: the test scores of one saved lens, its grades and diagnostics, and the
summary of a simplex's seeds (mean and sample std), as flat keys for ``metrics/evaluate.json``,
plus the rows of the three evaluation plots (confusion, F1 by seed, calibration)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lensforge.core import diagnostics
from lensforge.core.metrics import (
    check_probabilities,
    graduation_tier,
    is_catastrophic,
    mean_std,
    per_class_scores,
    reliability_curve,
    score_run,
)
from lensforge.core.params import EvaluateParams
from lensforge.lenses import models, overlap
from lensforge.lenses.hatcat import POLES

# The pole the imbalance warning watches: the neutral ("homeostasis") pole is the small one.
MINORITY_POLE = "neutral"
# Per-seed values repeated in the summary under ``seed_<seed>/`` (the rest only as mean / std).
# Row counts copied once into the summary (every seed scores the same rows).
COUNT_KEYS = ("single_pole/n_rows", "overlap_rows")
PER_SEED_KEYS = ("macro_f1", "accuracy", "ece_uniform", "brier", "val_macro_f1")


def evaluate_run(
    y_true,
    probs,
    *,
    val_macro_f1: float,
    loss_components: Mapping[str, float],
    class_names: Sequence[str],
    config: EvaluateParams,
    poles: Sequence[str] | None = None,
) -> tuple[dict, list[str]]:
    """Test scores of one lens plus its grades, and the plain-words diagnostics it triggers.

    ``val_macro_f1`` is the validation macro-F1 the lens was selected on (from its card):
    ``tier`` grades it (selection and graduation happen on validation), ``test_tier`` grades the
    test macro-F1 for comparison. ``loss_components`` are the weighted train-loss terms of the
    kept epoch (``total`` excluded). ``catastrophic`` is 1 when any class's F1 is at or below
    ``config.catastrophic_f1``, else 0. With ``poles`` (each row's applicable poles, the index
    column) the overlap-aware scores of ``overlap_scores`` are added.
    """
    y, probs = check_probabilities(y_true, probs)
    scores = score_run(y, probs, class_names=class_names, n_bins=config.ece_bins)
    if poles is not None:
        scores.update(overlap_scores(y, probs.argmax(axis=1), poles, class_names=class_names))
    f1 = {name: scores[f"{name}/f1"] for name in class_names}
    catastrophic = is_catastrophic(list(f1.values()), threshold=config.catastrophic_f1)
    scores.update(
        val_macro_f1=float(val_macro_f1),
        tier=graduation_tier(val_macro_f1, tiers=config.tiers),
        test_tier=graduation_tier(scores["macro_f1"], tiers=config.tiers),
        catastrophic=int(catastrophic),
    )
    messages = []
    if catastrophic:
        worst = min(f1, key=f1.get)
        messages.append(f"catastrophic run: {worst} F1 {f1[worst]:.3f} <= {config.catastrophic_f1}")
    imbalance = diagnostics.imbalance_diagnostic(
        f1,
        minority=MINORITY_POLE,
        minority_f1=config.imbalance_minority_f1,
        majority_f1=config.imbalance_majority_f1,
    )
    dominant = diagnostics.dominant_loss_diagnostic(
        loss_components, fraction=config.dominant_loss_fraction
    )
    messages += [m for m in (imbalance, dominant) if m is not None]
    messages += diagnostics.collapse_diagnostics(
        y, probs, class_names=class_names, separation=config.collapse_separation
    )
    return scores, messages


# What ``metrics/evaluate.json`` keeps per simplex (the figures a user compares between trials);
# everything else of the summary goes to the detail file, versioned but not a metric.
HEADLINE_MEAN_STD = ("macro_f1", "negative/f1", "neutral/f1", "positive/f1", "ece_uniform")
HEADLINE_OTHER = (
    "val_macro_f1_mean",
    "tier",
    "test_tier",
    "n_catastrophic",
    "set/macro_f1_mean",
    "single_pole/macro_f1_mean",
)


def split_headline(summary: Mapping[str, object]) -> tuple[dict, dict]:
    """``(headline, detail)`` of one simplex's ``summarize_seeds`` summary: the headline keys
    (``HEADLINE_MEAN_STD`` as mean and std, ``HEADLINE_OTHER``) and all the others."""
    wanted = {f"{key}_{stat}" for key in HEADLINE_MEAN_STD for stat in ("mean", "std")}
    wanted |= set(HEADLINE_OTHER)
    headline = {k: v for k, v in summary.items() if k in wanted}
    detail = {k: v for k, v in summary.items() if k not in wanted}
    return headline, detail


def overlap_scores(
    y: np.ndarray, pred: np.ndarray, poles: Sequence[str], *, class_names: Sequence[str]
) -> dict[str, float]:
    """Scores that know a row's synset may apply to two poles, next to the ordinary ones.

    - ``set/...``: set-valued scoring: a prediction of any applicable pole counts as right (the
      row's label becomes the predicted pole when that pole applies), then ordinary per-pole F1,
      macro-F1 and accuracy. On rows of single-pole synsets this is the ordinary score.
    - ``single_pole/...``: the ordinary scores on the rows whose synset applies to one pole only
      (the rows every ``prompts.overlap`` mode shares); macro-F1 over the poles that have such
      rows. ``single_pole/n_rows`` and ``overlap_rows`` count the rows.
    """
    n_classes = len(class_names)
    applicable = np.zeros((len(y), n_classes), dtype=bool)
    for i, value in enumerate(poles):
        for pole in overlap.split_poles(value):
            applicable[i, class_names.index(pole)] = True
    if not applicable[np.arange(len(y)), y].all():
        raise ValueError("a row's label is not among its applicable poles")
    hit = applicable[np.arange(len(y)), pred]
    y_set = np.where(hit, pred, y)
    set_scores = per_class_scores(y_set, pred, n_classes=n_classes)
    single = applicable.sum(axis=1) == 1
    single_scores = per_class_scores(y[single], pred[single], n_classes=n_classes)
    present = [i for i in range(n_classes) if single_scores["support"][i] > 0]
    out = {
        "set/accuracy": float(hit.mean()),
        "set/macro_f1": float(np.mean(set_scores["f1"])),
        "single_pole/macro_f1": float(np.mean([single_scores["f1"][i] for i in present]))
        if present
        else float("nan"),
        "single_pole/n_rows": int(single.sum()),
        "overlap_rows": int((~single).sum()),
    }
    for i, name in enumerate(class_names):
        out[f"set/{name}/f1"] = set_scores["f1"][i]
        out[f"single_pole/{name}/f1"] = single_scores["f1"][i]
    return out


def summarize_seeds(
    runs: Mapping[int, Mapping[str, object]], *, class_names: Sequence[str], config: EvaluateParams
) -> dict[str, object]:
    """One simplex's runs (seed -> ``evaluate_run`` scores) as flat summary keys.

    Every float score ``k`` becomes ``k_mean`` and ``k_std`` (sample std; no ``_std`` key for a
    single seed); ``<class>/support`` and ``COUNT_KEYS`` are copied (all seeds score the same
    test rows);
    ``confusion/...`` counts are summed over seeds. ``n_seeds``, ``n_catastrophic``; ``tier`` is
    the graduation tier of the mean validation macro-F1 over seeds and ``test_tier`` that of the
    mean test macro-F1. Per seed, ``seed_<seed>/<k>`` for ``PER_SEED_KEYS``, each class's F1,
    ``tier``, ``test_tier`` and ``catastrophic``.
    """
    if not runs:
        raise ValueError("summarize_seeds needs at least one run")
    seeds = sorted(runs)
    first = runs[seeds[0]]
    summary: dict[str, object] = {"n_seeds": len(seeds)}
    for key, value in first.items():
        if isinstance(value, float):
            mean, std = mean_std([runs[seed][key] for seed in seeds])
            summary[f"{key}_mean"] = mean
            if std is not None:
                summary[f"{key}_std"] = std
        elif key.startswith("confusion/"):
            summary[key] = int(sum(runs[seed][key] for seed in seeds))
        elif key.endswith("/support") or key in COUNT_KEYS:
            summary[key] = value
    summary["n_catastrophic"] = int(sum(runs[seed]["catastrophic"] for seed in seeds))
    summary["tier"] = graduation_tier(summary["val_macro_f1_mean"], tiers=config.tiers)
    summary["test_tier"] = graduation_tier(summary["macro_f1_mean"], tiers=config.tiers)
    per_seed = (*PER_SEED_KEYS, *(f"{name}/f1" for name in class_names))
    for seed in seeds:
        for key in (*per_seed, "tier", "test_tier", "catastrophic"):
            summary[f"seed_{seed}/{key}"] = runs[seed][key]
    return summary


def score_seeds(
    seeds: dict[int, Path],
    x: torch.Tensor,
    y: np.ndarray,
    *,
    simplex: str,
    config: EvaluateParams,
    manifest_sha256: str,
    poles: Sequence[str] | None = None,
) -> tuple[dict[int, dict], dict[int, np.ndarray], list[str]]:
    """Per seed: ``evaluate_run`` scores and pole probabilities of its saved lens (checked by
    ``models.load_checked_lens``) on ``x`` (n_test, d_model); all diagnostics."""
    runs, probs, diagnostics = {}, {}, []
    for seed, lens_dir in seeds.items():
        model, card = models.load_checked_lens(
            lens_dir,
            simplex=simplex,
            seed=seed,
            d_model=x.shape[1],
            manifest_sha256=manifest_sha256,
        )
        probs[seed] = models.pole_probabilities(model, x).double().numpy()  # (n_test, 3)
        runs[seed], messages = evaluate_run(
            y,
            probs[seed],
            val_macro_f1=card["best_val_macro_f1"],
            loss_components=loss_components(card),
            class_names=POLES,
            config=config,
            poles=poles,
        )
        diagnostics += [f"{simplex} seed {seed}: {message}" for message in messages]
    return runs, probs, diagnostics


def loss_components(card: dict) -> dict[str, float]:
    """The weighted train-loss terms at the kept (best) epoch, without their sum."""
    return {k: v for k, v in card["train_loss_at_best_epoch"].items() if k != "total"}


def summary_line(simplex: str, summary: dict) -> str:
    """One line for the log: test macro-F1 and neutral F1 (mean ± std), failures, tiers."""
    return (
        f"{simplex}: test macro-F1 {mean_std_text(summary, 'macro_f1')}, neutral F1 "
        f"{mean_std_text(summary, 'neutral/f1')}, {summary['n_catastrophic']}/{summary['n_seeds']} "
        f"catastrophic; tier {summary['tier']} (validation macro-F1 "
        f"{summary['val_macro_f1_mean']:.3f}), test tier {summary['test_tier']}"
        + (
            f"; set-valued macro-F1 {mean_std_text(summary, 'set/macro_f1')}"
            if "set/macro_f1_mean" in summary
            else ""
        )
    )


def mean_std_text(summary: dict, key: str) -> str:
    std = summary.get(f"{key}_std")
    return f"{summary[f'{key}_mean']:.3f}" + ("" if std is None else f" ± {std:.3f}")


def add_plot_rows(plots: dict, simplex: str, y, probs: dict, runs: dict, *, n_bins: int) -> None:
    """Append this simplex's rows to the three plot tables ``plots[name]`` (lists of frames):
    confusion (one row per test row and seed), F1 per pole and seed, reliability curve."""
    names = np.array([f"{simplex}:{pole}" for pole in POLES])
    plots["confusion"] += [
        pd.DataFrame({"actual": names[y], "predicted": names[p.argmax(axis=1)], "seed": seed})
        for seed, p in probs.items()
    ]
    plots["f1_by_seed"].append(
        pd.DataFrame(
            [
                {
                    "run": f"{simplex} {pole} seed {seed}",
                    "f1_score": scores[f"{pole}/f1"],
                    "simplex": simplex,
                    "pole": pole,
                    "seed": seed,
                }
                for seed, scores in runs.items()
                for pole in POLES
            ]
        )
    )
    pooled_y = np.concatenate([y] * len(probs))
    pooled_probs = np.concatenate(list(probs.values()))  # (n_seeds * n_test, 3)
    curve = reliability_curve(pooled_y, pooled_probs, n_bins=n_bins, binning="uniform")
    plots["calibration"].append(
        pd.DataFrame(curve).assign(simplex=simplex)[["confidence", "accuracy", "simplex", "count"]]
    )
