"""The one multi-task objective of lensforge, with the imbalance toolkit, pure torch.

The adjudication classifier and the span model both train with ``MultiTaskObjective``. The schemes
come from two earlier experiments (README, Background): the multi-task classifier on imbalanced
adjudicated labels, and the multi-task model that a loss-scale mismatch collapsed.

- ``class_weights``: the imbalanced-labels experiment's scheme: balanced base weight
  n / (k * count_c), times a per-class multiplier, capped (``min(w, cap)``).
- ``oversample_weights``: a row's draw weight = (largest joint-label count / its joint-label
  count) ** alpha, capped at ``max_joint_weight``, times the per-class boost of each task label it
  has; ``draw_order`` draws an epoch with replacement by those weights (the weighted sampler).
- ``task_loss``: cross-entropy or focal loss on label-smoothed targets with class weights,
  per row sum_c q_c w_c (1 - p_c)^gamma (-log p_c), reduced as sum / sum_i w_{y_i}; at gamma 0 this
  is exactly ``F.cross_entropy(weight=w, label_smoothing=eps)``. Rows whose label is
  ``NO_LABEL`` (the task has no label for them) are masked out.
- Dense tasks (one target per element, e.g. per bar of a window): ``bce`` (binary cross-entropy
  with logits against soft targets in [0, 1], optionally smoothed toward 0.5) and ``huber``
  (regression, ``delta``); a NaN target is "no label" and is masked out. Their loss is the sum over
  labelled elements divided by the count of labelled elements.
- ``MultiTaskObjective``: the masked multi-task loss. Task weighting ``fixed`` (a weight per task)
  or ``uncertainty`` (Kendall et al. 2018, classification form: exp(-s_t) L_t + s_t / 2 with a
  learned log-variance s_t (one form for every task kind), clamped to [log_var_min, log_var_max] so no task is weighted away or
  blown up); optional per-task normalisation by a running mean of the task's own loss (the
  loss-scale experiment found that uncertainty weighting cannot undo a 10x scale mismatch); R-Drop's
  symmetric KL between two dropout passes. It returns every component, raw and weighted, for
  logging. Under data parallelism (``distribute``) every per-row sum is divided by the global
  batch's count, so N processes compute one process's loss and gradient for any split of a batch.
- ``llrd_param_groups`` and ``warmup_linear``: layer-wise LR decay and the LR schedule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NO_LABEL = -1  # label id of a row without a label for a (class) task
KINDS = ("ce", "bce", "huber")  # class labels; dense soft-binary targets; dense regression targets


def class_weights(
    counts: Sequence[int], *, multipliers: Sequence[float], cap: float
) -> list[float]:
    """Per-class loss weights: min(n / (k * count_c) * multiplier_c, cap).

    Raises ``ValueError`` for a class without training rows (its weight would be infinite).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) != len(multipliers):
        raise ValueError(f"{len(counts)} class counts but {len(multipliers)} multipliers")
    if np.any(counts <= 0):
        raise ValueError(f"every class needs training rows for class weights, got {counts}")
    base = counts.sum() / (len(counts) * counts)
    return np.minimum(base * np.asarray(multipliers, dtype=np.float64), cap).tolist()


def oversample_weights(
    labels: Mapping[str, np.ndarray],
    *,
    alpha: float,
    max_joint_weight: float,
    boosts: Mapping[str, Sequence[float]],
) -> np.ndarray:
    """Draw weight (n,) of each training row from its joint label and per-class boosts.

    ``labels`` maps task -> label ids (n,) with ``NO_LABEL`` for a missing label (a missing label is
    its own joint-label value and gets no boost).
    """
    tasks = list(labels)
    stacked = np.stack([np.asarray(labels[t]) for t in tasks], axis=1)  # (n, n_tasks)
    _, joint, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    joint_weight = np.minimum((counts.max() / counts[joint.ravel()]) ** alpha, max_joint_weight)
    weights = joint_weight.astype(np.float64)
    for i, task in enumerate(tasks):
        task_boosts = np.asarray(boosts[task], dtype=np.float64)
        has = stacked[:, i] != NO_LABEL
        weights[has] *= task_boosts[stacked[has, i]]
    return weights


