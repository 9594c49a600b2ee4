"""``concepts.training``: every lens in one tensor program, equal to each lens trained alone."""

from __future__ import annotations

import pytest
import torch

from lensforge.concepts import training
from lensforge.core import metrics
from lensforge.core.errors import DataError, ParamsError

KINDS = ("linear", "mlp")


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def lens_problem(n_lenses: int = 6, *, d_model: int = 24, n_rows: int = 500, seed: int = 0):
    """Shared rows ``x`` with an offset (so standardisation matters) and lenses of different row
    counts (10..90 train rows, so small lenses sit later steps of an epoch out), each labelling
    the rows by its own noisy direction. Returns x, train and val ``LensRows``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_rows, d_model, generator=g) + 3 * torch.randn(d_model, generator=g)
    train_rows, train_labels, val_rows, val_labels = [], [], [], []
    for lens in range(n_lenses):
        direction = torch.randn(d_model, generator=g)
        noise = 1.5 * torch.randn(n_rows, generator=g)
        y = ((x - x.mean(0)) @ direction + noise > 0).float()  # (n_rows,)
        order = torch.randperm(n_rows, generator=g)
        n_train = 10 + 16 * lens
        train_rows.append(order[:n_train])
        train_labels.append(y[order[:n_train]])
        val_rows.append(order[300:340])
        val_labels.append(y[order[300:340]])
    train = training.LensRows.from_lists(train_rows, train_labels)
    val = training.LensRows.from_lists(val_rows, val_labels)
    return x, train, val


def options(kind: str, *, standardize: bool, x=None, train=None, **overrides) -> dict:
    stats = training.standardization(x, train.index[train.mask]) if standardize else None
    base = {
        "kind": kind,
        "lr": 1e-2 if kind == "linear" else 3e-3,
        "batch_size": 16,
        "max_epochs": 25,
        "patience": 4,
        "feature_stats": stats,
        "hidden": 16,
        "dropout": 0.0,
    }
    return {**base, **overrides}


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def one(stack: training.LensStack, lens: int) -> dict:
    return {name: p[lens] for name, p in stack.params.items()}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("batch_size", [16, 128])  # 128: one full batch per lens and epoch
def test_batched_lenses_equal_each_lens_trained_alone(kind, standardize, batch_size):
    x, train, val = lens_problem()
    kw = options(kind, standardize=standardize, x=x, train=train, batch_size=batch_size)
    seeds = training.lens_seeds(3, len(train))
    batched = training.train_lenses(x, train, val, seeds=seeds, **kw)
    assert len(set(batched.epochs_run.tolist())) > 1, "lenses should stop at different epochs"
    for lens in range(len(train)):
        ids = torch.tensor([lens])
        alone = training.train_lenses(x, train.subset(ids), val.subset(ids), seeds=seeds[ids], **kw)
        rows, labels = train.rows_of(lens)
        val_rows, val_labels = val.rows_of(lens)
        plain = training.fit_one_lens(
            x[rows], labels, x[val_rows], val_labels, seed=int(seeds[lens]), **kw
        )
        for other in (alone, plain):
            assert max_difference(one(other.weights, 0), one(batched.weights, lens)) < 1e-5
            assert int(other.best_epoch[0]) == int(batched.best_epoch[lens])
            assert int(other.epochs_run[0]) == int(batched.epochs_run[lens])
            assert float(other.val_f1[0]) == pytest.approx(float(batched.val_f1[lens]))
            assert float(other.train_f1[0]) == pytest.approx(float(batched.train_f1[lens]))


def test_adam_step_matches_torch_adam_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(3, 40, generator=g)
    params, state = {"w": start.clone()}, training.AdamState.zeros_like({"w": start})
    reference = [torch.nn.Parameter(row.clone()) for row in start]
    optimizers = [torch.optim.Adam([p], lr=1e-2, weight_decay=1e-3) for p in reference]
    for _ in range(50):
        # gradients across six orders of magnitude, the regime where Adam's eps matters
        grad = torch.randn(3, 40, generator=g) * 10.0 ** torch.randint(-6, 2, (3, 1), generator=g)
        training.adam_step(
            params,
            {"w": grad},
            state,
            active=torch.ones(3, dtype=torch.bool),
            lr=1e-2,
            weight_decay=1e-3,
        )
        for row, (p, optimizer) in enumerate(zip(reference, optimizers, strict=True)):
            p.grad = grad[row].clone()
            optimizer.step()
    assert torch.equal(params["w"], torch.stack([p.detach() for p in reference]))
    assert state.step.tolist() == [50, 50, 50]


def test_zeroing_a_lens_gradient_under_torch_adam_still_moves_it():
    """Why ``adam_step`` exists: stacked params under torch.optim.Adam, a frozen lens's gradient
    masked to zero, and the lens moves anyway (its moments decay, m / sqrt(v) stays non-zero)."""
    stacked = torch.nn.Parameter(torch.zeros(2, 4))
    optimizer = torch.optim.Adam([stacked], lr=0.1)
    for step in range(3):
        grad = torch.ones(2, 4)
        if step > 0:
            grad[1] = 0.0  # lens 1 frozen after the first step
        stacked.grad = grad
        optimizer.step()
        if step == 0:
            after_first = stacked.detach()[1].clone()
    assert not torch.equal(stacked.detach()[1], after_first)


def test_a_lens_outside_the_active_mask_keeps_params_moments_and_step_bit_for_bit():
    g = torch.Generator().manual_seed(1)
    params = training.init_params(
        "mlp", seeds=training.lens_seeds(0, 3), d_model=8, hidden=4
    )  # (3, ...) stacked
    state = training.AdamState.zeros_like(params)

    def grads():
        return {name: torch.randn(p.shape, generator=g) for name, p in params.items()}

    everyone = torch.ones(3, dtype=torch.bool)
    for _ in range(3):  # lens 1 has moments and a step count of its own before it freezes
        training.adam_step(params, grads(), state, active=everyone, lr=1e-2, weight_decay=0.1)
    frozen = {name: p[1].clone() for name, p in params.items()}
    moments = {
        name: (state.exp_avg[name][1].clone(), state.exp_avg_sq[name][1].clone()) for name in params
    }
    others = {name: p[[0, 2]].clone() for name, p in params.items()}
    for _ in range(5):  # lens 1 sits out while it still receives (non-zero) gradients
        training.adam_step(
            params,
            grads(),
            state,
            active=torch.tensor([True, False, True]),
            lr=1e-2,
            weight_decay=0.1,
        )
    for name, p in params.items():
        assert torch.equal(p[1], frozen[name])
        assert torch.equal(state.exp_avg[name][1], moments[name][0])
        assert torch.equal(state.exp_avg_sq[name][1], moments[name][1])
        assert not torch.equal(p[[0, 2]], others[name])  # the others did move
    assert state.step.tolist() == [8, 3, 8]


def test_stopped_and_idle_lenses_stay_frozen_inside_a_training(monkeypatch):
    """Every Adam call of a real training leaves the lenses outside its mask untouched."""
    real_step = training.adam_step
    calls = {"with_idle_lenses": 0, "lens_steps": 0}

    def checked_step(params, grads, state, *, active, **kw):
        idle = ~active
        before = [p[idle].clone() for p in params.values()]
        before += [m[idle].clone() for m in state.exp_avg.values()]
        before += [v[idle].clone() for v in state.exp_avg_sq.values()]
        steps = state.step[idle].clone()
        real_step(params, grads, state, active=active, **kw)
        after = [p[idle] for p in params.values()]
        after += [m[idle] for m in state.exp_avg.values()]
        after += [v[idle] for v in state.exp_avg_sq.values()]
        assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
        assert torch.equal(state.step[idle], steps)
        calls["with_idle_lenses"] += int(bool(idle.any()))
        calls["lens_steps"] += int(active.sum())

    monkeypatch.setattr(training, "adam_step", checked_step)
    x, train, val = lens_problem()
    kw = options("mlp", standardize=True, x=x, train=train, weight_decay=1e-2)
    result = training.train_lenses(x, train, val, seeds=0, **kw)
    assert calls["with_idle_lenses"] > 0
    assert result.epochs_run.min() < result.epochs_run.max()
    # a lens steps only while it runs: ceil(rows / batch) steps in each of its epochs, none after
    steps_per_epoch = (train.n_rows + kw["batch_size"] - 1) // kw["batch_size"]
    assert calls["lens_steps"] == int((steps_per_epoch * result.epochs_run).sum())


@pytest.mark.parametrize("kind", KINDS)
def test_early_stopping_returns_each_lens_at_its_best_epoch(kind):
    x, train, val = lens_problem()
    kw = options(kind, standardize=True, x=x, train=train)
    result = training.train_lenses(x, train, val, seeds=5, **kw)
    stopped_late = result.epochs_run > result.best_epoch
    assert bool(stopped_late.any())
    for lens in range(len(train)):
        ids = torch.tensor([lens])
        best = int(result.best_epoch[lens])
        # the same lens trained for exactly its best epoch count, with no early stop
        rerun = training.train_lenses(
            x,
            train.subset(ids),
            val.subset(ids),
            seeds=training.lens_seeds(5, len(train))[ids],
            **{**kw, "max_epochs": best, "patience": best + 1},
        )
        assert max_difference(one(rerun.weights, 0), one(result.weights, lens)) < 1e-5


def test_each_lens_stops_patience_epochs_after_its_best():
    """The rule of ``core.early_stopping.EarlyStopping`` per lens (``fit_one_lens`` uses the
    class itself and agrees, see the batched-equals-alone test)."""
    x, train, val = lens_problem()
    kw = options("linear", standardize=False, patience=2)
    result = training.train_lenses(x, train, val, seeds=2, **kw)
    for lens in range(len(train)):
        assert int(result.epochs_run[lens]) == min(
            int(result.best_epoch[lens]) + 2, kw["max_epochs"]
        )


@pytest.mark.parametrize("kind", KINDS)
def test_score_agrees_with_score_rows_and_the_recorded_validation_f1(kind):
    x, train, val = lens_problem()
    kw = options(kind, standardize=True, x=x, train=train)
    result = training.train_lenses(x, train, val, seeds=0, **kw)
    dense = training.score(result.weights, x)  # (n_rows, n_lenses)
    per_lens = training.score_rows(result.weights, x, val)  # (n_lenses, width)
    assert dense.shape == (len(x), len(train))
    for lens in range(len(train)):
        rows, labels = val.rows_of(lens)
        torch.testing.assert_close(dense[rows, lens], per_lens[lens, : len(rows)])
        predicted = (dense[rows, lens] >= training.THRESHOLD).long().numpy()
        f1 = metrics.per_class_scores(labels.long().numpy(), predicted, n_classes=2)["f1"][1]
        assert f1 == pytest.approx(float(result.val_f1[lens]))


def test_f1_scores_equal_core_metrics_and_ignore_padding():
    g = torch.Generator().manual_seed(4)
    rows = training.LensRows.from_lists(
        [torch.arange(n) for n in (5, 12, 1, 9)],
        [(torch.rand(n, generator=g) > 0.5).float() for n in (5, 12, 1, 9)],
    )
    logits = torch.randn(rows.index.shape, generator=g)
    logits[~rows.mask] = 10.0  # padding predicted positive must not count
    scores = training.f1_scores(logits, rows)
    for lens in range(len(rows)):
        n = int(rows.n_rows[lens])
        predicted = (torch.sigmoid(logits[lens, :n]) >= 0.5).long().numpy()
        y = rows.label[lens, :n].long().numpy()
        expected = metrics.per_class_scores(y, predicted, n_classes=2)["f1"][1]
        assert float(scores[lens]) == pytest.approx(expected)


def test_epoch_order_is_a_permutation_that_ignores_companions_and_padding():
    seeds = training.lens_seeds(0, 3)
    order = training.epoch_order(seeds, 4, n_rows=torch.tensor([5, 9, 1]), width=12)
    assert sorted(order[0, :5].tolist()) == list(range(5))
    assert sorted(order[1, :9].tolist()) == list(range(9))
    alone = training.epoch_order(seeds[1:2], 4, n_rows=torch.tensor([9]), width=9)
    assert torch.equal(alone[0], order[1, :9])
    assert not torch.equal(
        order[1], training.epoch_order(seeds, 5, n_rows=torch.tensor([5, 9, 1]), width=12)[1]
    )


def test_training_is_deterministic_per_seed_with_dropout():
    x, train, val = lens_problem(n_lenses=3)
    kw = options("mlp", standardize=False, dropout=0.1)
    first = training.train_lenses(x, train, val, seeds=11, **kw)
    again = training.train_lenses(x, train, val, seeds=11, **kw)
    other = training.train_lenses(x, train, val, seeds=12, **kw)
    assert max_difference(first.weights.params, again.weights.params) == 0
    assert max_difference(first.weights.params, other.weights.params) > 0


def test_max_lenses_splits_the_program_without_changing_results():
    x, train, val = lens_problem()
    kw = options("linear", standardize=True, x=x, train=train)
    whole = training.train_lenses(x, train, val, seeds=1, **kw)
    split = training.train_lenses(x, train, val, seeds=1, max_lenses=2, **kw)
    assert max_difference(whole.weights.params, split.weights.params) < 1e-5
    assert torch.equal(whole.best_epoch, split.best_epoch)


def test_rows_no_lens_uses_are_never_read():
    x, train, val = lens_problem(n_lenses=3)
    used = torch.cat([train.index[train.mask], val.index[val.mask]])
    poisoned = torch.full_like(x, float("nan"))
    poisoned[used] = x[used]
    kw = options("mlp", standardize=False)
    clean = training.train_lenses(x, train, val, seeds=0, **kw)
    dirty = training.train_lenses(poisoned, train, val, seeds=0, **kw)
    assert max_difference(clean.weights.params, dirty.weights.params) == 0


def test_bad_inputs_are_refused_with_the_rule():
    x, train, val = lens_problem(n_lenses=2)
    kw = options("linear", standardize=False)
    with pytest.raises(ValueError):
        training.LensRows.from_lists([torch.arange(4)], [torch.ones(3)])
    empty = training.LensRows(
        index=train.index, label=train.label, n_rows=torch.tensor([int(train.n_rows[0]), 0])
    )
    with pytest.raises(DataError, match="no train rows"):
        training.train_lenses(x, empty, val, seeds=0, **kw)
    outside = training.LensRows(index=train.index + len(x), label=train.label, n_rows=train.n_rows)
    with pytest.raises(DataError, match="outside"):
        training.train_lenses(x, outside, val, seeds=0, **kw)
    not_binary = training.LensRows(index=train.index, label=train.label * 2, n_rows=train.n_rows)
    with pytest.raises(DataError, match="0 or 1"):
        training.train_lenses(x, not_binary, val, seeds=0, **kw)
    with pytest.raises(ParamsError, match="kind"):
        training.train_lenses(x, train, val, seeds=0, **{**kw, "kind": "svm"})
    with pytest.raises(ParamsError, match="lr"):
        training.train_lenses(x, train, val, seeds=0, **{**kw, "lr": 0.0})


def test_records_are_plain_numbers_per_lens():
    x, train, val = lens_problem(n_lenses=2)
    result = training.train_lenses(x, train, val, seeds=0, **options("linear", standardize=False))
    records = result.records()
    assert len(records) == 2
    assert set(records[0]) == {"best_epoch", "epochs_run", "val_f1", "train_f1", "threshold"}
    assert records[0]["threshold"] == 0.5
    assert all(isinstance(v, int | float) for r in records for v in r.values())
    state = result.weights.state_dict()
    assert set(state) == {"weight", "bias", "feature_mean", "feature_std"}
    assert all(t.is_contiguous() for t in state.values())
