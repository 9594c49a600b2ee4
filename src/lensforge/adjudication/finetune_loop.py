"""The Accelerate fine-tuning loop of the adjudication classifier (runs under ``accelerate launch``).

The global batch is a param; each of N processes takes ``batch_size / N`` rows per step, so the
optimisation does not depend on the process count. Every process draws the same epoch order
(``EpochSampler``: a seeded permutation, or weighted draws with replacement when oversampling) and
Accelerate shards its batches; the masked losses divide by the global count of labelled rows
(``MultiTaskObjective.distribute``), so N processes optimise the same loss as one. Validation
logits are collected with ``gather_for_metrics`` (which drops the duplicates that pad the last
batch), so every process computes the same metrics and takes the same early-stopping decision.
The loop writes nothing: it returns the best state (on validation macro-F1, averaged over tasks)
and hands each epoch's record to a callback.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from lensforge.adjudication import encoders, multitask
from lensforge.adjudication.tasks import ADJUDICATION_TASKS
from lensforge.core import metrics, splits
from lensforge.core.params import FinetuneParams

log = logging.getLogger(__name__)

TASKS = tuple(ADJUDICATION_TASKS)


@dataclasses.dataclass(frozen=True)
class EncodedSplit:
    """Token ids per row and label ids per task (``multitask.IGNORE`` where a row has none)."""

    input_ids: list[list[int]]
    labels: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.input_ids)


def label_ids(values: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Class names -> ids; the empty string (no label) -> ``IGNORE``."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({v for v in values if v and v not in index})
    if unknown:
        raise ValueError(f"unknown class(es) {unknown}; expected {list(classes)}")
    return np.array([index[v] if v else multitask.IGNORE for v in values], dtype=np.int64)


def encode_split(
    texts: Sequence[str], labels: Mapping[str, Sequence[str]], tokenizer, *, max_length: int
) -> EncodedSplit:
    return EncodedSplit(
        input_ids=encoders.tokenize(tokenizer, texts, max_length=max_length),
        labels={t: label_ids(labels[t], ADJUDICATION_TASKS[t]) for t in TASKS},
    )


class _Rows(Dataset):
    def __init__(self, split: EncodedSplit, order: Sequence[int] | None = None):
        self.split = split
        self.order = list(range(len(split))) if order is None else list(order)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> int:
        return self.order[i]


def _collate(split: EncodedSplit, pad_id: int) -> Callable[[list[int]], dict]:
    def collate(rows: list[int]) -> dict:
        batch = encoders.pad_batch([split.input_ids[r] for r in rows], pad_id=pad_id)
        batch["labels"] = {t: torch.as_tensor(split.labels[t][rows]) for t in TASKS}
        return batch

    return collate


class EpochSampler(Sampler[int]):
    """A new seeded order at each pass: a permutation, or weighted draws with replacement.

    Every process holds its own copy and iterates it once per epoch, so all agree on the order.
    """

    def __init__(self, n_rows: int, *, weights: np.ndarray | None, seed: int):
        self.n_rows, self.weights, self.seed, self.epoch = n_rows, weights, seed, 0

    def __iter__(self):
        order = multitask.draw_order(
            self.n_rows, weights=self.weights, seed=splits.stable_seed(self.seed, self.epoch)
        )
        self.epoch += 1
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.n_rows


class FinetuneModule(nn.Module):
    """Classifier + objective in one module, so DistributedDataParallel sees every trainable
    parameter (the learned log-variances too) inside ``forward``."""

    def __init__(self, classifier: encoders.MultiTaskClassifier, objective: nn.Module):
        super().__init__()
        self.classifier, self.objective = classifier, objective

    def forward(self, input_ids, attention_mask, labels):
        logits = self.classifier(input_ids, attention_mask)
        second = None
        if self.training and self.objective.rdrop_alpha > 0:
            second = self.classifier(input_ids, attention_mask)
        total, parts = self.objective(logits, labels, logits_second=second)
        return total, parts


def build_objective(config: FinetuneParams, train_labels: Mapping[str, np.ndarray]):
    """The multi-task objective with class weights from the training rows' counts."""
    tasks = {}
    for task, classes in ADJUDICATION_TASKS.items():
        cfg = getattr(config, task)
        weights = None
        if cfg.class_weights:
            y = train_labels[task]
            counts = np.bincount(y[y != multitask.IGNORE], minlength=len(classes))
            weights = multitask.class_weights(
                counts.tolist(),
                multipliers=[cfg.class_weight_multipliers[c] for c in classes],
                cap=cfg.class_weight_cap,
            )
        tasks[task] = {
            "gamma": cfg.focal_gamma if cfg.loss == "focal" else 0.0,
            "label_smoothing": cfg.label_smoothing,
            "class_weights": weights,
            "task_weight": cfg.task_weight,
        }
    weighting = config.task_weighting
    return multitask.MultiTaskObjective(
        tasks,
        method=weighting.method,
        normalize=weighting.normalize,
        normalize_momentum=weighting.normalize_momentum,
        log_var_min=weighting.log_var_min,
        log_var_max=weighting.log_var_max,
        rdrop_alpha=config.rdrop_alpha,
    )


