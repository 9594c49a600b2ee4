"""Adaptive graduation: each concept lens grows its training rows along a schedule until its
validation F1 passes the tier of its iteration, or it runs out and is tier F.

Schedules (the sample count of iterations 1..n, a list of ints; the functions below build them):
- ``exponential``: ``start * 2^ceil(log2(i))``: 10; 20; 40 for iterations 3-4; 80 for 5-8; 160 for
  9-16; 320 for 17-32; 640 for 33-64. That is the table of HatCat's graduation-schedule note (its
  ``get_required_samples_exponential`` disagrees with its own table: 20 for iteration 3, 40 for
  4-7); we follow the table, as the issue does.
- ``linear``: ``start``, ``start + step``, ... capped at ``cap``: 40, 80, 120, 160, 200, 200, ...

Tiers (``Tier``: a name, the least validation F1 and the iterations it applies to): A >= 0.95
for iterations 1-3, B+ 0.90 for 4-6, B 0.85 for 7-12, C+ 0.80 for 13-24, C 0.75 for 25-64
(``DEFAULT_TIERS``). A lens graduates at iteration ``i`` when its validation F1 reaches the
threshold of ``i``'s tier AND its train F1 exceeds its validation F1 by at most
``max_train_val_gap``. Both tables are data: the caller passes them.

What an iteration is (a decision). Iterations that share a sample count (3-4, 5-8, 9-16, ...)
would retrain the same rows; training is deterministic, so with the same seed they would give
the same lens, and they differ only in the threshold they test it against. So we train once per
distinct count and the lens graduates at the FIRST iteration of that run whose threshold it
meets (a lens with validation F1 0.87 trained on 80 rows graduates at iteration 7, tier B). The
alternative, a new seed or a new draw of rows at each repeat, would be selection on the
validation set by repeated tries (every try another chance to pass by luck, up to 32 tries at
640 rows) and cost up to 32 trainings where one does. The exponential schedule therefore means
at most 7 trainings per lens, the linear one (capped) at most 5.

Sample counts. A count ``n`` is a lens's number of training rows: ``round(n *
positive_fraction)`` of its own prompts (at least one) and the rest negatives. Both are prefixes
of the lens's pools in the order the caller gives them (the prompt stage orders negatives, e.g.
sibling hard negatives interleaved with random others at its ratio), so a larger count holds the
smaller count's rows and adds to them: a lens's data grows, it is not redrawn.

Running out. When a lens's pool cannot supply a count's positives or negatives, it trains once on
everything it has; since every later iteration would train it on these same rows, it is judged
against the thresholds of all remaining iterations (graduating at the first it meets); failing
them all, it is tier F (``data``). A lens
whose pool cannot grow past the rows of its previous training is F (``data``) without training
again. A lens still pending after the last iteration is F (``schedule``). A lens without
positives or negatives in its pool, or without a positive validation row, is F (``no_data``)
and never trains. Every training of every pending lens at one count is one ``train_lenses``
call: one tensor program for all of them.

Graduation reads validation only: ``graduate`` is given the train pools and the validation rows
and nothing else (test rows cannot reach it), and refuses a lens whose validation rows overlap
its pools.

Seeds: a lens's training at count ``n`` is seeded with ``mix_seeds(lens seed, n)``: a different
initialisation and order per count, the same whichever other lenses are pending.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence

import torch

from lensforge.concepts import training
from lensforge.core.errors import DataError, ParamsError
from lensforge.core.metrics import FAIL_TIER

log = logging.getLogger(__name__)

FAIL_REASONS = ("no_data", "data", "schedule")


@dataclasses.dataclass(frozen=True)
class Tier:
    """A graduation tier: the least validation F1 for iterations ``first``..``last`` (1-based)."""

    name: str
    min_f1: float
    first: int
    last: int


DEFAULT_TIERS = (
    Tier("A", 0.95, 1, 3),
    Tier("B+", 0.90, 4, 6),
    Tier("B", 0.85, 7, 12),
    Tier("C+", 0.80, 13, 24),
    Tier("C", 0.75, 25, 64),
)
EXPONENTIAL = {"start": 10, "n_iterations": 64}  # 10 -> 640 rows over 64 iterations
LINEAR = {"start": 40, "step": 40, "cap": 200, "n_iterations": 64}


# ----------------------------------------------------------------------------- schedules, tiers


def exponential_schedule(*, start: int, n_iterations: int) -> list[int]:
    """Sample count of iterations 1..n: ``start * 2^ceil(log2(i))`` (10; 20; 40, 40; 80 x 4...)."""
    _positive(start=start, n_iterations=n_iterations)
    return [start * 2 ** (i - 1).bit_length() for i in range(1, n_iterations + 1)]


def linear_schedule(*, start: int, step: int, cap: int, n_iterations: int) -> list[int]:
    """Sample count of iterations 1..n: ``min(start + step * (i - 1), cap)``."""
    _positive(start=start, step=step, cap=cap, n_iterations=n_iterations)
    return [min(start + step * (i - 1), cap) for i in range(1, n_iterations + 1)]


SCHEDULES: dict[str, Callable[..., list[int]]] = {
    "exponential": exponential_schedule,
    "linear": linear_schedule,
}


def build_schedule(kind: str, **options: int) -> list[int]:
    """The schedule ``kind`` (``exponential`` or ``linear``) with its options."""
    if kind not in SCHEDULES:
        raise ParamsError(
            f"unknown schedule {kind!r}; expected one of {sorted(SCHEDULES)}", rule="schedule"
        )
    return SCHEDULES[kind](**options)


def _positive(**numbers: int) -> None:
    for name, value in numbers.items():
        if not isinstance(value, int) or value < 1:
            raise ParamsError(f"{name} must be a positive integer, got {value!r}", row=name)


def iteration_groups(schedule: Sequence[int]) -> list[tuple[int, int, int]]:
    """(first, last, count) for each run of consecutive iterations sharing a sample count."""
    groups: list[tuple[int, int, int]] = []
    for iteration, count in enumerate(schedule, 1):
        if groups and groups[-1][2] == count:
            groups[-1] = (groups[-1][0], iteration, count)
        else:
            groups.append((iteration, iteration, count))
    return groups


def check_schedule(schedule: Sequence[int]) -> None:
    """A schedule is a non-empty, non-decreasing list of counts >= 2 (one row per class)."""
    if not schedule or any(not isinstance(c, int) or c < 2 for c in schedule):
        raise ParamsError(f"schedule needs counts >= 2, got {list(schedule)}", rule="schedule")
    if any(later < earlier for earlier, later in itertools.pairwise(schedule)):
        raise ParamsError(f"schedule must not shrink, got {list(schedule)}", rule="schedule")


def tier_per_iteration(tiers: Sequence[Tier], *, n_iterations: int) -> list[Tier]:
    """The tier of each iteration 1..n_iterations; ``ParamsError`` unless the tiers cover every
    iteration exactly once, with thresholds in [0, 1] and a name other than the fail tier's."""
    by_iteration: dict[int, Tier] = {}
    for tier in tiers:
        if tier.name == FAIL_TIER or not 0 <= tier.min_f1 <= 1 or tier.first > tier.last:
            raise ParamsError(f"unusable tier {tier}", row=tier.name, rule="tier")
        for iteration in range(tier.first, tier.last + 1):
            if iteration in by_iteration:
                raise ParamsError(
                    f"iteration {iteration} is in tiers {by_iteration[iteration].name} and "
                    f"{tier.name}",
                    row=tier.name,
                    rule="tiers do not overlap",
                )
            by_iteration[iteration] = tier
    missing = [i for i in range(1, n_iterations + 1) if i not in by_iteration]
    if missing:
        raise ParamsError(
            f"no tier for iterations {missing[:5]}{'...' if len(missing) > 5 else ''}",
            rule="tiers cover the schedule",
        )
    return [by_iteration[i] for i in range(1, n_iterations + 1)]


