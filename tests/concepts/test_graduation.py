"""``concepts.graduation``: the schedule and tier tables, and the adaptive loop."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lensforge.concepts import graduation, training
from lensforge.core.errors import DataError, ParamsError

EXPONENTIAL = graduation.exponential_schedule(**graduation.EXPONENTIAL)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# ----------------------------------------------------------------------------- tables


def test_exponential_schedule_is_the_issue_table():
    expected = {1: 10, 2: 20, **dict.fromkeys(range(3, 5), 40), **dict.fromkeys(range(5, 9), 80)}
    expected |= dict.fromkeys(range(9, 17), 160) | dict.fromkeys(range(17, 33), 320)
    expected |= dict.fromkeys(range(33, 65), 640)
    assert len(EXPONENTIAL) == 64
    assert {i: EXPONENTIAL[i - 1] for i in range(1, 65)} == expected


def test_linear_schedule_starts_at_40_adds_40_and_stops_at_200():
    schedule = graduation.linear_schedule(**graduation.LINEAR)
    assert schedule[:7] == [40, 80, 120, 160, 200, 200, 200]
    assert len(schedule) == 64 and max(schedule) == 200
    assert graduation.build_schedule("linear", start=40, step=40, cap=200, n_iterations=6) == [
        40,
        80,
        120,
        160,
        200,
        200,
    ]
    with pytest.raises(ParamsError, match="unknown schedule"):
        graduation.build_schedule("cosine", start=1, n_iterations=2)


def test_default_tiers_are_the_issue_table():
    per_iteration = graduation.tier_per_iteration(graduation.DEFAULT_TIERS, n_iterations=64)
    table = [(t.name, t.min_f1) for t in per_iteration]
    assert table[0:3] == [("A", 0.95)] * 3
    assert table[3:6] == [("B+", 0.90)] * 3
    assert table[6:12] == [("B", 0.85)] * 6
    assert table[12:24] == [("C+", 0.80)] * 12
    assert table[24:64] == [("C", 0.75)] * 40


def test_tier_tables_with_gaps_overlaps_or_a_fail_name_are_refused():
    tiers = list(graduation.DEFAULT_TIERS)
    with pytest.raises(ParamsError, match="no tier for iterations"):
        graduation.tier_per_iteration(tiers[:-1], n_iterations=64)
    overlapping = [*tiers[:-1], dataclasses.replace(tiers[-1], first=24)]
    with pytest.raises(ParamsError, match="overlap"):
        graduation.tier_per_iteration(overlapping, n_iterations=64)
    with pytest.raises(ParamsError, match="unusable tier"):
        graduation.tier_per_iteration([graduation.Tier("F", 0.5, 1, 64)], n_iterations=64)


def test_iterations_sharing_a_count_form_one_group():
    assert graduation.iteration_groups(EXPONENTIAL) == [
        (1, 1, 10),
        (2, 2, 20),
        (3, 4, 40),
        (5, 8, 80),
        (9, 16, 160),
        (17, 32, 320),
        (33, 64, 640),
    ]
    with pytest.raises(ParamsError, match="shrink"):
        graduation.check_schedule([10, 20, 10])


def test_a_count_splits_into_positives_and_negatives():
    assert graduation.split_count(10, positive_fraction=0.5) == (5, 5)
    assert graduation.split_count(640, positive_fraction=0.4) == (256, 384)
    assert graduation.split_count(5, positive_fraction=0.5) == (3, 2)  # half up
    assert graduation.split_count(2, positive_fraction=0.01) == (1, 1)  # one of each at least
    with pytest.raises(ParamsError):
        graduation.split_count(10, positive_fraction=1.0)


def test_pool_rows_are_prefixes_positives_first():
    pool = graduation.Pool.from_lists(
        [torch.tensor([7, 8, 9]), torch.tensor([1])],
        [torch.tensor([20, 21, 22, 23]), torch.tensor([30, 31])],
    )
    rows = pool.rows(
        torch.tensor([0, 1]), n_positives=torch.tensor([2, 1]), n_negatives=torch.tensor([3, 2])
    )
    assert rows.rows_of(0)[0].tolist() == [7, 8, 20, 21, 22]
    assert rows.rows_of(0)[1].tolist() == [1, 1, 0, 0, 0]
    assert rows.rows_of(1)[0].tolist() == [1, 30, 31]
    assert rows.rows_of(1)[1].tolist() == [1, 0, 0]


# ----------------------------------------------------------------------------- the loop, scripted


@dataclasses.dataclass
class ScriptedTrainer:
    """Stands in for ``train_lenses``: validation / train F1 by (lens, rows trained on), every
    call recorded. Lenses are told apart by their first positive row (= lens id below)."""

    val_f1: dict
    train_f1: dict
    calls: list = dataclasses.field(default_factory=list)

    def __call__(self, x, train, val, *, seeds, kind, **_):
        lenses = train.index[:, 0].tolist()
        counts = train.n_rows.tolist()
        self.calls.append(list(zip(lenses, counts, strict=True)))
        stack = training.LensStack.zeros(
            kind, n_lenses=len(train), d_model=x.shape[1], hidden=1, feature_stats=None
        )
        stack.params["bias"] += torch.tensor(lenses, dtype=torch.float32)  # marks whose weights
        return training.TrainResult(
            weights=stack,
            best_epoch=torch.ones(len(train), dtype=torch.long),
            epochs_run=torch.full((len(train),), 2),
            val_f1=torch.tensor(
                [self.val_f1[lens](n) for lens, n in zip(lenses, counts, strict=True)],
                dtype=torch.float64,
            ),
            train_f1=torch.tensor(
                [self.train_f1[lens](n) for lens, n in zip(lenses, counts, strict=True)],
                dtype=torch.float64,
            ),
        )


def scripted_pool(n_positives: list[int], *, n_negatives: int = 400):
    """Lens ``l``'s positives start with row ``l``; negatives and validation rows elsewhere."""
    positives, negatives, val_rows, val_labels = [], [], [], []
    for lens, n in enumerate(n_positives):
        positives.append(torch.tensor([lens] + [1000 + 1000 * lens + i for i in range(n - 1)]))
        negatives.append(torch.arange(100_000, 100_000 + n_negatives))
        val_rows.append(torch.tensor([200_000 + lens, 200_100 + lens]))
        val_labels.append(torch.tensor([1.0, 0.0]))
    x = torch.zeros(200_200, 2)
    pool = graduation.Pool.from_lists(positives, negatives)
    return x, pool, training.LensRows.from_lists(val_rows, val_labels)


