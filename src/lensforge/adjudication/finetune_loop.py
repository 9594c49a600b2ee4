"""The Accelerate fine-tuning loop of the adjudication classifier (runs under ``accelerate launch``).

N processes compute what one process computes, for any row count. The global batch is a param.
Every process draws the same epoch order (``epoch_order``: a seeded permutation, or weighted draws
with replacement when oversampling), cuts it into the same global batches and takes its share of
each (``runtime.rank_share``: shares differ by at most one row and may be empty; no row is
duplicated to even them out). The masked losses divide by the global batch's counts
(``MultiTaskObjective.distribute``), scaled so that DistributedDataParallel's gradient average
is the gradient of one process on the whole batch. A process with an empty share still runs one
forward and backward (on a row whose labels are masked: zero loss), as DDP needs every process
in every gradient exchange. Gradient accumulation is done here, over whole global batches.

Validation predicts each row exactly once: every process scores its share of the rows and the
logits are gathered, so every process computes the same metrics and takes the same
early-stopping decision. The loop writes nothing: it returns the best epoch's state (on
validation macro-F1, averaged over tasks) and hands each epoch's record to a callback.
``finetune`` is the finetune stage's whole job between reading the table and writing artifacts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from accelerate.utils import gather_object, set_seed
from torch import nn
from tqdm import tqdm

from lensforge.adjudication import encoders
from lensforge.adjudication.tasks import NO_LABEL, TaskClasses, label_ids
from lensforge.core import metrics, multitask, runtime, sequences, splits
from lensforge.core.early_stopping import EarlyStopping
from lensforge.core.errors import DataError
from lensforge.core.params import FinetuneParams

log = logging.getLogger(__name__)

PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # params name -> Accelerate's


@dataclasses.dataclass(frozen=True)
class EncodedSplit:
    """Token ids per row and label ids per task (``NO_LABEL`` where a row has none)."""

    input_ids: list[list[int]]
    labels: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_split(
    texts: Sequence[str],
    labels: Mapping[str, Sequence[object]],
    tokenizer,
    *,
    classes: TaskClasses,
    max_length: int,
) -> EncodedSplit:
    return EncodedSplit(
        input_ids=sequences.tokenize(tokenizer, texts, max_length=max_length).ids,
        labels={t: label_ids(labels[t], names) for t, names in classes.items()},
    )


def encode_table(
    table: pd.DataFrame, tokenizer, *, classes: TaskClasses, split: str, max_length: int
) -> EncodedSplit:
    """The rows of one split of the adjudicated items table (columns: text, split, the tasks)."""
    rows = table[table["split"] == split]
    labels = {task: rows[task].tolist() for task in classes}
    return encode_split(
        rows["text"].tolist(), labels, tokenizer, classes=classes, max_length=max_length
    )


def epoch_order(n_rows: int, *, weights: np.ndarray | None, seed: int, epoch: int) -> np.ndarray:
    """Row order of one epoch (n_rows,), the same on every process: a seeded permutation, or
    weighted draws with replacement (oversampling)."""
    return multitask.draw_order(n_rows, weights=weights, seed=splits.stable_seed(seed, epoch))


def global_batches(order: np.ndarray, *, batch_size: int) -> list[np.ndarray]:
    """Consecutive global batches of ``order``; the last one holds the remainder."""
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def n_optimizer_steps(n_rows: int, *, batch_size: int, grad_accumulation: int) -> int:
    """Optimizer steps per epoch: one per ``grad_accumulation`` global batches (the last group
    may be shorter)."""
    n_batches = -(-n_rows // batch_size)
    return -(-n_batches // grad_accumulation)


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


def build_classifier(
    encoder: nn.Module, config: FinetuneParams, *, classes: TaskClasses, seed: int
) -> encoders.MultiTaskClassifier:
    """The encoder with one freshly initialised head per task (from ``seed``)."""
    torch.manual_seed(seed)
    return encoders.MultiTaskClassifier(
        encoder,
        task_classes=classes,
        pooling=config.encoder.pooling,
        **dataclasses.asdict(config.head),
    )


def build_objective(
    config: FinetuneParams, train_labels: Mapping[str, np.ndarray], *, classes: TaskClasses
):
    """The multi-task objective with class weights from the training rows' counts; a task class
    without training rows under class weighting is a ``DataError`` naming task, split and rule."""
    tasks = {}
    for task, names in classes.items():
        task_config = config.losses[task]
        weights = None
        if task_config.class_weights:
            y = train_labels[task]
            counts = np.bincount(y[y != NO_LABEL], minlength=len(names))
            _require_rows(counts, names, task=task, split="train", why="class weights")
            weights = multitask.class_weights(
                counts.tolist(),
                multipliers=[task_config.class_weight_multipliers[c] for c in names],
                cap=task_config.class_weight_cap,
            )
        tasks[task] = {
            "gamma": task_config.focal_gamma if task_config.loss == "focal" else 0.0,
            "label_smoothing": task_config.label_smoothing,
            "class_weights": weights,
            "task_weight": task_config.task_weight,
        }
    return multitask.from_weighting(tasks, config.task_weighting, rdrop_alpha=config.rdrop_alpha)


def _require_rows(counts: np.ndarray, names: Sequence[str], *, task: str, split: str, why: str):
    empty = [name for name, n in zip(names, counts, strict=True) if n == 0]
    if empty:
        raise DataError(
            f"task {task!r}: class(es) {empty} have no {split} rows ({why} need every class)",
            row=f"{task}/{split}",
            rule=f"rows per class in {split}",
        )


def sample_weights(
    config: FinetuneParams, train_labels: Mapping[str, np.ndarray], *, classes: TaskClasses
):
    """Oversampling draw weights (n,), or None when oversampling is off."""
    over = config.oversample
    if not over.enabled:
        return None
    return multitask.oversample_weights(
        train_labels,
        alpha=over.joint_alpha,
        max_joint_weight=over.max_joint_weight,
        boosts={
            t: [config.losses[t].oversample_boosts[c] for c in names]
            for t, names in classes.items()
        },
    )


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
                "lr": config.task_weighting.log_var_lr,
                "weight_decay": 0.0,
            }
        )
    return torch.optim.AdamW(groups)


def predict(
    classifier: encoders.MultiTaskClassifier,
    split: EncodedSplit,
    *,
    batch_size: int,
    pad_id: int,
    accelerator,
) -> dict[str, np.ndarray]:
    """Logits per task (n, k) float32 in row order, each row predicted exactly once: every
    process scores its share of the rows, and the shares are gathered to every process."""
    mine = runtime.rank_share(
        np.arange(len(split)), rank=accelerator.process_index, world_size=accelerator.num_processes
    )
    logits = {
        t: np.zeros((0, len(h[-1].weight)), dtype=np.float32) for t, h in classifier.heads.items()
    }
    if len(mine):
        predicted = encoders.predict_logits(
            classifier,
            [split.input_ids[i] for i in mine],
            batch_size=batch_size,
            pad_id=pad_id,
        )
        logits = {t: v.cpu().numpy() for t, v in predicted.items()}
    shares = gather_object([(mine, logits)])  # [(rows, logits)] of every process, rank order
    rows = np.concatenate([share_rows for share_rows, _ in shares])
    if sorted(rows.tolist()) != list(range(len(split))):
        raise RuntimeError(f"gathered {len(rows)} predictions for {len(split)} rows")
    back = np.argsort(rows, kind="stable")
    return {t: np.concatenate([part[t] for _, part in shares])[back] for t in classifier.heads}


def validation_record(
    logits: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], *, classes: TaskClasses
) -> dict:
    """Per task: macro-F1, per-class F1 and in-class / out-of-class mean probabilities."""
    record: dict[str, float] = {}
    scores = []
    for task, names in classes.items():
        keep = labels[task] != NO_LABEL
        if not keep.any():
            continue
        z = torch.as_tensor(logits[task][keep])
        probs = torch.softmax(z, dim=1).numpy()  # (n, k)
        y = labels[task][keep]
        f1 = metrics.per_class_scores(y, probs.argmax(axis=1), n_classes=len(names))["f1"]
        record[f"{task}/macro_f1"] = float(np.mean(f1))
        scores.append(record[f"{task}/macro_f1"])
        for c, name in enumerate(names):
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


def _share_batch(split: EncodedSplit, rows: np.ndarray, *, accelerator, pad_id: int) -> dict:
    """This process's share of one global batch as tensors on its device. An empty share becomes
    the batch's first row with every label masked: it adds nothing to the loss or gradient."""
    share = runtime.rank_share(
        rows, rank=accelerator.process_index, world_size=accelerator.num_processes
    )
    masked = len(share) == 0
    share = rows[:1] if masked else share
    batch = sequences.pad_batch([split.input_ids[r] for r in share], pad_id=pad_id)
    batch["labels"] = {
        t: torch.full((len(share),), NO_LABEL)
        if masked
        else torch.as_tensor(split.labels[t][share])
        for t in split.labels
    }
    return {
        "input_ids": batch["input_ids"].to(accelerator.device),
        "attention_mask": batch["attention_mask"].to(accelerator.device),
        "labels": {t: y.to(accelerator.device) for t, y in batch["labels"].items()},
    }


