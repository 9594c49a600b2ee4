"""Fitting one lens on tensors: Adam, early stopping on validation macro-F1, best weights kept.

``fit`` takes tensors and numbers, never paths (the train stage does the I/O). It runs under
Accelerate. Every process walks the same seeded order of global batches (``batch_size`` rows,
the last one smaller) and takes its share of each (``runtime.rank_share``, possibly empty). Row
terms of the loss are divided by the GLOBAL batch's row count and gradients are summed over
processes, so N processes compute the single-process update for any row count, up to float
reduction order: no row is duplicated to even the shares out (Accelerate's ``even_batches`` would
repeat rows from the start of the epoch). Every process scores the whole (small) validation set
with the same weights, so all of them take the same early-stopping decision without talking.

Determinism: the lens is initialised after ``torch.manual_seed(seed)`` and the batch order comes
from a generator seeded with ``seed``, so one seed on CPU gives identical weights and history.
The best epoch's weights are kept as a deep copy (cloned tensors): a shallow
``state_dict().copy()`` would keep references to the live parameters, which the optimizer keeps
updating in place, and "restore best" would silently return the last epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm import tqdm

from lensforge.activations import cache
from lensforge.core import metrics, runtime
from lensforge.core.early_stopping import EarlyStopping
from lensforge.core.errors import DataError
from lensforge.core.params import TrainParams
from lensforge.lenses import models, overlap
from lensforge.lenses.hatcat import POLES

COMPONENTS = ("ce", "margin", "ortho", "total")


@dataclasses.dataclass
class FitResult:
    """A fitted lens and how it got there.

    ``lens``: the best epoch's weights, on CPU, in eval mode. ``history``: one flat dict per
    epoch with ``epoch`` (1-based), ``train/<component>`` (row-weighted mean over the epoch's
    batches), ``val/macro_f1``, ``val/f1_<pole>`` and ``val/margin_<pole>`` (mean
    ``p(true) - max p(other)`` over the pole's validation rows, unfloored so collapse shows).
    """

    lens: models.Lens
    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int

    @property
    def best(self) -> dict[str, float]:
        """The history entry of the best epoch (the weights ``lens`` holds)."""
        return self.history[self.best_epoch - 1]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A deep copy of ``module``'s state: cloned tensors that later updates cannot touch."""
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _check_inputs(train_x, train_y, val_x, val_y, weights) -> None:
    if train_x.ndim != 2 or val_x.ndim != 2 or train_x.shape[1] != val_x.shape[1]:
        raise ValueError(f"need (n, d_model) features, got {train_x.shape} and {val_x.shape}")
    if len(train_y) != len(train_x) or len(weights) != len(train_x) or len(val_y) != len(val_x):
        raise ValueError(
            f"rows disagree: train x {len(train_x)}, y {len(train_y)}, weights {len(weights)}; "
            f"validation x {len(val_x)}, y {len(val_y)}"
        )
    for name, labels in (("train", train_y), ("validation", val_y)):
        missing = [pole for i, pole in enumerate(POLES) if not bool((labels == i).any())]
        if missing:
            raise ValueError(f"{name} rows lack pole(s) {missing}")


def _reduce_grads(lens: torch.nn.Module, accelerator: Accelerator) -> None:
    """Sum every gradient over processes (each holds its rows' share of the global gradient)."""
    if accelerator.num_processes == 1:
        return
    for param in lens.parameters():
        if param.grad is not None:
            param.grad = accelerator.reduce(param.grad, reduction="sum")


def _dropout_share(lens, n_rows: int, positions: torch.Tensor, *, generator: torch.Generator):
    """This process's rows of a dropout mask drawn for the whole global batch (None for lenses
    without dropout): every process draws the same mask, so N processes drop what one would."""
    draw = getattr(lens, "dropout_mask", None)
    mask = draw(n_rows, generator=generator) if draw is not None else None
    return None if mask is None else mask[positions]


def _train_epoch(
    lens,
    optimizer,
    data,
    *,
    order: torch.Tensor,
    batch_size: int,
    accelerator: Accelerator,
    loss,
    mask_rng: torch.Generator,
) -> dict[str, float]:
    """One pass over the train rows in ``order``; returns the mean of each loss component over
    the epoch's rows (each global batch weighted by its row count). ``data`` holds features,
    labels, row weights and target distributions (n, 3)."""
    lens.train()
    x_all, y_all, w_all, t_all = data
    rank, world = accelerator.process_index, accelerator.num_processes
    sums = torch.zeros(len(COMPONENTS), device=accelerator.device)  # global, summed over batches
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]  # (b,) the global batch, same on every process
        positions = runtime.rank_share(torch.arange(len(batch)), rank=rank, world_size=world)
        take = batch[positions.to(batch.device)]  # (<= ceil(b / world),)
        x, y, w, t = x_all[take], y_all[take], w_all[take], t_all[take]
        keep = _dropout_share(lens, len(batch), positions, generator=mask_rng)
        log_probs = lens(x, keep.to(x.device)) if keep is not None else lens(x)
        terms = models.lens_loss(
            log_probs, y, lens.directions(), weights=w, loss=loss, n_rows=len(batch), targets=t
        )
        # Row terms are this process's share of the global batch mean; the row-free ortho term
        # is split evenly so that the sum over processes counts it once.
        local = terms["ce"] + terms["margin"] + terms["ortho"] / world
        optimizer.zero_grad(set_to_none=True)
        local.backward()
        _reduce_grads(lens, accelerator)
        optimizer.step()
        shares = torch.stack([terms["ce"], terms["margin"], terms["ortho"] / world]).detach()
        sums += torch.cat([shares, shares.sum().reshape(1)]) * len(batch)  # (4,)
    sums = accelerator.reduce(sums, reduction="sum") if world > 1 else sums
    return {f"train/{name}": float(sums[i] / len(order)) for i, name in enumerate(COMPONENTS)}