def run_scripted(monkeypatch, trainer, n_positives, **overrides):
    monkeypatch.setattr(graduation.training, "train_lenses", trainer)
    x, pool, val = scripted_pool(n_positives)
    kw = {
        "schedule": EXPONENTIAL,
        "tiers": graduation.DEFAULT_TIERS,
        "max_train_val_gap": 0.1,
        "positive_fraction": 0.5,
        "seeds": 0,
        "train_options": {"kind": "linear"},
    }
    return graduation.graduate(x, pool, val, **{**kw, **overrides})


def test_a_lens_graduates_at_the_first_iteration_of_its_count_that_its_f1_meets(monkeypatch):
    # lens 0: 0.96 at once (A, iteration 1); lens 1: 0.87 from 80 rows (iterations 5-8: B at 7);
    # lens 2: 0.91 at 40 rows (iterations 3-4: B+ at 4); lens 3: 0.78 at 320 rows (C at 25)
    val = {
        0: lambda n: 0.96,
        1: lambda n: 0.87 if n >= 80 else 0.5,
        2: lambda n: 0.91 if n >= 40 else 0.6,
        3: lambda n: 0.78 if n >= 320 else 0.7,
    }
    train = {k: (lambda n, f=f: f(n) + 0.05) for k, f in val.items()}  # gap 0.05: allowed
    trainer = ScriptedTrainer(val_f1=val, train_f1=train)
    result = run_scripted(monkeypatch, trainer, [400, 400, 400, 400])
    got = [(r["tier"], r["iteration"], r["samples"], r["n_trainings"]) for r in result.records]
    assert got == [("A", 1, 10, 1), ("B", 7, 80, 4), ("B+", 4, 40, 3), ("C", 25, 320, 6)]
    # one call per distinct count, holding exactly the lenses still pending
    assert [sorted(lens for lens, _ in call) for call in trainer.calls] == [
        [0, 1, 2, 3],
        [1, 2, 3],
        [1, 2, 3],
        [1, 3],
        [3],
        [3],
    ]
    assert [call[0][1] for call in trainer.calls] == [10, 20, 40, 80, 160, 320]
    assert result.weights.params["bias"].tolist() == [0.0, 1.0, 2.0, 3.0]  # each lens's own
    assert result.tier_counts() == {"A": 1, "B": 1, "B+": 1, "C": 1}