def split_count(count: int, *, positive_fraction: float) -> tuple[int, int]:
    """(positives, negatives) of a sample count: ``round(count * positive_fraction)`` positives
    (half up), at least one of each."""
    if not 0 < positive_fraction < 1:
        raise ParamsError(
            f"positive_fraction must lie in (0, 1), got {positive_fraction}",
            row="positive_fraction",
        )
    n_positives = min(max(1, math.floor(count * positive_fraction + 0.5)), count - 1)
    return n_positives, count - n_positives


# ----------------------------------------------------------------------------- pools


@dataclasses.dataclass(frozen=True)
class Pool:
    """Each lens's training candidates, in the order they are taken: ``positives`` (n_lenses, P)
    and ``negatives`` (n_lenses, Q) long rows of ``X``, padded after ``n_positives`` /
    ``n_negatives`` (n_lenses,) real rows."""

    positives: torch.Tensor
    n_positives: torch.Tensor
    negatives: torch.Tensor
    n_negatives: torch.Tensor

    @classmethod
    def from_lists(
        cls, positives: Sequence[torch.Tensor], negatives: Sequence[torch.Tensor]
    ) -> Pool:
        pos = training.LensRows.from_lists(positives, [torch.ones(len(p)) for p in positives])
        neg = training.LensRows.from_lists(negatives, [torch.zeros(len(n)) for n in negatives])
        return cls(pos.index, pos.n_rows, neg.index, neg.n_rows)

    def __len__(self) -> int:
        return len(self.n_positives)

    def rows(
        self, lenses: torch.Tensor, *, n_positives: torch.Tensor, n_negatives: torch.Tensor
    ) -> training.LensRows:
        """``LensRows`` of ``lenses``: the first ``n_positives`` positives (label 1), then the
        first ``n_negatives`` negatives (label 0) of each, (n,) counts each."""
        width = max(1, int((n_positives + n_negatives).max()))
        columns = torch.arange(width)[None, :]  # (1, width)
        is_positive = columns < n_positives[:, None]  # (n, width)
        negative_column = columns - n_positives[:, None]  # (n, width)
        positives = self.positives[lenses].gather(
            1, columns.clamp(max=self.positives.shape[1] - 1).expand(len(lenses), -1)
        )
        negatives = self.negatives[lenses].gather(
            1, negative_column.clamp(0, self.negatives.shape[1] - 1)
        )
        used = columns < (n_positives + n_negatives)[:, None]
        index = torch.where(is_positive, positives, negatives) * used  # padding -> row 0
        return training.LensRows(
            index=index, label=is_positive.float(), n_rows=n_positives + n_negatives
        )


