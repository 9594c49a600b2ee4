"""train_spans stage (``accelerate launch -m lensforge.cli train_spans``): windows -> span models.

One model per seed of ``train_spans.seeds`` (init, dropout, batch order), trained on the train
windows and early-stopped on validation span F1 (``spans.training``; any number of processes
gives the result of one). Only the main process writes: per seed a model folder (safetensors +
card) under ``models/spans/seed_<seed>`` and its per-epoch curves under
``metrics/spans/train/seed_<seed>`` (every loss component raw and weighted, task weights, gradient
norm, in-span and out-of-span probability), then ``metrics/train_spans.json`` last (per seed: best
and last epoch, the loss share of each task at the best epoch, raw and weighted).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from lensforge.core import artifacts, curves, metrics, paths, runtime
from lensforge.core.params import Params
from lensforge.spans import model as span_model
from lensforge.spans import training
from lensforge.spans import windows as span_windows

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    config = params.train_spans
    windows, index, features, windows_sha256 = span_windows.read_window_set(root)
    accelerator = runtime.make_accelerator()
    main = accelerator.is_main_process
    split_of_window = index["split"].to_numpy()
    runs = {}
    with contextlib.ExitStack() as stack:
        if main:
            models_dir = stack.enter_context(
                artifacts.atomic_dir(paths.under(root, paths.SPAN_MODELS_DIR))
            )
            curves_dir = stack.enter_context(
                artifacts.atomic_dir(paths.under(root, paths.TRAIN_SPANS_LIVE_DIR))
            )
        for seed in config.seeds:
            started = time.perf_counter()
            result = training.fit(
                windows,
                split_of_window,
                config=config,
                seed=seed,
                iou=params.evaluate_spans.iou,
                accelerator=accelerator,
            )
            best = result.history[result.best_epoch - 1]
            summary = {
                "seed": seed,
                "best_epoch": result.best_epoch,
                "n_epochs": len(result.history),
                "n_processes": accelerator.num_processes,
                "best": best,
                "last": result.history[-1],
                "loss_share": training.loss_shares(best, tasks=config.tasks, key="weighted"),
                "raw_loss_share": training.loss_shares(best, tasks=config.tasks, key="loss"),
            }
            runs[f"seed_{seed}"] = {**summary, "train_seconds": time.perf_counter() - started}
            if main:
                card = {
                    "seed": seed,
                    "tasks": list(config.tasks),
                    "countdown_scale": config.countdown_scale,
                    "countdown_clip": config.countdown_clip,
                    "threshold": config.threshold,
                    "windows_sha256": windows_sha256,
                    "feature_names": features["features"],
                    "best_epoch": result.best_epoch,
                    "val_span_f1": best["val/span_f1"],
                }
                folder = paths.span_model_dir(root, seed).name
                span_model.save_span_model(models_dir / folder, result.model, card)
                curves.write_curve_files(result.history, curves_dir / folder, step_key="epoch")
            log.info(
                "seed %d: best epoch %d of %d, validation span F1 %.3f, countdown share %s",
                seed,
                result.best_epoch,
                len(result.history),
                best["val/span_f1"],
                summary["loss_share"].get("countdown", "off"),
            )
        accelerator.wait_for_everyone()
    if not main:
        return
    f1 = [r["best"]["val/span_f1"] for r in runs.values()]
    mean, std = metrics.mean_std(f1)
    artifacts.write_json(
        paths.under(root, paths.TRAIN_SPANS_METRICS),
        {
            "seeds": list(config.seeds),
            "tasks": list(config.tasks),
            "val_span_f1": {"mean": mean, "std": std, "n": len(f1)},
            "runs": runs,
        },
    )