def sample_weights(config: FinetuneParams, train_labels: Mapping[str, np.ndarray]):
    """Oversampling draw weights (n,), or None when oversampling is off."""
    over = config.oversample
    if not over.enabled:
        return None
    return multitask.oversample_weights(
        train_labels,
        alpha=over.joint_alpha,
        max_joint_weight=over.max_joint_weight,
        boosts={t: [getattr(over, t)[c] for c in ADJUDICATION_TASKS[t]] for t in TASKS},
    )


def per_process_batch(global_batch: int, n_processes: int) -> int:
    if global_batch % n_processes:
        raise ValueError(f"global batch {global_batch} is not divisible by {n_processes} processes")
    return global_batch // n_processes


def _optimizer(module: FinetuneModule, config: FinetuneParams) -> torch.optim.Optimizer:
    opt = config.optimizer
    classifier = module.classifier
    groups = multitask.llrd_param_groups(
        classifier.encoder,
        list(classifier.heads.values()),
        n_layers=encoders.n_layers(classifier.encoder),
        lr=opt.lr,
        decay=opt.llrd_decay,
        head_lr_multiplier=opt.head_lr_multiplier,
        weight_decay=opt.weight_decay,
    )
    if module.objective.log_vars.requires_grad:
        groups.append(
            {
                "params": [module.objective.log_vars],
                "lr": opt.lr * opt.head_lr_multiplier,
                "weight_decay": 0.0,
            }
        )
    return torch.optim.AdamW(groups)


def predict(model: nn.Module, loader: DataLoader, accelerator) -> tuple[dict, dict]:
    """Gathered logits (task -> (n, k) float32 numpy) and labels (task -> (n,)) over a loader."""
    model.eval()
    logits, labels = {t: [] for t in TASKS}, {t: [] for t in TASKS}
    with torch.no_grad():
        for batch in loader:
            out = model(batch["input_ids"], batch["attention_mask"])
            gathered_out, gathered_y = accelerator.gather_for_metrics((out, batch["labels"]))
            for t in TASKS:
                logits[t].append(gathered_out[t].float().cpu())
                labels[t].append(gathered_y[t].cpu())
    return (
        {t: torch.cat(logits[t]).numpy() for t in TASKS},
        {t: torch.cat(labels[t]).numpy() for t in TASKS},
    )


def validation_record(logits: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> dict:
    """Per task: macro-F1, per-class F1 and in-class / out-of-class mean probabilities."""
    record: dict[str, float] = {}
    scores = []
    for task, classes in ADJUDICATION_TASKS.items():
        keep = labels[task] != multitask.IGNORE
        if not keep.any():
            continue
        z = torch.as_tensor(logits[task][keep])
        probs = torch.softmax(z, dim=1).numpy()  # (n, k)
        y = labels[task][keep]
        f1 = metrics.per_class_scores(y, probs.argmax(axis=1), n_classes=len(classes))["f1"]
        record[f"{task}/macro_f1"] = float(np.mean(f1))
        scores.append(record[f"{task}/macro_f1"])
        for c, name in enumerate(classes):
            record[f"{task}/{name}/f1"] = f1[c]
            inside = y == c
            if inside.any() and (~inside).any():
                record[f"{task}/{name}/p_in"] = float(probs[inside, c].mean())
                record[f"{task}/{name}/p_out"] = float(probs[~inside, c].mean())
    record["macro_f1"] = float(np.mean(scores))
    return record


@dataclasses.dataclass
class TrainResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]


def _epoch_means(sums: dict[str, torch.Tensor], n_batches: int, accelerator) -> dict[str, float]:
    names = sorted(sums)
    stacked = torch.stack([sums[n] for n in names]).float() / max(1, n_batches)  # (n_parts,)
    reduced = accelerator.reduce(stacked.to(accelerator.device), reduction="mean")
    return {name: float(v) for name, v in zip(names, reduced.cpu().tolist(), strict=True)}


def _loaders(train_split, val_split, *, batch: int, pad_id: int, weights, seed: int):
    """Train loader (``EpochSampler``) and a length-sorted validation loader (+ its order)."""
    sampler = EpochSampler(len(train_split), weights=weights, seed=seed)
    train_loader = DataLoader(
        _Rows(train_split),
        batch_size=batch,
        sampler=sampler,
        collate_fn=_collate(train_split, pad_id),
    )
    by_length = np.argsort([len(s) for s in val_split.input_ids], kind="stable")
    val_loader = DataLoader(
        _Rows(val_split, by_length),
        batch_size=batch,
        shuffle=False,
        collate_fn=_collate(val_split, pad_id),
    )
    return train_loader, val_loader, by_length