def _check_inputs(x: torch.Tensor, pool: Pool, val: training.LensRows) -> None:
    if len(pool) != len(val) or len(pool) == 0:
        raise ValueError(f"{len(pool)} pools for {len(val)} validation sets (need > 0, equal)")
    for lens in range(len(pool)):
        pool_rows = torch.cat(
            [
                pool.positives[lens, : int(pool.n_positives[lens])],
                pool.negatives[lens, : int(pool.n_negatives[lens])],
            ]
        )
        val_rows, _ = val.rows_of(lens)
        if bool(torch.isin(val_rows, pool_rows).any()):
            raise DataError(
                f"lens {lens}: validation rows are also training candidates",
                row=lens,
                rule="validation rows are not training rows",
            )
    for name, index, counts in (
        ("positive", pool.positives, pool.n_positives),
        ("negative", pool.negatives, pool.n_negatives),
    ):
        real = index[torch.arange(index.shape[1]) < counts[:, None]]
        if len(real) and (int(real.min()) < 0 or int(real.max()) >= len(x)):
            raise DataError(f"{name} pool rows outside X's {len(x)} rows", rule="rows exist")


# ----------------------------------------------------------------------------- the loop


@dataclasses.dataclass
class GraduationResult:
    """The final weights of every lens (its last training; all-zero for ``no_data``) and one
    record per lens: ``tier``, ``graduated``, ``iteration`` (None unless graduated),
    ``last_iteration`` (where it graduated or was last judged), ``samples`` / ``n_positives``
    / ``n_negatives`` (rows of its last training), ``val_f1``, ``train_f1``, ``train_val_gap``,
    ``best_epoch``, ``epochs_run``, ``n_trainings``, ``fail_reason`` (None or one of
    ``FAIL_REASONS``) and ``threshold``."""

    weights: training.LensStack
    records: list[dict]

    def tier_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record["tier"]] = counts.get(record["tier"], 0) + 1
        return counts


