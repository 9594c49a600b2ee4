"""The Accelerate training loop of the span model (runs under ``accelerate launch``).

The multi-task loss is ``core.multitask.MultiTaskObjective``, the one the adjudication classifier
trains with: ``class`` and ``pointers`` are ``ce`` tasks (pointers: the start and the end of a
window's first span as two rows of a classification over positions, masked where the window has
no start), ``span`` a ``bce`` task over bars (soft targets: ``span_label_smoothing``) and
``countdown`` a ``huber`` task over bars (NaN where the window has no start), in the units of
``countdown_scale``. ``tasks`` switches heads off; ``task_weighting`` is fixed or clamped
uncertainty weighting, with optional per-task normalisation.

N processes compute what one process computes, for any window count: every process draws the
same epoch order and cuts it into the same global batches, takes its share of each
(``runtime.rank_share``; an empty share runs a masked row), gets its rows of dropout masks drawn
for the whole global batch, and the objective divides by global counts. Validation predicts each
window once (shares gathered), so every process takes the same early-stopping decision (on
validation span F1 at IoU ``evaluate_spans.iou``). The loop writes nothing; it returns the best
epoch's weights and every epoch's record: each loss component raw and weighted, task weights,
gradient norm, and the in-span / out-of-span mean membership probability on validation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import numpy as np
import torch
from accelerate.utils import gather_object, set_seed
from torch import nn
from tqdm import tqdm

from lensforge.core import multitask, runtime, splits
from lensforge.core.early_stopping import EarlyStopping
from lensforge.core.errors import DataError
from lensforge.core.params import TrainSpansParams
from lensforge.spans import metrics as span_metrics
from lensforge.spans.model import SpanModel, SpanModelConfig, build_model, scale_countdown

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SpanSplit:
    """The windows of one split: features (n, L, F) and the targets of every task."""

    features: np.ndarray
    targets: dict[str, np.ndarray]  # class (n,), pointers (n, 2), span (n, L), countdown (n, L)
    membership: np.ndarray  # (n, L) 0/1, for the span metrics

    def __len__(self) -> int:
        return len(self.features)


def make_split(windows: Mapping[str, np.ndarray], rows: np.ndarray, config: TrainSpansParams):
    """Targets of ``rows`` in training units; pointers masked (``NO_LABEL``) without a start."""
    start, end = windows["start"][rows], windows["end"][rows]
    pointers = np.stack([start, end], axis=1).astype(np.int64)  # (n, 2)
    pointers[start < 0] = multitask.NO_LABEL
    countdown = scale_countdown(
        windows["countdown"][rows], scale=config.countdown_scale, clip=config.countdown_clip
    )
    membership = windows["membership"][rows].astype(np.float32)
    targets = {
        "class": windows["window_class"][rows].astype(np.int64),
        "pointers": pointers,
        "span": membership,
        "countdown": countdown,
    }
    return SpanSplit(
        features=windows["features"][rows].astype(np.float32),
        targets={t: targets[t] for t in config.tasks},
        membership=membership,
    )


def build_objective(config: TrainSpansParams) -> multitask.MultiTaskObjective:
    """The objective over the trained tasks (module doc)."""
    weights = config.task_weights
    every = {
        "class": {"gamma": 0.0, "label_smoothing": 0.0, "class_weights": None},
        "pointers": {"gamma": 0.0, "label_smoothing": 0.0, "class_weights": None},
        "span": {"kind": "bce", "label_smoothing": config.span_label_smoothing},
        "countdown": {"kind": "huber", "delta": config.huber_delta},
    }
    tasks = {t: {**every[t], "task_weight": weights[t]} for t in config.tasks}
    return multitask.from_weighting(tasks, config.task_weighting, rdrop_alpha=0.0)


def objective_inputs(outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]):
    """Model outputs and targets as the objective reads them: pointers flattened to rows."""
    logits, labels = {}, {}
    for task, y in targets.items():
        z = outputs[task]
        if task == "pointers":
            z, y = z.reshape(-1, z.shape[-1]), y.reshape(-1)  # (2n, L), (2n,)
        logits[task], labels[task] = z, y
    return logits, labels


class SpanModule(nn.Module):
    """Model + objective in one module, so DistributedDataParallel sees the learned
    log-variances inside ``forward``."""

    def __init__(self, model: SpanModel, objective: multitask.MultiTaskObjective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, features, targets, dropout_masks=None):
        outputs = self.model(features, dropout_masks=dropout_masks)
        return self.objective(*objective_inputs(outputs, targets))


def _masked_targets(targets: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The targets of a row that counts for nothing (an empty share's stand-in)."""
    masked = {}
    for task, y in targets.items():
        fill = multitask.NO_LABEL if y.dtype == np.int64 else np.nan
        masked[task] = np.full_like(y, fill)
    return masked