def _train_epoch(module, loader, optimizer, scheduler, *, accelerator, config, epoch: int) -> dict:
    """One pass over the training loader; returns the epoch's mean loss parts and gradient norm."""
    module.train()
    objective = accelerator.unwrap_model(module).objective
    sums: dict[str, torch.Tensor] = {}
    grad_norms = []
    bar = tqdm(
        loader, desc=f"finetune epoch {epoch}", disable=not accelerator.is_main_process, leave=False
    )
    for batch in bar:
        with accelerator.accumulate(module):
            total, parts = module(batch["input_ids"], batch["attention_mask"], batch["labels"])
            accelerator.backward(total)
            if accelerator.sync_gradients:
                norm = accelerator.clip_grad_norm_(module.parameters(), config.max_grad_norm)
                grad_norms.append(float(norm))
            optimizer.step()
            optimizer.zero_grad()
            if accelerator.sync_gradients:
                scheduler.step()
                with torch.no_grad():  # keep the stored log-variances inside their clamp
                    objective.log_vars.clamp_(*objective.log_var_range)
        for name, value in parts.items():
            sums[name] = sums.get(name, torch.zeros(())) + value.detach().float().cpu()
        bar.set_postfix(loss=f"{float(total.detach()):.3f}")
    record = {f"train/{k}": v for k, v in _epoch_means(sums, len(loader), accelerator).items()}
    record["grad_norm"] = float(np.mean(grad_norms)) if grad_norms else 0.0
    record["lr"] = float(scheduler.get_last_lr()[0])
    return record


def _validate(unwrapped: FinetuneModule, loader, *, accelerator, by_length) -> dict:
    """Validation metrics and loss parts (same on every process: logits are gathered)."""
    order_back = np.argsort(by_length, kind="stable")
    logits, labels = predict(unwrapped.classifier, loader, accelerator)
    logits = {t: v[order_back] for t, v in logits.items()}
    labels = {t: v[order_back] for t, v in labels.items()}
    record = {f"val/{k}": v for k, v in validation_record(logits, labels).items()}
    with torch.no_grad():
        unwrapped.objective.eval()
        _, parts = unwrapped.objective(
            {t: torch.as_tensor(v) for t, v in logits.items()},
            {t: torch.as_tensor(v) for t, v in labels.items()},
        )
    record.update({f"val/{k}": float(v) for k, v in parts.items()})
    return record


def train(
    classifier: encoders.MultiTaskClassifier,
    objective: multitask.MultiTaskObjective,
    train_split: EncodedSplit,
    val_split: EncodedSplit,
    *,
    config: FinetuneParams,
    accelerator,
    pad_id: int,
    weights: np.ndarray | None,
    on_epoch: Callable[[int, dict], None],
) -> TrainResult:
    """Fine-tune with early stopping on validation macro-F1; returns the best state (CPU)."""
    batch = per_process_batch(config.batch_size, accelerator.num_processes)
    train_loader, val_loader, by_length = _loaders(
        train_split, val_split, batch=batch, pad_id=pad_id, weights=weights, seed=config.seed
    )
    if accelerator.num_processes > 1:
        objective.distribute(
            lambda t: accelerator.reduce(t, reduction="sum"), n_processes=accelerator.num_processes
        )
    module = FinetuneModule(classifier, objective)
    optimizer = _optimizer(module, config)
    module, optimizer, train_loader, val_loader = accelerator.prepare(
        module, optimizer, train_loader, val_loader
    )
    total_steps = -(-len(train_loader) // config.grad_accumulation) * config.max_epochs
    warmup = multitask.n_warmup_steps(total_steps, ratio=config.optimizer.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer.optimizer,  # the torch optimizer inside Accelerate's wrapper
        lambda step: multitask.warmup_linear(step, total_steps=total_steps, warmup_steps=warmup),
    )
    unwrapped = accelerator.unwrap_model(module)
    history, best = [], TrainResult({}, 0, -1.0, [])
    for epoch in range(1, config.max_epochs + 1):
        record = _train_epoch(
            module,
            train_loader,
            optimizer,
            scheduler,
            accelerator=accelerator,
            config=config,
            epoch=epoch,
        )
        record.update(
            _validate(unwrapped, val_loader, accelerator=accelerator, by_length=by_length)
        )
        history.append(record)
        on_epoch(epoch, record)
        if record["val/macro_f1"] > best.best_score:
            state = unwrapped.classifier.state_dict()
            best = TrainResult(
                {k: v.detach().cpu().clone() for k, v in state.items()},
                epoch,
                record["val/macro_f1"],
                [],
            )
        elif epoch - best.best_epoch >= config.patience:
            log.info("early stop after epoch %d (best %d)", epoch, best.best_epoch)
            break
    best.history = history
    return best