@dataclasses.dataclass
class _Training:
    """What one epoch needs besides the data: the prepared module, optimizer and schedule."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    accelerator: object
    config: FinetuneParams
    pad_id: int
    classes: TaskClasses


def _train_epoch(run: _Training, split: EncodedSplit, order: np.ndarray, *, epoch: int) -> dict:
    """One pass over ``order`` in global batches; returns the epoch's mean loss parts, mean
    gradient norm and last learning rate."""
    accelerator, config, module = run.accelerator, run.config, run.module
    module.train()
    objective = accelerator.unwrap_model(module).objective
    batches = global_batches(order, batch_size=config.batch_size)
    steps = [
        batches[start : start + config.grad_accumulation]
        for start in range(0, len(batches), config.grad_accumulation)
    ]
    sums: dict[str, torch.Tensor] = {}
    grad_norms = []
    bar = tqdm(
        steps, desc=f"finetune epoch {epoch}", disable=not accelerator.is_main_process, leave=False
    )
    for step in bar:
        for i, rows in enumerate(step):
            batch = _share_batch(split, rows, accelerator=accelerator, pad_id=run.pad_id)
            last = i == len(step) - 1  # gradients are exchanged once per optimizer step
            with contextlib.nullcontext() if last else accelerator.no_sync(module):
                total, parts = module(batch["input_ids"], batch["attention_mask"], batch["labels"])
                accelerator.backward(total / len(step))
            for name, value in parts.items():
                sums[name] = sums.get(name, torch.zeros(())) + value.detach().float().cpu()
        grad_norms.append(
            float(accelerator.clip_grad_norm_(module.parameters(), config.max_grad_norm))
        )
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad()
        with torch.no_grad():  # keep the stored log-variances inside their clamp
            objective.log_vars.clamp_(*objective.log_var_range)
        bar.set_postfix(loss=f"{float(total.detach()):.3f}")
    record = {
        f"train/{k}": v
        for k, v in multitask.epoch_part_means(sums, len(batches), accelerator).items()
    }
    record["grad_norm"] = float(np.mean(grad_norms)) if grad_norms else 0.0
    record["lr"] = float(run.scheduler.get_last_lr()[0])
    return record


def _validate(unwrapped: FinetuneModule, split: EncodedSplit, *, run: _Training) -> dict:
    """Validation metrics and loss parts (the same on every process: logits are gathered)."""
    logits = predict(
        unwrapped.classifier,
        split,
        batch_size=run.config.batch_size,
        pad_id=run.pad_id,
        accelerator=run.accelerator,
    )
    record = {
        f"val/{k}": v
        for k, v in validation_record(logits, split.labels, classes=run.classes).items()
    }
    device = unwrapped.objective.loss_scale.device  # where its class weights live
    with torch.no_grad():
        unwrapped.objective.eval()
        _, parts = unwrapped.objective(
            {t: torch.as_tensor(v, device=device) for t, v in logits.items()},
            {t: torch.as_tensor(v, device=device) for t, v in split.labels.items()},
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
    seed: int,
    on_epoch: Callable[[int, dict], None],
) -> TrainResult:
    """Fine-tune with early stopping on validation macro-F1; returns the best epoch's state (CPU)
    and every epoch's record (``epoch`` 1-based, train and validation parts). ``seed`` draws
    the batch order."""
    if accelerator.gradient_accumulation_steps != 1:
        raise ValueError(
            "the loop accumulates gradients itself (finetune.grad_accumulation): make the "
            "Accelerator with gradient_accumulation_steps=1"
        )
    if accelerator.num_processes > 1:
        objective.distribute(
            lambda t: accelerator.reduce(t, reduction="sum"), n_processes=accelerator.num_processes
        )
    module = FinetuneModule(classifier, objective)
    optimizer = _optimizer(module, config)
    module, optimizer = accelerator.prepare(module, optimizer)
    total_steps = config.max_epochs * n_optimizer_steps(
        len(train_split), batch_size=config.batch_size, grad_accumulation=config.grad_accumulation
    )
    warmup = multitask.n_warmup_steps(total_steps, ratio=config.optimizer.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer.optimizer,  # the torch optimizer inside Accelerate's wrapper
        lambda step: multitask.warmup_linear(step, total_steps=total_steps, warmup_steps=warmup),
    )
    run = _Training(
        module, optimizer, scheduler, accelerator, config, pad_id, classifier.task_classes
    )
    unwrapped = accelerator.unwrap_model(module)
    stopper = EarlyStopping(patience=config.patience)
    history, best_state = [], {}
    for epoch in range(1, config.max_epochs + 1):
        order = epoch_order(len(train_split), weights=weights, seed=seed, epoch=epoch - 1)
        record = {"epoch": epoch, **_train_epoch(run, train_split, order, epoch=epoch)}
        record.update(_validate(unwrapped, val_split, run=run))
        history.append(record)
        on_epoch(epoch, record)
        if stopper.update(epoch, record["val/macro_f1"]):
            state = unwrapped.classifier.state_dict()
            best_state = {k: v.detach().cpu().clone() for k, v in state.items()}
        if stopper.should_stop:
            log.info("early stop after epoch %d (best %d)", epoch, stopper.best_epoch)
            break
    return TrainResult(best_state, stopper.best_epoch, stopper.best_score, history)


@dataclasses.dataclass
class Finetuned:
    """A fine-tuned classifier (the best epoch's weights), its tokenizer and what describes it."""

    classifier: encoders.MultiTaskClassifier
    tokenizer: object
    history: list[dict[str, float]]
    summary: dict[str, object]


def summarize(result: TrainResult, objective, *, n_train: int, n_processes: int, seed: int) -> dict:
    """The metrics of one seed's fine-tuning run (``metrics/finetune.json`` and the card)."""
    return {
        "seed": seed,
        "best_epoch": result.best_epoch,
        "n_epochs": len(result.history),
        "n_processes": n_processes,
        "n_train": n_train,
        "class_weights": {t: objective.configs[t]["class_weights"] for t in objective.task_names},
        "best": result.history[result.best_epoch - 1],
        "last": result.history[-1],
    }


def check_labelled_rows(split: EncodedSplit, *, name: str) -> None:
    """A ``DataError`` naming task, split and rule when a task has no labelled row in ``split``
    (it could be neither learnt nor early-stopped on)."""
    for task, labels in split.labels.items():
        if not np.any(labels != NO_LABEL):
            raise DataError(
                f"task {task!r} has no labelled {name} rows (check adjudicate.split and the "
                "task's ratings)",
                row=f"{task}/{name}",
                rule=f"labelled {name} rows",
            )


def finetune(
    table: pd.DataFrame,
    location: str,
    *,
    config: FinetuneParams,
    classes: TaskClasses,
    seed: int,
    accelerator,
) -> Finetuned:
    """Fine-tune the encoder at ``location`` on the train rows of the adjudicated ``table`` with
    one ``seed`` (head init, dropout, batch order), early-stopped on its validation rows; the
    returned classifier holds the best epoch's weights."""
    set_seed(seed)
    encoder, tokenizer = encoders.load_pretrained(location)
    max_length = config.encoder.max_length
    kwargs = {"classes": classes, "max_length": max_length}
    train_split = encode_table(table, tokenizer, split="train", **kwargs)
    val_split = encode_table(table, tokenizer, split="validation", **kwargs)
    check_labelled_rows(train_split, name="train")
    check_labelled_rows(val_split, name="validation")
    classifier = build_classifier(encoder, config, classes=classes, seed=seed)
    objective = build_objective(config, train_split.labels, classes=classes)
    result = train(
        classifier,
        objective,
        train_split,
        val_split,
        config=config,
        accelerator=accelerator,
        pad_id=sequences.pad_id_of(tokenizer),
        weights=sample_weights(config, train_split.labels, classes=classes),
        seed=seed,
        on_epoch=lambda epoch, record: _log_epoch(epoch, record, accelerator=accelerator),
    )
    accelerator.free_memory()  # drop the prepared module and optimizer before the next seed
    classifier.load_state_dict(result.best_state)
    summary = summarize(
        result,
        objective,
        n_train=len(train_split),
        n_processes=accelerator.num_processes,
        seed=seed,
    )
    return Finetuned(classifier, tokenizer, result.history, summary)


def _log_epoch(epoch: int, record: dict, *, accelerator) -> None:
    if accelerator.is_main_process:
        log.info(
            "epoch %d: train loss %.4f, validation macro-F1 %.3f",
            epoch,
            record["train/total"],
            record["val/macro_f1"],
        )
