"""Losses, class weights, oversampling, task weighting, LLRD and warmup of the fine-tuning toolkit."""

from __future__ import annotations

import copy
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lensforge.core import multitask, runtime
from lensforge.core.multitask import NO_LABEL
from tests.helpers import tiny_encoder

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir


def _objective(method: str, **overrides) -> multitask.MultiTaskObjective:
    tasks = {
        "a": {"gamma": 0.0, "label_smoothing": 0.0, "class_weights": None, "task_weight": 1.0},
        "b": {"gamma": 0.0, "label_smoothing": 0.0, "class_weights": None, "task_weight": 0.5},
    }
    settings = dict(
        method=method,
        normalize=False,
        normalize_momentum=0.9,
        log_var_min=-2.0,
        log_var_max=2.0,
        rdrop_alpha=0.0,
    )
    settings.update(overrides)
    return multitask.MultiTaskObjective(tasks, **settings)


def test_class_weights_are_balanced_base_times_multiplier_capped():
    weights = multitask.class_weights([60, 30, 10], multipliers=[1.0, 2.0, 1.0], cap=2.5)
    # base 100 / (3 * count) = 0.556, 1.111, 3.333; x multipliers; the third capped at 2.5
    assert weights == pytest.approx([100 / 180, 2 * 100 / 90, 2.5])
    with pytest.raises(ValueError, match="every class needs training rows"):
        multitask.class_weights([5, 0, 5], multipliers=[1, 1, 1], cap=10)


def test_focal_loss_equals_cross_entropy_at_gamma_zero_with_weights_and_smoothing():
    logits = torch.randn(16, 3)
    labels = torch.randint(0, 3, (16,))
    weight = torch.tensor([0.5, 2.0, 1.5])
    focal = multitask.task_loss(logits, labels, gamma=0.0, label_smoothing=0.1, weight=weight)
    expected = F.cross_entropy(logits, labels, weight=weight, label_smoothing=0.1)
    assert focal.item() == pytest.approx(expected.item(), rel=1e-6)


def test_focal_loss_shrinks_the_loss_of_confident_correct_rows_most():
    easy = torch.tensor([[5.0, 0.0, 0.0]])
    hard = torch.tensor([[0.5, 0.4, 0.0]])
    label = torch.tensor([0])
    kwargs = {"label_smoothing": 0.0, "weight": None}
    ratio_easy = multitask.task_loss(easy, label, gamma=2.0, **kwargs) / multitask.task_loss(
        easy, label, gamma=0.0, **kwargs
    )
    ratio_hard = multitask.task_loss(hard, label, gamma=2.0, **kwargs) / multitask.task_loss(
        hard, label, gamma=0.0, **kwargs
    )
    assert ratio_easy < 0.001 < ratio_hard


def test_masked_rows_do_not_count_and_an_all_masked_task_gives_zero_with_a_graph():
    logits = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, NO_LABEL, 2, NO_LABEL, 1, 1])
    keep = labels != NO_LABEL
    masked = multitask.task_loss(logits, labels, gamma=0.0, label_smoothing=0.0, weight=None)
    subset = F.cross_entropy(logits[keep], labels[keep])
    assert masked.item() == pytest.approx(subset.item())
    none = multitask.task_loss(
        logits, torch.full((6,), NO_LABEL), gamma=2.0, label_smoothing=0.1, weight=None
    )
    assert none.item() == 0.0
    none.backward()  # still attached: a batch without a task's labels must not break backward
    assert torch.all(logits.grad == 0)


def test_multi_task_loss_masks_each_task_separately_and_applies_fixed_weights():
    objective = _objective("fixed")
    logits = {"a": torch.randn(4, 3), "b": torch.randn(4, 3)}
    labels = {
        "a": torch.tensor([0, 1, NO_LABEL, NO_LABEL]),
        "b": torch.tensor([NO_LABEL, NO_LABEL, 2, 0]),
    }
    total, parts = objective(logits, labels)
    loss_a = F.cross_entropy(logits["a"][:2], labels["a"][:2])
    loss_b = F.cross_entropy(logits["b"][2:], labels["b"][2:])
    assert total.item() == pytest.approx(loss_a.item() + 0.5 * loss_b.item(), rel=1e-6)
    assert parts["b/weighted"].item() == pytest.approx(0.5 * loss_b.item(), rel=1e-6)
    assert parts["b/weight"].item() == 0.5