class _Ledger:
    """Per-lens state of the loop: (n_lenses,) tensors, and each lens's fail reason."""

    def __init__(self, n_lenses: int):
        self.n_lenses = n_lenses
        self.pending = torch.ones(n_lenses, dtype=torch.bool)
        self.used_pos = torch.zeros(n_lenses, dtype=torch.long)  # rows of its last training
        self.used_neg = torch.zeros(n_lenses, dtype=torch.long)
        self.val_f1 = torch.zeros(n_lenses, dtype=torch.float64)
        self.train_f1 = torch.zeros(n_lenses, dtype=torch.float64)
        self.best_epoch = torch.zeros(n_lenses, dtype=torch.long)
        self.epochs_run = torch.zeros(n_lenses, dtype=torch.long)
        self.n_trainings = torch.zeros(n_lenses, dtype=torch.long)
        self.graduated_at = torch.zeros(n_lenses, dtype=torch.long)  # 0: not graduated
        self.last_iteration = torch.zeros(n_lenses, dtype=torch.long)  # 0: never judged
        self.fail_reason: list[str | None] = [None] * n_lenses

    def fail(self, lenses: torch.Tensor, reason: str) -> None:
        for lens in lenses.tolist():
            self.fail_reason[lens] = reason
        self.pending[lenses] = False

    def note_training(
        self,
        lenses: torch.Tensor,
        result: training.TrainResult,
        *,
        n_pos: torch.Tensor,
        n_neg: torch.Tensor,
    ) -> None:
        self.used_pos[lenses], self.used_neg[lenses] = n_pos, n_neg
        self.val_f1[lenses], self.train_f1[lenses] = result.val_f1, result.train_f1
        self.best_epoch[lenses], self.epochs_run[lenses] = result.best_epoch, result.epochs_run
        self.n_trainings[lenses] += 1