@torch.no_grad()
def validation_scores(lens: torch.nn.Module, val_x: torch.Tensor, val_y: torch.Tensor) -> dict:
    """Macro-F1, per-pole F1 and mean margin per pole of ``lens`` on the validation rows."""
    lens.eval()
    probs = lens(val_x).exp().cpu().double().numpy()  # (n, 3)
    y = val_y.cpu().numpy()
    scores = metrics.per_class_scores(y, probs.argmax(axis=1), n_classes=len(POLES))
    class_margins = metrics.mean_margin_by_class(y, probs)
    out = {"val/macro_f1": float(np.mean(scores["f1"]))}
    out.update({f"val/f1_{pole}": scores["f1"][i] for i, pole in enumerate(POLES)})
    out.update({f"val/margin_{pole}": class_margins[i] for i, pole in enumerate(POLES)})
    return out


def fit(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    *,
    weights: torch.Tensor,
    config: TrainParams,
    seed: int,
    accelerator: Accelerator | None = None,
    targets: torch.Tensor | None = None,
) -> FitResult:
    """Train one lens with early stopping on validation macro-F1 and return the best epoch's.

    ``train_x`` (n, d_model) float, ``train_y`` (n,) long pole labels, ``weights`` (n,) per-row
    loss weights, ``targets`` (n, 3) the cross-entropy's target distributions (default one-hot
    ``train_y``; soft rows under ``prompts.overlap: soft``), ``val_x`` / ``val_y`` the validation
    rows. Stops after ``config.patience``
    epochs without a strictly higher validation macro-F1, or at ``config.max_epochs``. Raises
    ``ValueError`` on mismatched inputs or a pole missing from either split; ``ParamsError`` on
    unusable loss params.
    """
    models.check_loss_params(config.loss)
    _check_inputs(train_x, train_y, val_x, val_y, weights)
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    torch.manual_seed(seed)
    lens = models.build_lens(
        config.lens.kind,
        d_model=train_x.shape[1],
        hidden=config.lens.hidden,
        dropout=config.lens.dropout,
    )
    if config.standardize:
        lens.set_standardization(train_x.mean(dim=0), train_x.std(dim=0))  # (d_model,) each
    lens.to(device)
    optimizer = torch.optim.Adam(
        lens.parameters(), lr=config.optimizer.lr, weight_decay=config.optimizer.weight_decay
    )
    if targets is None:
        targets = F.one_hot(train_y.long(), len(POLES)).double()
    data = (
        train_x.float().to(device),
        train_y.long().to(device),
        weights.float().to(device),
        targets.float().to(device),
    )
    val_x, val_y = val_x.float().to(device), val_y.long().to(device)
    order_rng = torch.Generator().manual_seed(seed)
    mask_rng = torch.Generator().manual_seed(seed + 1)
    stopper = EarlyStopping(config.patience)
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] = {}
    for epoch in range(1, config.max_epochs + 1):
        order = torch.randperm(len(train_y), generator=order_rng).to(device)  # (n_train,)
        record = {"epoch": epoch}
        record.update(
            _train_epoch(
                lens,
                optimizer,
                data,
                order=order,
                batch_size=config.batch_size,
                accelerator=accelerator,
                loss=config.loss,
                mask_rng=mask_rng,
            )
        )
        record.update(validation_scores(lens, val_x, val_y))
        history.append(record)
        if stopper.update(epoch, record["val/macro_f1"]):
            best_state = snapshot(lens)
        if stopper.should_stop:
            break
    lens.load_state_dict(best_state)
    return FitResult(
        lens=lens.cpu().eval(), history=history, best_epoch=stopper.best_epoch, epochs_run=epoch
    )