def test_uncertainty_weighting_is_exp_minus_s_times_loss_plus_half_s():
    objective = _objective("uncertainty")
    with torch.no_grad():
        objective.log_vars.copy_(torch.tensor([0.5, -1.0]))
    logits = {"a": torch.randn(4, 3), "b": torch.randn(4, 3)}
    labels = {"a": torch.tensor([0, 1, 2, 0]), "b": torch.tensor([1, 1, 2, 0])}
    total, parts = objective(logits, labels)
    la = F.cross_entropy(logits["a"], labels["a"]).item()
    lb = F.cross_entropy(logits["b"], labels["b"]).item()
    expected = math.exp(-0.5) * la + 0.25 + math.exp(1.0) * lb - 0.5
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert parts["a/weight"].item() == pytest.approx(math.exp(-0.5))


def test_uncertainty_log_variances_are_clamped_so_no_task_is_weighted_away():
    objective = _objective("uncertainty")
    with torch.no_grad():
        objective.log_vars.copy_(torch.tensor([10.0, -10.0]))
    weights = objective.effective_weights()
    assert weights.tolist() == pytest.approx([math.exp(-2.0), math.exp(2.0)])
    logits = {"a": torch.randn(4, 3), "b": torch.randn(4, 3)}
    labels = {"a": torch.tensor([0, 1, 2, 0]), "b": torch.tensor([1, 1, 2, 0])}
    total, _ = objective(logits, labels)
    total.backward()
    # beyond the clamp the log-variances get no gradient: they cannot run further away
    assert objective.log_vars.grad.tolist() == [0.0, 0.0]


def test_fixed_weighting_has_no_trainable_log_variances():
    assert not _objective("fixed").log_vars.requires_grad


def test_normalisation_divides_each_task_by_its_running_loss():
    objective = _objective("fixed", normalize=True)
    objective.train()
    logits = {"a": torch.randn(8, 3) * 5, "b": torch.randn(8, 3)}
    labels = {"a": torch.randint(0, 3, (8,)), "b": torch.randint(0, 3, (8,))}
    _, parts = objective(logits, labels)
    # first batch: the running mean is the loss itself, so each normalised loss is 1
    assert parts["a/weighted"].item() == pytest.approx(1.0)
    assert parts["b/weighted"].item() == pytest.approx(0.5)
    assert objective.loss_scale[0].item() == pytest.approx(parts["a/loss"].item())


def test_rdrop_term_is_zero_for_identical_passes_and_positive_otherwise():
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 1, 2, NO_LABEL, 1])
    assert multitask.rdrop_kl(logits, logits, labels).item() == pytest.approx(0.0, abs=1e-7)
    assert multitask.rdrop_kl(logits, logits.flip(0), labels).item() > 0


def test_oversample_weights_from_joint_rarity_capped_then_boosted():
    labels = {
        "s": np.array([0, 0, 0, 0, 1, NO_LABEL]),
        "p": np.array([NO_LABEL, NO_LABEL, NO_LABEL, NO_LABEL, NO_LABEL, 2]),
    }
    weights = multitask.oversample_weights(
        labels, alpha=1.0, max_joint_weight=3.0, boosts={"s": [1.0, 2.0, 1.0], "p": [1, 1, 5.0]}
    )
    # joint counts: (0,-) 4, (1,-) 1, (-,2) 1 -> 4/4, min(4/1, 3), min(4/1, 3); then boosts
    assert weights.tolist() == pytest.approx([1, 1, 1, 1, 3 * 2.0, 3 * 5.0])