def test_the_gap_rule_holds_back_an_overfit_lens(monkeypatch):
    val = {0: lambda n: 0.96, 1: lambda n: 0.96}
    train = {0: lambda n: 1.0, 1: lambda n: 1.0 if n < 160 else 0.97}
    result = run_scripted(
        monkeypatch, ScriptedTrainer(val, train), [400, 400], max_train_val_gap=0.02
    )
    assert result.records[0]["tier"] == "F" and result.records[0]["fail_reason"] == "schedule"
    assert result.records[0]["train_val_gap"] == pytest.approx(0.04)
    assert (result.records[1]["tier"], result.records[1]["iteration"]) == ("B", 9)


def test_lenses_that_run_out_of_data_or_schedule_are_tier_f_and_say_why(monkeypatch):
    never = {lens: (lambda n: 0.5) for lens in range(4)}
    trainer = ScriptedTrainer(never, never)
    # lens 0: 30 positives -> trains on 30 at count 80 (wants 40), fails: data
    # lens 1: 20 positives and 20 negatives -> all 40 at count 40, cannot grow: data, untrained
    # lens 2: plenty of data: schedule; lens 3: no positives at all: no_data
    x, pool, val = scripted_pool([30, 20, 400, 1])
    pool = dataclasses.replace(
        pool,
        n_positives=torch.tensor([30, 20, 400, 0]),
        n_negatives=torch.tensor([400, 20, 400, 400]),
    )
    monkeypatch.setattr(graduation.training, "train_lenses", trainer)
    result = graduation.graduate(
        x,
        pool,
        val,
        schedule=EXPONENTIAL,
        tiers=graduation.DEFAULT_TIERS,
        max_train_val_gap=0.1,
        positive_fraction=0.5,
        seeds=0,
        train_options={"kind": "linear"},
    )
    got = [
        (r["tier"], r["fail_reason"], r["n_positives"], r["n_trainings"]) for r in result.records
    ]
    assert got == [
        ("F", "data", 30, 4),
        ("F", "data", 20, 3),
        ("F", "schedule", 320, 7),
        ("F", "no_data", 0, 0),
    ]
    assert result.records[2]["last_iteration"] == 64
    assert result.records[3]["val_f1"] is None
    assert all(r["graduated"] is False and r["iteration"] is None for r in result.records)


# ----------------------------------------------------------------------------- the loop, trained