def graduate(
    x: torch.Tensor,
    pool: Pool,
    val: training.LensRows,
    *,
    schedule: Sequence[int],
    tiers: Sequence[Tier],
    max_train_val_gap: float,
    positive_fraction: float,
    seeds: int | torch.Tensor,
    train_options: Mapping[str, object],
    on_group: Callable[[dict], None] | None = None,
) -> GraduationResult:
    """Graduate every lens of ``pool`` (module docstring), all pending lenses trained at once.

    ``x`` (n_rows, d_model) features; ``pool`` each lens's training candidates; ``val`` each
    lens's validation rows and labels; ``seeds`` a run seed or (n_lenses,) per-lens seeds;
    ``train_options`` the keywords of ``training.train_lenses`` besides ``seeds`` (kind, lr,
    batch_size, max_epochs, patience, feature_stats, ...). ``on_group`` gets a summary dict
    after each sample count. Raises ``ParamsError`` for a bad schedule, tier table or fraction,
    ``DataError`` for validation rows among a lens's candidates or rows outside ``x``.
    """
    check_schedule(schedule)
    tier_of = tier_per_iteration(tiers, n_iterations=len(schedule))
    thresholds = torch.tensor([t.min_f1 for t in tier_of], dtype=torch.float64)  # (n_iter,)
    split_count(schedule[0], positive_fraction=positive_fraction)  # checks the fraction
    if max_train_val_gap < 0:
        raise ParamsError(f"max_train_val_gap must be >= 0, got {max_train_val_gap}")
    _check_inputs(x, pool, val)
    n_lenses = len(pool)
    base = (
        training.lens_seeds(seeds, n_lenses)
        if isinstance(seeds, int)
        else seeds.long() & training.MASK32
    )
    options = dict(train_options)
    weights = training.LensStack.zeros(
        str(options["kind"]),
        n_lenses=n_lenses,
        d_model=x.shape[1],
        hidden=int(options.get("hidden", training.MLP_HIDDEN)),
        feature_stats=options.get("feature_stats"),
    )
    ledger = _Ledger(n_lenses)
    val_positives = (val.label * val.mask).sum(1)
    ledger.fail(
        ((pool.n_positives == 0) | (pool.n_negatives == 0) | (val_positives == 0)).nonzero()[:, 0],
        "no_data",
    )
    for first, last, count in iteration_groups(schedule):
        started = time.perf_counter()
        lenses = ledger.pending.nonzero()[:, 0]
        if len(lenses) == 0:
            break
        want_pos, want_neg = split_count(count, positive_fraction=positive_fraction)
        n_pos = pool.n_positives[lenses].clamp(max=want_pos)
        n_neg = pool.n_negatives[lenses].clamp(max=want_neg)
        stale = (n_pos == ledger.used_pos[lenses]) & (n_neg == ledger.used_neg[lenses])
        ledger.fail(lenses[stale], "data")  # the pool cannot grow past the last training
        short = ((n_pos < want_pos) | (n_neg < want_neg))[~stale]
        lenses, n_pos, n_neg = lenses[~stale], n_pos[~stale], n_neg[~stale]
        if len(lenses) == 0:
            continue
        result = training.train_lenses(
            x,
            pool.rows(lenses, n_positives=n_pos, n_negatives=n_neg),
            val.subset(lenses),
            seeds=training.mix_seeds(base[lenses], count),
            **options,
        )
        weights.assign(lenses, result.weights)
        ledger.note_training(lenses, result, n_pos=n_pos, n_neg=n_neg)
        gap_ok = result.train_f1 - result.val_f1 <= max_train_val_gap  # (n,)
        # A lens whose pool ran out would train on these same rows at every later iteration, so
        # it is the same lens there: it is judged against every remaining iteration's threshold.
        window = torch.where(
            short, torch.full_like(n_pos, len(schedule)), torch.full_like(n_pos, last)
        )
        iterations = torch.arange(first, len(schedule) + 1)  # (n_left,)
        passes = (
            (result.val_f1[:, None] >= thresholds[first - 1 :][None, :])
            & (iterations[None, :] <= window[:, None])
            & gap_ok[:, None]
        )  # (n, n_left)
        graduated = passes.any(1)  # (n,)
        at = first + passes.long().argmax(1)  # (n,) the first iteration it passes
        ledger.graduated_at[lenses[graduated]] = at[graduated]
        ledger.last_iteration[lenses] = torch.where(graduated, at, window)
        ledger.pending[lenses[graduated]] = False
        ledger.fail(lenses[~graduated & short], "data")
        summary = {
            "first_iteration": first,
            "last_iteration": last,
            "samples": count,
            "n_trained": len(lenses),
            "n_graduated": int(graduated.sum()),
            "n_pending": int(ledger.pending.sum()),
            "seconds": time.perf_counter() - started,
        }
        log.info("graduation at %d rows: %s", count, summary)
        if on_group is not None:
            on_group(summary)
    ledger.fail(ledger.pending.nonzero()[:, 0], "schedule")
    return GraduationResult(weights=weights, records=_records(ledger, tier_of))


def _records(ledger: _Ledger, tier_of: list[Tier]) -> list[dict]:
    records = []
    for lens in range(ledger.n_lenses):
        at = int(ledger.graduated_at[lens])
        trained = int(ledger.n_trainings[lens]) > 0
        records.append(
            {
                "tier": tier_of[at - 1].name if at else FAIL_TIER,
                "graduated": bool(at),
                "iteration": at or None,
                "last_iteration": int(ledger.last_iteration[lens]) or None,
                "samples": int(ledger.used_pos[lens] + ledger.used_neg[lens]),
                "n_positives": int(ledger.used_pos[lens]),
                "n_negatives": int(ledger.used_neg[lens]),
                "val_f1": float(ledger.val_f1[lens]) if trained else None,
                "train_f1": float(ledger.train_f1[lens]) if trained else None,
                "train_val_gap": float(ledger.train_f1[lens] - ledger.val_f1[lens])
                if trained
                else None,
                "best_epoch": int(ledger.best_epoch[lens]) if trained else None,
                "epochs_run": int(ledger.epochs_run[lens]) if trained else None,
                "n_trainings": int(ledger.n_trainings[lens]),
                "fail_reason": None if at else ledger.fail_reason[lens],
                "threshold": training.THRESHOLD,
            }
        )
    return records