def test_weighted_draws_follow_the_weights_and_are_seeded():
    weights = np.array([1.0, 1.0, 8.0])
    order = multitask.draw_order(3000, weights=np.tile(weights, 1000), seed=1)
    share = np.isin(order % 3, [2]).mean()
    assert share == pytest.approx(0.8, abs=0.03)
    assert np.array_equal(order, multitask.draw_order(3000, weights=np.tile(weights, 1000), seed=1))
    assert sorted(multitask.draw_order(10, weights=None, seed=0)) == list(range(10))


def test_llrd_gives_the_top_layer_lr_and_each_layer_below_one_decay_more(tiny_encoder_dir):
    from lensforge.adjudication import encoders

    encoder, _ = encoders.load_pretrained(str(tiny_encoder_dir))
    head = torch.nn.Linear(4, 3)
    groups = multitask.llrd_param_groups(
        encoder, [head], n_layers=2, lr=1.0, decay=0.5, head_lr_multiplier=3.0, weight_decay=0.1
    )
    lr_of = {}
    for group in groups:
        for p in group["params"]:
            lr_of[id(p)] = (group["lr"], group["weight_decay"])
    named = dict(encoder.named_parameters())
    assert lr_of[id(named["embeddings.word_embeddings.weight"])] == (0.25, 0.1)
    assert lr_of[id(named["encoder.layer.0.attention.self.query.weight"])] == (0.5, 0.1)
    assert lr_of[id(named["encoder.layer.1.output.dense.weight"])] == (1.0, 0.1)
    assert lr_of[id(named["encoder.layer.1.output.dense.bias"])] == (1.0, 0.0)
    assert lr_of[id(head.weight)] == (3.0, 0.1)