def _share(split: SpanSplit, rows: np.ndarray, *, accelerator) -> tuple[np.ndarray, dict]:
    """Positions in the global batch ``rows`` of this process's share, and the share's targets.
    An empty share becomes the batch's first row with every target masked: it adds nothing to
    the loss or the gradient but joins DDP's gradient exchange."""
    positions = runtime.rank_share(
        np.arange(len(rows)), rank=accelerator.process_index, world_size=accelerator.num_processes
    )
    if len(positions) == 0:
        first = rows[:1]
        return np.zeros(1, np.int64), _masked_targets(
            {t: y[first] for t, y in split.targets.items()}
        )
    return positions, {t: y[rows[positions]] for t, y in split.targets.items()}


def predict_outputs(model: SpanModel, features: np.ndarray, *, accelerator, batch_size: int):
    """Span probabilities (n, L), class probabilities (n, 3) and every raw output, each window
    predicted once: every process scores its share and the shares are gathered."""
    mine = runtime.rank_share(
        np.arange(len(features)),
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
    )
    outputs: dict[str, list[np.ndarray]] = {}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(mine), batch_size):
            rows = mine[start : start + batch_size]
            x = torch.as_tensor(features[rows]).to(accelerator.device)
            for name, value in model(x).items():
                outputs.setdefault(name, []).append(value.float().cpu().numpy())
    local = {name: np.concatenate(parts) for name, parts in outputs.items()}
    shares = gather_object([(mine, local)])
    rows = np.concatenate([r for r, _ in shares])
    if sorted(rows.tolist()) != list(range(len(features))):
        raise RuntimeError(f"gathered {len(rows)} predictions for {len(features)} windows")
    back = np.argsort(rows, kind="stable")
    names = next(part for _, part in shares if part).keys() if len(features) else []
    return {
        name: np.concatenate([part[name] for _, part in shares if part])[back] for name in names
    }


def validation_record(
    outputs: Mapping[str, np.ndarray], split: SpanSplit, *, threshold: float, iou: float
) -> dict[str, float]:
    """Span F1 / precision / recall at ``threshold`` and IoU ``iou``, mean membership probability
    in and out of spans, and the window-class macro-F1 when the class head is trained."""
    probs = 1.0 / (1.0 + np.exp(-outputs["span"]))  # (n, L)
    scores = span_metrics.span_scores(probs >= threshold, split.membership, iou=iou)
    gap = span_metrics.separation(split.membership, probs)
    record = {
        "span_f1": scores["span_f1"],
        "span_precision": scores["span_precision"],
        "span_recall": scores["span_recall"],
        "p_in": gap["p_in"] if gap["p_in"] is not None else float("nan"),
        "p_out": gap["p_out"] if gap["p_out"] is not None else float("nan"),
    }
    record["separation"] = record["p_in"] - record["p_out"]
    if "class" in split.targets:
        z = outputs["class"] - outputs["class"].max(axis=1, keepdims=True)
        class_probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        record["class_macro_f1"] = span_metrics.window_class_macro_f1(
            split.targets["class"], class_probs
        )
    return record


@dataclasses.dataclass
class SpanTrainResult:
    model: SpanModel
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]


def _train_epoch(module, optimizer, split: SpanSplit, *, config, accelerator, seed, epoch):
    module.train()
    unwrapped = accelerator.unwrap_model(module)
    order = np.random.default_rng(splits.stable_seed(seed, epoch)).permutation(len(split))
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    sums: dict[str, torch.Tensor] = {}
    grad_norms = []
    bar = tqdm(
        batches,
        desc=f"train_spans epoch {epoch}",
        disable=not accelerator.is_main_process,
        leave=False,
    )
    for b, rows in enumerate(bar):
        positions, targets = _share(split, rows, accelerator=accelerator)
        generator = torch.Generator().manual_seed(splits.stable_seed(seed, epoch, b, "dropout"))
        masks = unwrapped.model.dropout_masks(len(rows), generator=generator)  # whole batch
        masks = [m[torch.as_tensor(positions)] for m in masks]
        features = torch.as_tensor(split.features[rows[positions]]).to(accelerator.device)
        tensors = {t: torch.as_tensor(y).to(accelerator.device) for t, y in targets.items()}
        total, parts = module(features, tensors, masks or None)
        accelerator.backward(total)
        for name, value in parts.items():
            sums[name] = sums.get(name, torch.zeros(())) + value.detach().float().cpu()
        grad_norms.append(
            float(accelerator.clip_grad_norm_(module.parameters(), config.max_grad_norm))
        )
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            unwrapped.objective.log_vars.clamp_(*unwrapped.objective.log_var_range)
        bar.set_postfix(loss=f"{float(total.detach()):.3f}")
    record = {
        f"train/{k}": v
        for k, v in multitask.epoch_part_means(sums, len(batches), accelerator).items()
    }
    record["grad_norm"] = float(np.mean(grad_norms)) if grad_norms else 0.0
    return record


def _validate(unwrapped: SpanModule, split: SpanSplit, *, config, accelerator, iou) -> dict:
    outputs = predict_outputs(
        unwrapped.model, split.features, accelerator=accelerator, batch_size=config.batch_size
    )
    record = validation_record(outputs, split, threshold=config.threshold, iou=iou)
    record = {f"val/{k}": v for k, v in record.items()}
    device = unwrapped.objective.loss_scale.device
    tensors = {t: torch.as_tensor(v, device=device) for t, v in outputs.items()}
    targets = {t: torch.as_tensor(y, device=device) for t, y in split.targets.items()}
    with torch.no_grad():
        unwrapped.objective.eval()
        _, parts = unwrapped.objective(*objective_inputs(tensors, targets))
    record.update({f"val/{k}": float(v) for k, v in parts.items()})
    return record


