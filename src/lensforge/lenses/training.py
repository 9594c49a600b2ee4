"""Fitting one lens on tensors: Adam, early stopping on validation macro-F1, best weights kept.

``fit`` takes tensors and numbers, never paths (the train stage does the I/O). It runs under
Accelerate: on one process it is a plain loop; under ``accelerate launch`` with N processes the
model is wrapped for data parallelism and each process takes ``batch_size / N`` rows per step
(``batch_size`` is the global batch), so the update matches the single-process one up to float
reduction order. Every process scores the whole (small) validation set with the same weights, so
all of them take the same early-stopping decision without communicating.

Determinism: the lens is initialised after ``torch.manual_seed(seed)`` and batches are shuffled
by a DataLoader generator seeded with ``seed``, so one seed on CPU gives identical weights and
history. The best epoch's weights are kept as a deep copy (cloned tensors): a shallow
``state_dict().copy()`` would keep references to the live parameters, which the optimizer keeps
updating in place, and "restore best" would silently return the last epoch (HatCat's bug).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset

from lensforge.core import metrics
from lensforge.core.params import TrainParams
from lensforge.lenses import models
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


class _Rows(Dataset):
    """Train rows as tensors; ``__getitems__`` gathers a whole batch with one index op."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor):
        self.x, self.y, self.weights = x, y, weights

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i], self.weights[i]

    def __getitems__(self, indices: list[int]):
        take = torch.as_tensor(indices, dtype=torch.long)
        return self.x[take], self.y[take], self.weights[take]  # (b, d_model), (b,), (b,)


def _whole_batch(batch):
    """Collate for ``_Rows``: ``__getitems__`` already returns stacked tensors."""
    return batch


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A deep copy of ``module``'s state: cloned tensors that later updates cannot touch."""
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def per_process_batch(global_batch: int, n_processes: int) -> int:
    """Rows per process per step; raises ``ValueError`` unless the global batch divides evenly."""
    if global_batch % n_processes:
        raise ValueError(
            f"train.batch_size {global_batch} is not divisible by the {n_processes} processes"
        )
    return global_batch // n_processes


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


def _train_epoch(model, optimizer, loader, *, accelerator: Accelerator, loss) -> dict[str, float]:
    """One pass over the train rows; returns the row-weighted mean of each loss component."""
    model.train()
    lens = accelerator.unwrap_model(model)
    sums = torch.zeros(len(COMPONENTS) + 1, device=accelerator.device)  # components + row count
    for x, y, w in loader:
        terms = models.lens_loss(model(x), y, lens.directions(), weights=w, loss=loss)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(terms["total"])
        optimizer.step()
        values = torch.stack([terms[name].detach() for name in COMPONENTS])  # (4,)
        sums += torch.cat([values * len(y), values.new_tensor([len(y)])])
    sums = accelerator.reduce(sums, reduction="sum")
    return {f"train/{name}": float(sums[i] / sums[-1]) for i, name in enumerate(COMPONENTS)}


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
) -> FitResult:
    """Train one lens with early stopping on validation macro-F1 and return the best epoch's.

    ``train_x`` (n, d_model) float, ``train_y`` (n,) long pole labels, ``weights`` (n,) per-row
    loss weights, ``val_x`` / ``val_y`` the validation rows. Stops after ``config.patience``
    epochs without a strictly higher validation macro-F1, or at ``config.max_epochs``. Raises
    ``ValueError`` on mismatched inputs, a pole missing from either split, or a global batch not
    divisible by the process count; ``ParamsError`` on unusable loss params.
    """
    models.check_loss_params(config.loss)
    _check_inputs(train_x, train_y, val_x, val_y, weights)
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    batch = per_process_batch(config.batch_size, accelerator.num_processes)
    torch.manual_seed(seed)
    lens = models.build_lens(config.lens.kind, d_model=train_x.shape[1])
    if config.standardize:
        lens.set_standardization(train_x.mean(dim=0), train_x.std(dim=0))  # (d_model,) each
    optimizer = torch.optim.Adam(
        lens.parameters(), lr=config.optimizer.lr, weight_decay=config.optimizer.weight_decay
    )
    loader = DataLoader(
        _Rows(train_x.float(), train_y.long(), weights.float()),
        batch_size=batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=_whole_batch,
    )
    model, optimizer, loader = accelerator.prepare(lens, optimizer, loader)
    val_x, val_y = val_x.float().to(accelerator.device), val_y.long().to(accelerator.device)
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_state, stale = -math.inf, 0, {}, 0
    for epoch in range(1, config.max_epochs + 1):
        record = {"epoch": epoch}
        record.update(
            _train_epoch(model, optimizer, loader, accelerator=accelerator, loss=config.loss)
        )
        record.update(validation_scores(accelerator.unwrap_model(model), val_x, val_y))
        history.append(record)
        if record["val/macro_f1"] > best_score:
            best_score, best_epoch, stale = record["val/macro_f1"], epoch, 0
            best_state = snapshot(accelerator.unwrap_model(model))
        else:
            stale += 1
            if stale >= config.patience:
                break
    lens = accelerator.unwrap_model(model)
    lens.load_state_dict(best_state)
    return FitResult(
        lens=lens.cpu().eval(), history=history, best_epoch=best_epoch, epochs_run=epoch
    )