def test_warmup_rises_linearly_then_decays_to_zero():
    factors = [multitask.warmup_linear(s, total_steps=10, warmup_steps=2) for s in range(11)]
    assert factors[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert factors[6] == pytest.approx(0.5)
    assert factors[10] == 0.0
    assert multitask.n_warmup_steps(95, ratio=0.1) == 10


def test_a_batch_without_a_tasks_labels_leaves_its_running_scale_alone():
    objective = _objective("fixed", normalize=True)
    objective.train()
    logits = {"a": torch.randn(4, 3), "b": torch.randn(4, 3)}
    objective(logits, {"a": torch.tensor([0, 1, 2, 0]), "b": torch.tensor([1, 1, 2, 0])})
    before = objective.loss_scale.clone()
    objective(logits, {"a": torch.tensor([0, 1, 2, 0]), "b": torch.full((4,), NO_LABEL)})
    assert objective.loss_scale[1] == before[1]
    assert objective.loss_scale[0] == pytest.approx(before[0].item())


class _ThreadSum:
    """Threads standing in for processes: each call sums one tensor over all of them."""

    def __init__(self, n_processes: int):
        self.barrier = threading.Barrier(n_processes, timeout=30)
        self.slots: list[torch.Tensor | None] = [None] * n_processes

    def for_rank(self, rank: int):
        def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
            self.slots[rank] = tensor.clone()
            self.barrier.wait()
            total = torch.stack(self.slots).sum(dim=0)
            self.barrier.wait()  # nobody overwrites a slot before every rank has read them all
            return total

        return sum_over_processes


def _step(objective, weight: torch.Tensor, x: torch.Tensor, labels: dict) -> dict:
    """One forward and backward of a linear stand-in model; gradients, logged parts, scales."""
    w = weight.clone().requires_grad_(True)
    logits = {"a": x @ w, "b": x @ w.flip(1)}  # (n, 3) each
    second = {task: 0.8 * value + 0.1 for task, value in logits.items()}  # a "dropout" pass
    total, parts = objective(logits, labels, logits_second=second)
    total.backward()
    return {
        "grad": w.grad,
        "log_var_grad": objective.log_vars.grad.clone(),
        "parts": parts,
        "scale": objective.loss_scale.clone(),
    }


SHARES = {7: [3, 2, 2], 2: [1, 1, 0]}  # rows per process of 3: uneven, and one share empty


@pytest.mark.parametrize("n_rows", sorted(SHARES))
def test_shares_of_a_batch_over_processes_give_one_process_gradient_and_losses(n_rows):
    """Every loss term (class-weighted, uncertainty, running scale, R-Drop) with ``distribute``:
    the DDP average of the processes' gradients, the mean of their logged parts and their scales
    equal one process on the whole batch, for shares of any size (an empty one included)."""
    n_processes = 3
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n_rows, 4, generator=generator)  # (n, 4)
    weight = torch.randn(4, 3, generator=generator)  # (4, 3)
    labels = {
        "a": torch.tensor([0, 2, NO_LABEL, 1, 2, NO_LABEL, 0])[:n_rows],
        "b": torch.tensor([NO_LABEL, 1, 0, NO_LABEL, 2, 2, 1])[:n_rows],
    }
    base = _objective("uncertainty", normalize=True, rdrop_alpha=0.5)
    base.configs["a"]["class_weights"] = [0.5, 2.0, 1.0]
    base.register_buffer("class_weight_a", torch.tensor([0.5, 2.0, 1.0]))
    with torch.no_grad():
        base.log_vars.copy_(torch.tensor([0.3, -0.2]))
        base.loss_scale.copy_(torch.tensor([0.7, 1.3]))  # a running mean from earlier batches
    base.train()
    one = _step(copy.deepcopy(base), weight, x, labels)

    collective = _ThreadSum(n_processes)

    def process(rank: int) -> dict:
        objective = copy.deepcopy(base)
        objective.distribute(collective.for_rank(rank), n_processes=n_processes)
        rows = runtime.rank_share(torch.arange(n_rows), rank=rank, world_size=n_processes)
        return _step(objective, weight, x[rows], {t: y[rows] for t, y in labels.items()})

    with ThreadPoolExecutor(n_processes) as pool:
        ranks = [
            future.result() for future in [pool.submit(process, r) for r in range(n_processes)]
        ]
    assert [len(range(r, n_rows, n_processes)) for r in range(3)] == SHARES[n_rows]

    def mean(key):
        return torch.stack([r[key] for r in ranks]).mean(dim=0)  # DDP's average

    torch.testing.assert_close(mean("grad"), one["grad"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(mean("log_var_grad"), one["log_var_grad"], atol=1e-6, rtol=1e-5)
    for rank in ranks:  # the running scales stay equal on every process, and to one process's
        torch.testing.assert_close(rank["scale"], one["scale"], atol=1e-6, rtol=1e-5)
    for name, value in one["parts"].items():
        merged = torch.stack([r["parts"][name] for r in ranks]).mean()
        assert merged.item() == pytest.approx(value.item(), rel=1e-5, abs=1e-6), name


def _dense_objective(method: str, **overrides) -> multitask.MultiTaskObjective:
    tasks = {
        "cls": {"gamma": 0.0, "label_smoothing": 0.0, "class_weights": None, "task_weight": 1.0},
        "span": {"kind": "bce", "label_smoothing": 0.1, "task_weight": 2.0},
        "countdown": {"kind": "huber", "delta": 1.0, "task_weight": 0.5},
    }
    options = {
        "method": method,
        "normalize": False,
        "normalize_momentum": 0.9,
        "log_var_min": -2.0,
        "log_var_max": 2.0,
        "rdrop_alpha": 0.0,
    }
    return multitask.MultiTaskObjective(tasks, **{**options, **overrides})


def test_dense_kinds_equal_torch_losses_over_the_labelled_elements_only():
    z = torch.tensor([[0.5, -1.0, 2.0], [0.0, 3.0, -0.5]])
    y = torch.tensor([[1.0, 0.0, float("nan")], [0.0, 1.0, 1.0]])
    keep = ~torch.isnan(y)
    smoothed = y[keep] * 0.9 + 0.05
    expected = F.binary_cross_entropy_with_logits(z[keep], smoothed)
    got = multitask.dense_loss(z, y, kind="bce", label_smoothing=0.1)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    targets = torch.tensor([[3.0, float("nan"), -4.0], [0.2, 0.0, float("nan")]])
    keep = ~torch.isnan(targets)
    expected = F.huber_loss(z[keep], targets[keep], delta=1.0)
    assert multitask.dense_loss(z, targets, kind="huber").item() == pytest.approx(expected.item())
    nothing = torch.full_like(z, float("nan"))
    zero = multitask.dense_loss(z.requires_grad_(True), nothing, kind="huber")
    assert zero.item() == 0.0 and zero.requires_grad


def test_fixed_weights_apply_to_dense_and_class_tasks_and_every_part_is_logged():
    objective = _dense_objective("fixed")
    logits = {"cls": torch.randn(2, 3), "span": torch.randn(2, 4), "countdown": torch.randn(2, 4)}
    labels = {
        "cls": torch.tensor([0, 2]),
        "span": torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0] * 4]),
        "countdown": torch.tensor([[2.0, 1.0, 0.0, -1.0], [float("nan")] * 4]),
    }
    total, parts = objective(logits, labels)
    span = multitask.dense_loss(logits["span"], labels["span"], kind="bce", label_smoothing=0.1)
    countdown = multitask.dense_loss(logits["countdown"], labels["countdown"], kind="huber")
    assert parts["span/loss"].item() == pytest.approx(span.item())
    assert parts["countdown/weighted"].item() == pytest.approx(0.5 * countdown.item())
    expected = F.cross_entropy(logits["cls"], labels["cls"]) + 2.0 * span + 0.5 * countdown
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_an_unknown_loss_kind_is_refused():
    with pytest.raises(ValueError, match="unknown loss kind"):
        multitask.MultiTaskObjective(
            {"x": {"kind": "mse", "task_weight": 1.0}},
            method="fixed",
            normalize=False,
            normalize_momentum=0.9,
            log_var_min=-1.0,
            log_var_max=1.0,
            rdrop_alpha=0.0,
        )