def draw_order(n_rows: int, *, weights: np.ndarray | None, seed: int) -> np.ndarray:
    """Row order of one epoch: a permutation, or ``n_rows`` draws with replacement by weight."""
    rng = np.random.default_rng(seed)
    if weights is None:
        return rng.permutation(n_rows)
    return rng.choice(n_rows, size=n_rows, replace=True, p=weights / weights.sum())


def task_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    gamma: float,
    label_smoothing: float,
    weight: torch.Tensor | None,
    denominator: torch.Tensor | None = None,
) -> torch.Tensor:
    """Focal (gamma > 0) or cross-entropy (gamma 0) loss over the labelled rows (module doc).

    ``logits`` (n, k), ``labels`` (n,) with ``NO_LABEL`` for unlabelled rows. Returns a scalar; 0
    (still attached to the graph) when no row is labelled. ``denominator`` replaces the local
    sum of the rows' class weights (data parallelism: the global sum over processes).
    """
    keep = labels != NO_LABEL
    if not bool(keep.any()):
        return logits.sum() * 0.0
    logits, labels = logits[keep], labels[keep]  # (m, k), (m,)
    n_classes = logits.shape[1]
    log_p = F.log_softmax(logits.float(), dim=1)  # (m, k)
    target = F.one_hot(labels, n_classes).float() * (1 - label_smoothing) + (
        label_smoothing / n_classes
    )  # (m, k)
    w = torch.ones(n_classes, device=logits.device) if weight is None else weight.float()
    modulation = (1 - log_p.exp()).clamp(min=0) ** gamma if gamma > 0 else 1.0
    per_row = -(target * w * modulation * log_p).sum(dim=1)  # (m,)
    return per_row.sum() / (w[labels].sum() if denominator is None else denominator)


