"""train stage: balanced rows + cached activations -> one lens per simplex and seed, with curves.

Runs under ``accelerate launch -m lensforge.cli train`` (one process on a laptop, N on GPUs):
every process fits every lens on its share of each batch; only the main process writes, after
``wait_for_everyone``. Outputs: ``models/lenses/<simplex>/seed_<seed>/`` (weights + card),
dvclive curves under ``metrics/train/<simplex>/seed_<seed>/`` and a summary in
``metrics/train.json``. Validation rows (index rows with split ``validation``) drive early
stopping; test rows are never read here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch
from dvclive.plots import Metric
from tqdm import tqdm

from lensforge.activations import cache
from lensforge.core import artifacts, metrics, paths, runtime
from lensforge.core.errors import ArtifactError, DataError
from lensforge.core.params import Params
from lensforge.lenses import models, training
from lensforge.lenses.hatcat import POLES

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    accelerator = runtime.make_accelerator()
    act_dir = paths.under(root, paths.ACTIVATIONS_DIR)
    rows_path = paths.under(root, paths.BALANCED_ROWS)
    rows = _read_rows(rows_path)
    index = cache.read_index(act_dir)
    provenance = {
        "balance_strategy": _balance_strategy(paths.under(root, paths.BALANCE_METRICS)),
        "balanced_rows_sha256": artifacts.file_sha256(rows_path),
        "activation_manifest_sha256": artifacts.file_sha256(
            act_dir / paths.ACTIVATION_MANIFEST_NAME
        ),
    }

    results, seconds = _fit_all(act_dir, rows, index, params=params, accelerator=accelerator)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_runs(root, results, params=params, provenance=provenance)
        summary = {**_summary(results, seconds), "n_processes": accelerator.num_processes}
        artifacts.write_json(paths.under(root, paths.TRAIN_METRICS), summary)
        log.info(
            "trained %d lenses (%s, %d processes) in %.1f s: %s",
            len(results),
            params.train.lens.kind,
            accelerator.num_processes,
            sum(seconds.values()),
            "; ".join(
                f"{s} val macro-F1 {v['val_macro_f1_mean']:.3f}"
                for s, v in summary.items()
                if isinstance(v, dict)
            ),
        )
    accelerator.wait_for_everyone()


def _read_rows(rows_path: Path) -> pd.DataFrame:
    if not rows_path.is_file():
        raise ArtifactError("balanced rows missing: run the balance stage", path=rows_path)
    rows = pd.read_csv(rows_path, keep_default_na=False)
    if rows.empty:
        raise DataError("no balanced train rows", path=rows_path, rule="non-empty")
    return rows


def _balance_strategy(balance_metrics: Path) -> str:
    try:
        return json.loads(balance_metrics.read_text(encoding="utf-8"))["strategy"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        raise ArtifactError(
            "balance metrics missing or without 'strategy': run the balance stage",
            path=balance_metrics,
        ) from None


def _tensors(act_dir: Path, rows: pd.DataFrame, index: pd.DataFrame, simplex: str) -> dict:
    """The keyword tensors of ``training.fit`` for one simplex."""
    train = rows[rows["simplex"] == simplex]
    val = index[(index["simplex"] == simplex) & (index["split"] == "validation")]
    for name, part in (("train", train), ("validation", val)):
        missing = sorted(set(POLES) - set(part["pole"]))
        if missing:
            raise DataError(
                f"simplex {simplex!r} has no {name} rows for pole(s) {missing}",
                row=simplex,
                rule=f"every pole has {name} rows",
            )
    return {
        "train_x": cache.read_vectors(act_dir, train),  # (n_train, d_model)
        "train_y": torch.tensor(train["label"].to_numpy(), dtype=torch.long),
        "weights": torch.tensor(train["weight"].to_numpy(), dtype=torch.float32),
        "val_x": cache.read_vectors(act_dir, val),  # (n_val, d_model)
        "val_y": torch.tensor(val["label"].to_numpy(), dtype=torch.long),
    }


def _fit_all(act_dir, rows, index, *, params: Params, accelerator) -> tuple[dict, dict]:
    """Fit every (simplex, seed) lens; returns results and seconds keyed by (simplex, seed)."""
    runs = [(s, seed) for s in pd.unique(rows["simplex"]) for seed in params.train.seeds]
    data, results, seconds = {}, {}, {}
    threads = torch.get_num_threads()
    # A lens step is a few hundred kFLOP: a second intra-op thread makes it 5-20x slower on
    # 2 cores (measured ~1 ms vs 8-37 ms per step), so lenses train single-threaded per process.
    torch.set_num_threads(1)
    try:
        for simplex, seed in tqdm(
            runs, desc="train lenses", unit="lens", disable=not accelerator.is_main_process
        ):
            if simplex not in data:
                data[simplex] = _tensors(act_dir, rows, index, simplex)
            start = time.perf_counter()
            results[simplex, seed] = training.fit(
                **data[simplex], config=params.train, seed=seed, accelerator=accelerator
            )
            seconds[simplex, seed] = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return results, seconds


def _card(result: training.FitResult, simplex: str, seed: int, params: Params) -> dict:
    best = result.best
    return {
        "simplex": simplex,
        "seed": seed,
        "train_params": dataclasses.asdict(params.train),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "best_val_macro_f1": best["val/macro_f1"],
        "best_val_f1": {pole: best[f"val/f1_{pole}"] for pole in POLES},
        "best_val_margin": {pole: best[f"val/margin_{pole}"] for pole in POLES},
        "train_loss_at_best_epoch": {c: best[f"train/{c}"] for c in training.COMPONENTS},
    }


def _write_curves(history: list[dict], live_dir: Path) -> None:
    """dvclive's curve files: ``<live_dir>/plots/metrics/<name>.tsv``, columns step (= epoch)
    and the value, written by dvclive's own ``Metric`` writer (what ``Live.log_metric`` calls).

    ``Live`` itself is not used: its constructor opens the enclosing DVC/git repository and
    crashes in a git repo without commits ("Empty git repo", e.g. ``git init`` then ``dvc
    repro``), runs ``dvc init`` in a git repo that has no DVC, and its ``end()`` git-adds the
    untracked files of its folder under ``dvc exp run`` (here a temporary folder). Nor its
    ``metrics.json``: a plots directory declared with ``x: step`` fails to parse it in
    ``dvc plots show``; the per-run summary is in the lens card and ``metrics/train.json``.
    """
    curves: dict[str, Metric] = {}
    for record in history:
        for name, value in record.items():
            if name == "epoch":
                continue
            curve = curves.setdefault(name, Metric(name, str(live_dir / "plots")))
            curve.step = record["epoch"]
            curve.dump(value)


def _write_runs(root: Path, results: dict, *, params: Params, provenance: dict) -> None:
    lenses_root = paths.under(root, paths.LENSES_DIR)
    live_root = paths.under(root, paths.TRAIN_LIVE_DIR)
    with artifacts.atomic_dir(lenses_root) as lens_tmp, artifacts.atomic_dir(live_root) as live_tmp:
        for (simplex, seed), result in results.items():
            card = {**_card(result, simplex, seed, params), **provenance}
            lens_dir = paths.lens_dir(root, simplex, seed).relative_to(lenses_root)
            models.save_lens(result.lens, lens_tmp / lens_dir, card=card)
            live_dir = paths.train_live_dir(root, simplex, seed).relative_to(live_root)
            _write_curves(result.history, live_tmp / live_dir)


def _summary(results: dict, seconds: dict) -> dict:
    """Per simplex: validation macro-F1 and per-pole F1 mean/std over seeds, epochs, seconds."""
    summary: dict = {}
    for simplex in dict.fromkeys(s for s, _ in results):
        runs = [(r, seconds[key]) for key, r in results.items() if key[0] == simplex]
        macro_mean, macro_std = metrics.mean_std([r.best["val/macro_f1"] for r, _ in runs])
        entry = {"val_macro_f1_mean": macro_mean, "val_macro_f1_std": macro_std}
        for pole in POLES:
            f1_mean, f1_std = metrics.mean_std([r.best[f"val/f1_{pole}"] for r, _ in runs])
            entry[f"val_f1_{pole}_mean"], entry[f"val_f1_{pole}_std"] = f1_mean, f1_std
        entry["epochs_run_mean"] = sum(r.epochs_run for r, _ in runs) / len(runs)
        entry["best_epoch_mean"] = sum(r.best_epoch for r, _ in runs) / len(runs)
        entry["seconds"] = sum(s for _, s in runs)
        summary[simplex] = entry
    summary["seconds"] = sum(seconds.values())
    return summary
