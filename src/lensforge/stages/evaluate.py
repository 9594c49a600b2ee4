"""evaluate stage: saved lenses + cached test activations -> metrics, diagnostics and plot tables.

Reads the activation index, the vectors of the TEST rows only (validation enters only through
what each lens card recorded: the validation macro-F1 it was selected and graded on), and every
lens under ``models/lenses/<simplex>/seed_<seed>/``. Each lens is rebuilt from its own card and
weights (``models.load_lens``): a simplex with test rows but no lens, a missing card or weights
file, weights whose sha256 differs from the card, or a card trained on other activations is an
``ArtifactError``; an untrained lens is never scored (seed 002's bug).

Outputs, all written atomically:
- ``metrics/evaluate.json``: flat keys ``<simplex>/<metric>`` (see ``metrics.summarize_seeds``)
  and ``diagnostics``, a list of plain-words messages, each naming simplex and seed (also logged
  as warnings). ``<simplex>/tier`` grades the mean VALIDATION macro-F1 over seeds;
  ``<simplex>/test_tier`` the mean test macro-F1; ``seed_<seed>/tier`` and ``/test_tier`` grade
  each lens.
- ``metrics/evaluate/confusion.csv``: one row per (test row, seed) with ``actual`` and
  ``predicted`` labelled ``<simplex>:<pole>``: the confusion plot pools every seed, so seed-to-seed
  instability shows as off-diagonal mass.
- ``metrics/evaluate/f1_by_seed.csv``: per-pole test F1 per lens (``run`` = simplex pole seed).
- ``metrics/evaluate/calibration.csv``: reliability curve per simplex, uniform bins, seeds pooled.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from lensforge.activations import cache
from lensforge.core import artifacts, metrics, paths
from lensforge.core.errors import ArtifactError
from lensforge.core.params import Params
from lensforge.lenses import models
from lensforge.lenses.hatcat import POLES

log = logging.getLogger(__name__)

SEED_DIR = re.compile(r"seed_(\d+)")
CARD_KEYS = (
    "simplex",
    "seed",
    "best_val_macro_f1",
    "train_loss_at_best_epoch",
    "activation_manifest_sha256",
)


def run(params: Params, *, root: Path) -> None:
    act_dir = paths.under(root, paths.ACTIVATIONS_DIR)
    index = cache.read_index(act_dir)
    test = index[index["split"] == "test"]
    if test.empty:
        raise ArtifactError("the activation index has no test rows", path=act_dir, rule="test rows")
    manifest_sha256 = artifacts.file_sha256(act_dir / paths.ACTIVATION_MANIFEST_NAME)
    lens_dirs = _lens_dirs(root, simplexes=list(pd.unique(test["simplex"])))

    summary: dict[str, object] = {}
    diagnostics: list[str] = []
    plots: dict[str, list[pd.DataFrame]] = {"confusion": [], "f1_by_seed": [], "calibration": []}
    for simplex, seeds in tqdm(lens_dirs.items(), desc="evaluate lenses", unit="simplex"):
        rows = test[test["simplex"] == simplex]
        x = cache.read_vectors(act_dir, rows)  # (n_test, d_model)
        y = rows["label"].to_numpy()  # (n_test,)
        runs, probs, messages = _score_seeds(
            seeds, x, y, simplex=simplex, params=params, manifest_sha256=manifest_sha256
        )
        diagnostics += messages
        simplex_summary = metrics.summarize_seeds(runs, class_names=POLES, config=params.evaluate)
        summary.update({f"{simplex}/{key}": value for key, value in simplex_summary.items()})
        _add_plot_rows(plots, simplex, y, probs, runs, n_bins=params.evaluate.ece_bins)
        _log_summary(simplex, simplex_summary)
    for message in diagnostics:
        log.warning(message)

    plot_paths = {
        "confusion": paths.EVALUATE_CONFUSION,
        "f1_by_seed": paths.EVALUATE_F1_BY_SEED,
        "calibration": paths.EVALUATE_CALIBRATION,
    }
    for name, frames in plots.items():
        artifacts.write_csv(
            paths.under(root, plot_paths[name]), pd.concat(frames, ignore_index=True)
        )
    artifacts.write_json(
        paths.under(root, paths.EVALUATE_METRICS), {**summary, "diagnostics": diagnostics}
    )


def _lens_dirs(root: Path, *, simplexes: list[str]) -> dict[str, dict[int, Path]]:
    """simplex -> seed -> lens folder, for every simplex with test rows (in index order).

    Raises ``ArtifactError`` when a simplex with test rows has no lens folder, or a lens folder
    belongs to no simplex with test rows (it could not be scored).
    """
    lenses_root = paths.under(root, paths.LENSES_DIR)
    found: dict[str, dict[int, Path]] = {}
    for simplex in simplexes:
        simplex_dir = lenses_root / paths.simplex_slug(simplex)
        folders = simplex_dir.iterdir() if simplex_dir.is_dir() else []
        seeds = {int(m[1]): f for f in folders if (m := SEED_DIR.fullmatch(f.name)) and f.is_dir()}
        if not seeds:
            raise ArtifactError(
                f"simplex {simplex!r} has test rows but no trained lens: run the train stage",
                path=simplex_dir,
                rule="every simplex with test rows has a lens",
            )
        found[simplex] = dict(sorted(seeds.items()))
    expected = {paths.simplex_slug(s) for s in simplexes}
    if lenses_root.is_dir():
        strays = sorted(
            d.name for d in lenses_root.iterdir() if d.is_dir() and d.name not in expected
        )
        if strays:
            raise ArtifactError(
                f"lenses for simplexes without test rows: {strays}",
                path=lenses_root,
                rule="every lens has test rows",
            )
    return found


def _score_seeds(
    seeds: dict[int, Path],
    x: torch.Tensor,
    y: np.ndarray,
    *,
    simplex: str,
    params: Params,
    manifest_sha256: str,
) -> tuple[dict[int, dict], dict[int, np.ndarray], list[str]]:
    """Per seed: ``metrics.evaluate_run`` scores and pole probabilities; all diagnostics."""
    runs, probs, diagnostics = {}, {}, []
    for seed, lens_dir in seeds.items():
        card, probs[seed] = _predict(
            lens_dir, x, simplex=simplex, seed=seed, manifest_sha256=manifest_sha256
        )
        runs[seed], messages = metrics.evaluate_run(
            y,
            probs[seed],
            val_macro_f1=card["best_val_macro_f1"],
            loss_components=_loss_components(card),
            class_names=POLES,
            config=params.evaluate,
        )
        diagnostics += [f"{simplex} seed {seed}: {message}" for message in messages]
    return runs, probs, diagnostics


def _predict(
    lens_dir: Path, x: torch.Tensor, *, simplex: str, seed: int, manifest_sha256: str
) -> tuple[dict, np.ndarray]:
    """The lens card and the pole probabilities (n, 3) of the saved lens on ``x`` (n, d_model).

    ``load_lens`` checks the weights against the card's sha256; here the card must also name
    this folder's simplex and seed, fit the activations' width and come from these activations.
    """
    model, card = models.load_lens(lens_dir)
    missing = [key for key in CARD_KEYS if key not in card]
    if missing:
        raise ArtifactError(f"lens card lacks {missing}", path=lens_dir / models.CARD_NAME)
    if (card["simplex"], card["seed"]) != (simplex, seed):
        raise ArtifactError(
            f"card names simplex {card['simplex']!r} seed {card['seed']}, folder says "
            f"{simplex!r} seed {seed}",
            path=lens_dir / models.CARD_NAME,
            rule="card matches its folder",
        )
    if int(card["d_model"]) != x.shape[1]:
        raise ArtifactError(
            f"lens width {card['d_model']} differs from the activations' {x.shape[1]}",
            path=lens_dir / models.CARD_NAME,
            rule="lens fits the activations",
        )
    if card["activation_manifest_sha256"] != manifest_sha256:
        raise ArtifactError(
            "lens was trained on other activations (manifest sha256 "
            f"{card['activation_manifest_sha256']} != {manifest_sha256}): rerun train",
            path=lens_dir / models.CARD_NAME,
            rule="lens trained on these activations",
        )
    probs = models.pole_probabilities(model, x)  # (n_test, 3)
    return card, probs.double().numpy()


def _loss_components(card: dict) -> dict[str, float]:
    """The weighted train-loss terms at the kept (best) epoch, without their sum."""
    return {k: v for k, v in card["train_loss_at_best_epoch"].items() if k != "total"}


def _log_summary(simplex: str, summary: dict) -> None:
    log.info(
        "%s: test macro-F1 %s, neutral F1 %s, %d/%d catastrophic; tier %s (validation macro-F1 "
        "%.3f), test tier %s",
        simplex,
        _mean_std_text(summary, "macro_f1"),
        _mean_std_text(summary, "neutral/f1"),
        summary["n_catastrophic"],
        summary["n_seeds"],
        summary["tier"],
        summary["val_macro_f1_mean"],
        summary["test_tier"],
    )


def _mean_std_text(summary: dict, key: str) -> str:
    std = summary.get(f"{key}_std")
    return f"{summary[f'{key}_mean']:.3f}" + ("" if std is None else f" ± {std:.3f}")


def _add_plot_rows(plots: dict, simplex: str, y, probs: dict, runs: dict, *, n_bins: int) -> None:
    """Append this simplex's rows to the three plot tables (see the module docstring)."""
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
    curve = metrics.reliability_curve(pooled_y, pooled_probs, n_bins=n_bins, binning="uniform")
    plots["calibration"].append(
        pd.DataFrame(curve).assign(simplex=simplex)[["confidence", "accuracy", "simplex", "count"]]
    )