def check_split(split: SpanSplit, *, name: str) -> None:
    """A ``DataError`` when a split cannot train or select a model: no window, or no span bar."""
    if len(split) == 0 or not split.membership.any():
        raise DataError(
            f"the {name} split has {len(split)} windows and "
            f"{int(split.membership.sum())} span bars: nothing to learn or select on (check "
            "windows.label and windows.split)",
            row=name,
            rule=f"{name} windows with span bars",
        )


def train(
    model: SpanModel,
    train_split: SpanSplit,
    val_split: SpanSplit,
    *,
    config: TrainSpansParams,
    accelerator,
    seed: int,
    iou: float,
) -> SpanTrainResult:
    """Train with early stopping on validation span F1; the returned model holds the best
    epoch's weights (CPU), the history every epoch's record (``epoch`` 1-based)."""
    objective = build_objective(config)
    if accelerator.num_processes > 1:
        objective.distribute(
            lambda t: accelerator.reduce(t, reduction="sum"), n_processes=accelerator.num_processes
        )
    module = SpanModule(model, objective)
    groups = [
        {"params": list(model.parameters()), "lr": config.lr, "weight_decay": config.weight_decay}
    ]
    if objective.log_vars.requires_grad:
        groups.append(
            {
                "params": [objective.log_vars],
                "lr": config.task_weighting.log_var_lr,
                "weight_decay": 0.0,
            }
        )
    module, optimizer = accelerator.prepare(module, torch.optim.AdamW(groups))
    unwrapped = accelerator.unwrap_model(module)
    stopper = EarlyStopping(patience=config.patience)
    history, best_state = [], {}
    for epoch in range(1, config.max_epochs + 1):
        record = {"epoch": epoch}
        record.update(
            _train_epoch(
                module,
                optimizer,
                train_split,
                config=config,
                accelerator=accelerator,
                seed=seed,
                epoch=epoch,
            )
        )
        record.update(
            _validate(unwrapped, val_split, config=config, accelerator=accelerator, iou=iou)
        )
        for i, task in enumerate(objective.task_names):  # the weights the gradient saw
            record[f"task_weight/{task}"] = float(objective.effective_weights()[i])
        history.append(record)
        if accelerator.is_main_process:
            log.info(
                "epoch %d: train loss %.4f, validation span F1 %.3f, p_in %.3f, p_out %.3f",
                epoch,
                record["train/total"],
                record["val/span_f1"],
                record["val/p_in"],
                record["val/p_out"],
            )
        if stopper.update(epoch, record["val/span_f1"]):
            state = unwrapped.model.state_dict()
            best_state = {k: v.detach().cpu().clone() for k, v in state.items()}
        if stopper.should_stop:
            log.info("early stop after epoch %d (best %d)", epoch, stopper.best_epoch)
            break
    accelerator.free_memory()
    model = model.cpu()
    model.load_state_dict(best_state)
    return SpanTrainResult(model, stopper.best_epoch, stopper.best_score, history)


def loss_shares(record: Mapping[str, float], *, tasks, key: str) -> dict[str, float]:
    """Each task's share of the sum of |``<prefix>/<task>/<key>``| over tasks in ``record``
    (``key`` ``weighted``: what the gradient sees; ``loss``: the raw losses)."""
    values = {t: abs(float(record.get(f"train/{t}/{key}", 0.0))) for t in tasks}
    total = sum(values.values())
    return {t: (v / total if total > 0 else 0.0) for t, v in values.items()}


def feature_standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over every bar of the training windows."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), flat.std(axis=0)


def fit(
    windows: Mapping[str, np.ndarray],
    split_of_window: np.ndarray,
    *,
    config: TrainSpansParams,
    seed: int,
    iou: float,
    accelerator,
) -> SpanTrainResult:
    """The train_spans stage's whole job for one seed between reading and writing."""
    set_seed(seed)
    train_split = make_split(windows, np.flatnonzero(split_of_window == "train"), config)
    val_split = make_split(windows, np.flatnonzero(split_of_window == "validation"), config)
    check_split(train_split, name="train")
    check_split(val_split, name="validation")
    n, length, n_features = train_split.features.shape
    encoder = config.encoder
    model_config = SpanModelConfig(
        n_features=n_features,
        window=length,
        kind=encoder.kind,
        hidden=encoder.hidden,
        n_layers=encoder.n_layers,
        kernel=encoder.kernel,
        dropout=encoder.dropout,
        causal=encoder.causal,
    )
    model = build_model(model_config, seed=seed)
    model.set_standardisation(*feature_standardisation(train_split.features))
    return train(
        model,
        train_split,
        val_split,
        config=config,
        accelerator=accelerator,
        seed=seed,
        iou=iou,
    )