def label_weight_sum(labels: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Sum of the class weights of the labelled rows (the loss's local denominator)."""
    keep = labels != NO_LABEL
    if weight is None:
        return keep.sum().float()
    return weight.float()[labels[keep]].sum()


def dense_loss(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    kind: str,
    label_smoothing: float = 0.0,
    delta: float = 1.0,
    denominator: torch.Tensor | None = None,
) -> torch.Tensor:
    """``bce`` or ``huber`` loss over the labelled elements (NaN target = no label), summed and
    divided by their count (or ``denominator``: the global count under data parallelism).
    Returns 0 (still attached to the graph) when nothing is labelled."""
    keep = ~torch.isnan(targets)
    if not bool(keep.any()):
        return outputs.sum() * 0.0
    z, y = outputs[keep].float(), targets[keep].float()  # (m,), (m,)
    if kind == "bce":
        y = y * (1 - label_smoothing) + label_smoothing / 2
        per_element = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    elif kind == "huber":
        per_element = F.huber_loss(z, y, reduction="none", delta=delta)
    else:
        raise ValueError(f"unknown dense loss kind {kind!r}")
    count = keep.sum().float() if denominator is None else denominator
    return per_element.sum() / count


def labelled_count(labels: torch.Tensor, *, kind: str) -> torch.Tensor:
    """Labelled rows (``ce``: label != NO_LABEL) or elements (dense kinds: target not NaN)."""
    if kind == "ce":
        return (labels != NO_LABEL).sum().float()
    return (~torch.isnan(labels)).sum().float()


def rdrop_kl(
    logits_a: torch.Tensor,
    logits_b: torch.Tensor,
    labels: torch.Tensor,
    *,
    denominator: torch.Tensor | None = None,
) -> torch.Tensor:
    """R-Drop term: mean over labelled rows of (KL(p_a || p_b) + KL(p_b || p_a)) / 2.

    ``denominator`` replaces the local count of labelled rows (data parallelism, as in
    ``task_loss``).
    """
    keep = labels != NO_LABEL
    if not bool(keep.any()):
        return logits_a.sum() * 0.0
    log_a = F.log_softmax(logits_a[keep].float(), dim=1)  # (m, k)
    log_b = F.log_softmax(logits_b[keep].float(), dim=1)  # (m, k)
    kl_ab = F.kl_div(log_b, log_a, log_target=True, reduction="sum")
    kl_ba = F.kl_div(log_a, log_b, log_target=True, reduction="sum")
    count = keep.sum().float() if denominator is None else denominator
    return (kl_ab + kl_ba) / 2 / count


class MultiTaskObjective(nn.Module):
    """Masked multi-task loss with fixed or clamped-uncertainty task weights (module doc).

    ``tasks`` maps task name -> dict with ``gamma``, ``label_smoothing``, ``class_weights``
    (list or None) and ``task_weight``, and optionally ``kind`` (``ce`` when absent; ``bce`` and
    ``huber`` read ``label_smoothing`` and ``delta``; class weights, gamma and R-Drop are ``ce``
    only). ``forward`` returns the total and a dict of detached
    components: ``<task>/loss`` (raw), ``<task>/weighted`` (effective weight x normalised loss),
    ``<task>/weight`` (effective weight), ``<task>/log_var``, ``uncertainty_reg``, ``rdrop``.
    """

    def __init__(
        self,
        tasks: Mapping[str, Mapping[str, object]],
        *,
        method: str,
        normalize: bool,
        normalize_momentum: float,
        log_var_min: float,
        log_var_max: float,
        rdrop_alpha: float,
    ):
        super().__init__()
        if method not in ("fixed", "uncertainty"):
            raise ValueError(f"unknown task weighting {method!r}")
        self.task_names = list(tasks)
        self.configs = {name: {"kind": "ce", **cfg} for name, cfg in tasks.items()}
        for name, cfg in self.configs.items():
            if cfg["kind"] not in KINDS:
                raise ValueError(f"task {name!r}: unknown loss kind {cfg['kind']!r}")
        self.method = method
        self.normalize = normalize
        self.momentum = normalize_momentum
        self.log_var_range = (log_var_min, log_var_max)
        self.rdrop_alpha = rdrop_alpha
        for name, cfg in self.configs.items():
            weights = cfg.get("class_weights")
            self.register_buffer(
                f"class_weight_{name}",
                None if weights is None else torch.tensor(weights, dtype=torch.float32),
            )
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)), requires_grad=method == "uncertainty")
        # Running mean of each task's raw loss (0 = not seen yet); a buffer, so DDP broadcasts it.
        self.register_buffer("loss_scale", torch.zeros(len(tasks)))
        self.sum_over_processes: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.n_processes = 1

    def distribute(
        self, sum_over_processes: Callable[[torch.Tensor], torch.Tensor], *, n_processes: int
    ) -> None:
        """Train on a share of each global batch per process (see ``_per_process``)."""
        self.sum_over_processes, self.n_processes = sum_over_processes, n_processes

    def _per_process(self, local: torch.Tensor) -> torch.Tensor:
        """In distributed training, the sum of ``local`` over processes / ``n_processes``.

        Dividing a process's per-row sum by this share of the global count gives N x its part of
        the global loss; DistributedDataParallel averages gradients over the N processes, so the
        result is the gradient of one process on the whole batch, however the rows were shared
        (a process may even hold none). Applied to the raw losses, it gives the global loss.
        """
        if self.training and self.sum_over_processes is not None:
            return self.sum_over_processes(local.detach()) / self.n_processes
        return local

    def clamped_log_vars(self) -> torch.Tensor:
        return self.log_vars.clamp(*self.log_var_range)  # (n_tasks,)

    def effective_weights(self) -> torch.Tensor:
        """Weight of each task's (normalised) loss: task_weight or exp(-clamped s_t)."""
        if self.method == "uncertainty":
            return torch.exp(-self.clamped_log_vars()).detach()
        fixed = [float(self.configs[name]["task_weight"]) for name in self.task_names]
        return torch.tensor(fixed, device=self.log_vars.device)

    def _scale(self, i: int, raw: torch.Tensor, *, seen: bool) -> torch.Tensor:
        """Running mean of task ``i``'s loss (``raw``: this batch's, over every process), updated
        in training from batches where the task has labels (a batch without them says nothing
        about the task's scale)."""
        if not self.normalize:
            return torch.ones((), device=raw.device)
        if self.training and seen:
            old = self.loss_scale[i]
            new = raw if old == 0 else self.momentum * old + (1 - self.momentum) * raw
            self.loss_scale[i] = new
        scale = self.loss_scale[i]
        return scale.clamp(min=1e-8) if scale > 0 else raw.clamp(min=1e-8)

    def forward(
        self,
        logits: Mapping[str, torch.Tensor],
        labels: Mapping[str, torch.Tensor],
        *,
        logits_second: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        log_vars = self.clamped_log_vars()
        weights = self.effective_weights()
        class_weights = [getattr(self, f"class_weight_{name}") for name in self.task_names]
        local = torch.stack(
            [
                torch.stack([self._weight_sum(n, labels[n], w), self._count(n, labels[n])])
                for n, w in zip(self.task_names, class_weights, strict=True)
            ]
        )  # (n_tasks, 2): sum of class weights (dense: count) and count of the labelled rows
        shared = self._per_process(local)  # (n_tasks, 2)
        denominators, counts = shared.clamp(min=1e-12).unbind(dim=1)
        raws, rdrop = [], log_vars.sum() * 0.0
        for i, name in enumerate(self.task_names):
            cfg, y = self.configs[name], labels[name]
            if cfg["kind"] != "ce":
                raws.append(
                    dense_loss(
                        logits[name],
                        y,
                        kind=cfg["kind"],
                        label_smoothing=float(cfg.get("label_smoothing", 0.0)),
                        delta=float(cfg.get("delta", 1.0)),
                        denominator=denominators[i],
                    )
                )
                continue
            kwargs = {
                "gamma": float(cfg["gamma"]),
                "label_smoothing": float(cfg["label_smoothing"]),
                "weight": class_weights[i],
                "denominator": denominators[i],
            }
            raw = task_loss(logits[name], y, **kwargs)
            if logits_second is not None:
                raw = (raw + task_loss(logits_second[name], y, **kwargs)) / 2
                rdrop = rdrop + rdrop_kl(
                    logits[name], logits_second[name], y, denominator=counts[i]
                )
            raws.append(raw)
        # Loss scales and logged losses are the whole batch's, the same on every process.
        batch_raws = self._per_process(torch.stack(raws).detach())  # (n_tasks,)
        seen = shared[:, 1] > 0  # (n_tasks,): the task has labelled rows in the batch
        total = log_vars.sum() * 0.0
        regulariser = total
        parts: dict[str, torch.Tensor] = {}
        for i, name in enumerate(self.task_names):
            normalised = raws[i] / self._scale(i, batch_raws[i], seen=bool(seen[i]))
            if self.method == "uncertainty":
                weighted = torch.exp(-log_vars[i]) * normalised
                if bool(seen[i]):  # no labels in the batch: no evidence about this task's noise
                    regulariser = regulariser + log_vars[i] / 2
            else:
                weighted = weights[i] * normalised
            total = total + weighted
            parts[f"{name}/loss"] = raws[i].detach()
            parts[f"{name}/weighted"] = weighted.detach()
            parts[f"{name}/weight"] = weights[i] / self._scale_value(i)
            parts[f"{name}/log_var"] = log_vars[i].detach()
        total = total + regulariser + self.rdrop_alpha * rdrop
        parts["uncertainty_reg"] = regulariser.detach()
        parts["rdrop"] = (self.rdrop_alpha * rdrop).detach()
        parts["total"] = total.detach()
        return total, parts

    def _weight_sum(self, name: str, labels: torch.Tensor, weight: torch.Tensor | None):
        if self.configs[name]["kind"] == "ce":
            return label_weight_sum(labels, weight)
        return labelled_count(labels, kind=self.configs[name]["kind"])

    def _count(self, name: str, labels: torch.Tensor) -> torch.Tensor:
        return labelled_count(labels, kind=self.configs[name]["kind"])

    def _scale_value(self, i: int) -> torch.Tensor:
        if not self.normalize or self.loss_scale[i] <= 0:
            return torch.ones((), device=self.loss_scale.device)
        return self.loss_scale[i].clamp(min=1e-8)


def from_weighting(
    tasks: Mapping[str, Mapping[str, object]], weighting, *, rdrop_alpha: float
) -> MultiTaskObjective:
    """The objective over ``tasks`` with the task weighting of a ``TaskWeightingParams``."""
    return MultiTaskObjective(
        tasks,
        method=weighting.method,
        normalize=weighting.normalize,
        normalize_momentum=weighting.normalize_momentum,
        log_var_min=weighting.log_var_min,
        log_var_max=weighting.log_var_max,
        rdrop_alpha=rdrop_alpha,
    )


def epoch_part_means(sums: Mapping[str, torch.Tensor], n_batches: int, accelerator) -> dict:
    """Per loss part: mean over an epoch's global batches of its mean over processes (each
    process's part is N x its share of the batch's value, see ``MultiTaskObjective``)."""
    names = sorted(sums)
    stacked = torch.stack([sums[n] for n in names]).float() / max(1, n_batches)  # (n_parts,)
    reduced = accelerator.reduce(stacked.to(accelerator.device), reduction="mean")
    return {name: float(v) for name, v in zip(names, reduced.cpu().tolist(), strict=True)}


_LAYER_INDEX = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


def layer_depth(name: str, *, n_layers: int) -> int:
    """Depth of an encoder parameter: 0 for embeddings, i + 1 for layer i, n_layers + 1 for
    what sits above the layers (final norm, pooler)."""
    match = _LAYER_INDEX.search(f".{name}")
    if match:
        return int(match.group(1)) + 1
    if "embed" in name:
        return 0
    return n_layers + 1


def _no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")


def llrd_param_groups(
    encoder: nn.Module,
    heads: Sequence[nn.Module],
    *,
    n_layers: int,
    lr: float,
    decay: float,
    head_lr_multiplier: float,
    weight_decay: float,
) -> list[dict]:
    """AdamW groups: encoder depth d gets lr * decay ** max(0, n_layers - d) (the top layer and
    what sits above it keep lr, the embeddings get lr * decay ** n_layers),
    heads get lr * head_lr_multiplier; biases, norms and 1-D parameters get no weight decay."""
    groups: dict[tuple[float, float], list[torch.Tensor]] = {}
    for name, param in encoder.named_parameters():
        if not param.requires_grad:
            continue
        depth = layer_depth(name, n_layers=n_layers)
        group_lr = lr * decay ** max(0, n_layers - depth)
        wd = 0.0 if _no_decay(name, param) else weight_decay
        groups.setdefault((group_lr, wd), []).append(param)
    for head in heads:
        for name, param in head.named_parameters():
            if not param.requires_grad:
                continue
            wd = 0.0 if _no_decay(name, param) else weight_decay
            groups.setdefault((lr * head_lr_multiplier, wd), []).append(param)
    return [{"params": ps, "lr": glr, "weight_decay": wd} for (glr, wd), ps in groups.items()]


def warmup_linear(step: int, *, total_steps: int, warmup_steps: int) -> float:
    """LR factor: linear 0 -> 1 over ``warmup_steps``, then linear 1 -> 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = total_steps - step
    return max(0.0, remaining / max(1, total_steps - warmup_steps))


def n_warmup_steps(total_steps: int, *, ratio: float) -> int:
    return int(math.ceil(total_steps * ratio))