@pytest.mark.parametrize("n_rows", [5, 2])
def test_dense_tasks_over_processes_give_one_process_gradient(n_rows):
    """Per-element denominators are global too: 3 thread 'processes' (one share may be empty)
    average to one process's gradient and logged parts, with NaN targets masked."""
    n_processes, length = 3, 4
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n_rows, length, 2, generator=generator)  # (n, L, 2)
    weight = torch.randn(2, 3, generator=generator)
    span = (torch.rand(n_rows, length, generator=generator) > 0.5).float()
    countdown = torch.randn(n_rows, length, generator=generator) * 5
    countdown[0] = float("nan")
    labels = {"cls": torch.tensor([0, 2, NO_LABEL, 1, 1])[:n_rows], "span": span}
    labels["countdown"] = countdown
    base = _dense_objective("uncertainty", normalize=True)
    base.train()

    def step(objective, rows):
        w = weight.clone().requires_grad_(True)
        h = x[rows] @ w  # (m, L, 3)
        logits = {"cls": h.mean(dim=1), "span": h[..., 0], "countdown": h[..., 1] * 3}
        total, parts = objective(logits, {t: y[rows] for t, y in labels.items()})
        total.backward()
        return w.grad, parts

    one_grad, one_parts = step(copy.deepcopy(base), torch.arange(n_rows))
    collective = _ThreadSum(n_processes)

    def process(rank: int):
        objective = copy.deepcopy(base)
        objective.distribute(collective.for_rank(rank), n_processes=n_processes)
        return step(objective, torch.arange(n_rows)[rank::n_processes])

    with ThreadPoolExecutor(n_processes) as pool:
        ranks = [f.result() for f in [pool.submit(process, r) for r in range(n_processes)]]
    grads = torch.stack([grad for grad, _ in ranks]).mean(dim=0)
    torch.testing.assert_close(grads, one_grad, atol=1e-6, rtol=1e-5)
    for name, value in one_parts.items():
        merged = torch.stack([parts[name] for _, parts in ranks]).mean()
        assert merged.item() == pytest.approx(value.item(), rel=1e-5, abs=1e-6), name