def fit_inputs(
    act_dir: Path, rows: pd.DataFrame, index: pd.DataFrame, simplex: str, *, layer: int
) -> dict:
    """The keyword tensors of ``fit`` for one simplex: its balanced train ``rows`` (with their
    ``soft`` flags) and the VALIDATION rows of the activation ``index``, already labelled by
    ``overlap.labelled_rows`` (test rows are never read); ``DataError`` when a pole has no rows
    in either. Vectors are read at ``layer``."""
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
    labels = train["label"].to_numpy()
    targets = overlap.target_matrix(labels, train["poles"].to_numpy(), train["soft"].to_numpy())
    return {
        "train_x": cache.read_vectors(act_dir, train, layer=layer),  # (n_train, d_model)
        "train_y": torch.tensor(labels, dtype=torch.long),
        "weights": torch.tensor(train["weight"].to_numpy(), dtype=torch.float32),
        "targets": torch.tensor(targets),  # (n_train, 3)
        "val_x": cache.read_vectors(act_dir, val, layer=layer),  # (n_val, d_model)
        "val_y": torch.tensor(val["label"].to_numpy(), dtype=torch.long),
    }


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, then restore the previous count.

    A lens step is a few hundred kFLOP: a second intra-op thread makes it 5-20x slower on
    2 cores (measured ~1 ms vs 8-37 ms per step), so lenses train single-threaded per process.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_all(act_dir: Path, rows, index, *, config: TrainParams, accelerator) -> tuple[dict, dict]:
    """Fit every (simplex, seed) lens; returns results and seconds keyed by (simplex, seed)."""
    runs = [(s, seed) for s in pd.unique(rows["simplex"]) for seed in config.seeds]
    data, results, seconds = {}, {}, {}
    with single_thread():
        for simplex, seed in tqdm(
            runs, desc="train lenses", unit="lens", disable=not accelerator.is_main_process
        ):
            if simplex not in data:
                data[simplex] = fit_inputs(act_dir, rows, index, simplex, layer=config.layer)
            start = time.perf_counter()
            results[simplex, seed] = fit(
                **data[simplex], config=config, seed=seed, accelerator=accelerator
            )
            seconds[simplex, seed] = time.perf_counter() - start
    return results, seconds


def lens_card(result: FitResult, simplex: str, seed: int, config: TrainParams) -> dict:
    """What a lens card records of its training (the stage adds the data hashes)."""
    best = result.best
    return {
        "simplex": simplex,
        "seed": seed,
        "train_params": dataclasses.asdict(config),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "best_val_macro_f1": best["val/macro_f1"],
        "best_val_f1": {pole: best[f"val/f1_{pole}"] for pole in POLES},
        "best_val_margin": {pole: best[f"val/margin_{pole}"] for pole in POLES},
        "train_loss_at_best_epoch": {c: best[f"train/{c}"] for c in COMPONENTS},
    }


def summarize(results: dict, seconds: dict) -> dict:
    """Per simplex: validation macro-F1 mean/std over seeds and seconds (``metrics/train.json``
    keeps what a trial compares; per-pole scores and epochs are in each lens card)."""
    summary: dict = {}
    for simplex in dict.fromkeys(s for s, _ in results):
        runs = [(r, seconds[key]) for key, r in results.items() if key[0] == simplex]
        macro_mean, macro_std = metrics.mean_std([r.best["val/macro_f1"] for r, _ in runs])
        entry = {"val_macro_f1_mean": macro_mean, "val_macro_f1_std": macro_std}
        entry["seconds"] = sum(s for _, s in runs)
        summary[simplex] = entry
    summary["seconds"] = sum(seconds.values())
    return summary