def concept_problem(*, n_lenses: int = 8, d_model: int = 32, seed: int = 0):
    """Lenses over shared rows, as the concept prompts are: every row belongs to one lens and to
    one split (train candidates 120 / validation 120 / test 60 of each lens's 300 rows), and a
    lens's negatives are other lenses' rows of the same split. Even lenses' own rows sit far along
    a direction of their own (separable) and their negatives are any other lens's rows; odd lenses'
    rows and negatives are all plain noise (not separable). Returns x, the pools, the validation rows and every test row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_lenses * 300, d_model, generator=g)
    blocks = torch.arange(len(x)).reshape(n_lenses, 300)  # (n_lenses, 300) each lens's rows
    train_part, val_part, test_part = blocks[:, :120], blocks[:, 120:240], blocks[:, 240:]
    positives, negatives, val_rows, val_labels = [], [], [], []
    for lens in range(n_lenses):
        if lens % 2 == 0:
            direction = torch.nn.functional.normalize(torch.randn(d_model, generator=g), dim=0)
            x[blocks[lens]] += 6 * direction
        # a noise lens's negatives are other noise rows only: nothing tells its rows apart
        others = [other for other in range(lens % 2, n_lenses, 2 - lens % 2) if other != lens]
        other_train = train_part[others].flatten()
        other_val = val_part[others].flatten()
        positives.append(train_part[lens])
        negatives.append(other_train[torch.randperm(len(other_train), generator=g)[:400]])
        val_negatives = other_val[torch.randperm(len(other_val), generator=g)[:120]]
        val_rows.append(torch.cat([val_part[lens], val_negatives]))
        val_labels.append(torch.cat([torch.ones(120), torch.zeros(120)]))
    pool = graduation.Pool.from_lists(positives, negatives)
    val = training.LensRows.from_lists(val_rows, val_labels)
    return x, pool, val, test_part.flatten()


def graduate_real(x, pool, val, *, kind: str = "linear"):
    train_rows = torch.cat([pool.positives.flatten(), pool.negatives.flatten()])  # train split
    return graduation.graduate(
        x,
        pool,
        val,
        schedule=EXPONENTIAL,
        tiers=graduation.DEFAULT_TIERS,
        max_train_val_gap=0.15,
        positive_fraction=0.5,
        seeds=0,
        train_options={
            "kind": kind,
            "lr": 5e-2,
            "batch_size": 32,
            "max_epochs": 40,
            "patience": 5,
            "feature_stats": training.standardization(x, train_rows),
            "hidden": 16,
            "dropout": 0.0,
        },
    )


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_separable_lenses_graduate_and_noise_lenses_end_in_tier_f(kind):
    x, pool, val, _ = concept_problem()
    result = graduate_real(x, pool, val, kind=kind)
    separable = result.records[0::2]
    noise = result.records[1::2]
    assert all(r["graduated"] and r["tier"] == "A" and r["samples"] <= 40 for r in separable)
    assert all(r["tier"] == "F" and r["fail_reason"] == "data" for r in noise)
    assert all(r["n_positives"] == 120 for r in noise)  # they used every positive they had
    probabilities = training.score(result.weights, x)  # (n_rows, n_lenses)
    assert probabilities.shape == (len(x), len(pool))


def test_graduation_never_reads_test_rows():
    x, pool, val, test_rows = concept_problem(n_lenses=4)
    clean = graduate_real(x, pool, val)
    poisoned = x.clone()
    poisoned[test_rows] = float("nan")  # any read of a test row would spread NaN
    dirty = graduate_real(poisoned, pool, val)
    assert dirty.records == clean.records
    for name, p in clean.weights.params.items():
        assert torch.equal(dirty.weights.params[name], p)


def test_validation_rows_among_training_candidates_are_refused():
    x, pool, val, _ = concept_problem(n_lenses=4)
    leaky = training.LensRows(index=val.index.clone(), label=val.label, n_rows=val.n_rows)
    leaky.index[1, 0] = pool.negatives[1, 3]
    with pytest.raises(DataError, match="validation rows are not training rows"):
        graduate_real(x, pool, leaky)


def test_a_lens_that_runs_out_is_judged_against_every_later_iteration(monkeypatch):
    # lens 0 has 7 positives: at count 20 (wants 10) it trains on all 7, reaches 0.82 there and
    # would train on the same rows at every later iteration: it graduates at the first iteration
    # whose threshold 0.82 meets (C+ 0.80 from iteration 13). Lens 1 (0.7) still fails: data.
    val = {0: lambda n: 0.82 if n >= 17 else 0.6, 1: lambda n: 0.7}
    train = {k: (lambda n, f=f: f(n)) for k, f in val.items()}
    result = run_scripted(monkeypatch, ScriptedTrainer(val, train), [7, 7])
    first, second = result.records
    assert (first["tier"], first["iteration"], first["n_positives"]) == ("C+", 13, 7)
    assert (second["tier"], second["fail_reason"]) == ("F", "data")
