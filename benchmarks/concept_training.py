"""Concept lenses: the batched trainer against the same lenses trained one at a time in a loop.

    .venv/bin/python benchmarks/concept_training.py [--lenses 300] [--d-model 640] [--rows 40]

The same random vectors for both: ``--lenses`` concepts each own ``--prompts`` rows of X (their
activations shifted along a direction of the concept, plus noise), and a lens trains on
``--rows`` rows (its own train prompts and other concepts' prompts as negatives) with
validation rows held apart. The loop is ``training.fit_one_lens`` (an ``nn.Module``,
``torch.optim.Adam`` and ``EarlyStopping`` per lens, as a one-lens trainer is written); the
batched trainer is ``training.train_lenses``, every lens in one tensor program. Same
hyperparameters, initial weights and batch order per lens for both.

Each measurement runs in a fresh process so that its peak memory (``ru_maxrss``) is its own:
"peak MB" is the peak resident memory over the process's resident memory once the data is
built, i.e. what training itself adds. Threads: the loop runs single-threaded (lensforge's
convention for tiny lens steps: a second thread only waits), the batched trainer with 1 and 2.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from lensforge.concepts import graduation, training


def build_problem(args) -> tuple[torch.Tensor, training.LensRows, training.LensRows]:
    """Shared rows and each lens's train / validation rows (fixed seed)."""
    g = torch.Generator().manual_seed(0)
    n_rows = args.lenses * args.prompts
    owner = torch.arange(n_rows) // args.prompts  # (n_rows,) the concept a prompt is about
    directions = torch.randn(args.lenses, args.d_model, generator=g)  # (n_lenses, d_model)
    directions = torch.nn.functional.normalize(directions, dim=1)
    x = torch.randn(n_rows, args.d_model, generator=g) + args.signal * directions[owner]
    n_own = args.prompts * 3 // 5  # 60 % of a concept's prompts train, 20 % validate
    n_own_val = args.prompts // 5
    train_rows, train_labels, val_rows, val_labels = [], [], [], []
    for lens in range(args.lenses):
        own = torch.arange(lens * args.prompts, (lens + 1) * args.prompts)
        others = torch.randperm(n_rows, generator=g)
        others = others[owner[others] != lens]
        train_neg = args.rows - n_own
        val_neg = 2 * n_own_val
        train_rows.append(torch.cat([own[:n_own], others[:train_neg]]))
        train_labels.append(torch.cat([torch.ones(n_own), torch.zeros(train_neg)]))
        val_rows.append(torch.cat([own[n_own : n_own + n_own_val], others[-val_neg:]]))
        val_labels.append(torch.cat([torch.ones(n_own_val), torch.zeros(val_neg)]))
    return (
        x,
        training.LensRows.from_lists(train_rows, train_labels),
        training.LensRows.from_lists(val_rows, val_labels),
    )


def options(args, kind: str, x: torch.Tensor, train_rows: torch.Tensor) -> dict:
    """Training keywords; standardisation from the train split's rows ``train_rows``."""
    return {
        "kind": kind,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "feature_stats": training.standardization(x, train_rows),
        "dropout": training.MLP_DROPOUT,
    }


def sample(rows: torch.Tensor, n: int, *, generator: torch.Generator) -> torch.Tensor:
    """Up to ``n`` distinct entries of ``rows`` in random order (draws with replacement,
    deduplicated in draw order: a full permutation of millions of rows per lens is too slow)."""
    drawn = rows[torch.randint(0, len(rows), (2 * n,), generator=generator)].tolist()
    return torch.tensor(list(dict.fromkeys(drawn))[:n], dtype=torch.long)


def graduation_problem(args, n_lenses: int):
    """Pools for graduation: concept ``l`` owns ``args.prompts`` rows (60 % train candidates,
    20 % validation); its negatives are up to 640 other concepts' train rows, and twice its
    validation positives from other concepts' validation rows."""
    g = torch.Generator().manual_seed(1)
    n_rows = n_lenses * args.prompts
    directions = torch.nn.functional.normalize(
        torch.randn(n_lenses, args.d_model, generator=g), dim=1
    )
    owner = torch.arange(n_rows) // args.prompts
    x = torch.randn(n_rows, args.d_model, generator=g) + args.signal * directions[owner]
    n_train, n_val = args.prompts * 3 // 5, args.prompts // 5
    blocks = torch.arange(n_rows).reshape(n_lenses, args.prompts)
    train_part, val_part = (
        blocks[:, :n_train].flatten(),
        blocks[:, n_train : n_train + n_val].flatten(),
    )
    positives, negatives, val_rows, val_labels = [], [], [], []
    for lens in range(n_lenses):
        other_train = train_part[owner[train_part] != lens]
        other_val = val_part[owner[val_part] != lens]
        positives.append(blocks[lens, :n_train])
        negatives.append(sample(other_train, 640, generator=g))
        val_negatives = sample(other_val, 2 * n_val, generator=g)
        val_rows.append(torch.cat([blocks[lens, n_train : n_train + n_val], val_negatives]))
        val_labels.append(torch.cat([torch.ones(n_val), torch.zeros(2 * n_val)]))
    pool = graduation.Pool.from_lists(positives, negatives)
    return x, pool, training.LensRows.from_lists(val_rows, val_labels), train_part


def run_graduation(args) -> None:
    """The adaptive loop (exponential schedule, default tiers) on ``--graduation`` lens counts."""
    torch.set_num_threads(args.graduation_threads)
    print(
        f"\ngraduation: exponential schedule, {args.prompts} prompts per concept, "
        f"{args.graduation_threads} thread(s), at most {args.max_lenses} lenses per program"
    )
    header = f"{'kind':<7}{'lenses':>7}{'seconds':>9}  {'lenses trained per count':<26}tiers"
    print(header)
    print("-" * len(header))
    for kind in args.kinds:
        for n_lenses in args.graduation:
            x, pool, val, train_rows = graduation_problem(args, n_lenses)
            groups: list[dict] = []
            started = time.perf_counter()
            result = graduation.graduate(
                x,
                pool,
                val,
                schedule=graduation.exponential_schedule(**graduation.EXPONENTIAL),
                tiers=graduation.DEFAULT_TIERS,
                max_train_val_gap=0.2,
                positive_fraction=0.5,
                seeds=0,
                train_options={
                    **options(args, kind, x, train_rows),
                    "max_lenses": args.max_lenses,
                },
                on_group=groups.append,
            )
            seconds = time.perf_counter() - started
            trainings = "+".join(str(g["n_trained"]) for g in groups)
            tiers = result.tier_counts()
            print(f"{kind:<7}{n_lenses:>7}{seconds:>9.1f}  {trainings:<26}{tiers}")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_trainer(mode: str, x, train, val, *, seeds, options) -> tuple[list, list]:
    """Train every lens with ``mode`` (loop or batched); per-lens validation F1 and epochs."""
    if mode == "batched":
        result = training.train_lenses(x, train, val, seeds=seeds, **options)
        return result.val_f1.tolist(), result.epochs_run.tolist()
    val_f1, epochs = [], []
    for lens in range(len(train)):
        rows, labels = train.rows_of(lens)
        val_rows, val_labels = val.rows_of(lens)
        one = training.fit_one_lens(
            x[rows], labels, x[val_rows], val_labels, seed=int(seeds[lens]), **options
        )
        val_f1.append(float(one.val_f1[0]))
        epochs.append(int(one.epochs_run[0]))
    return val_f1, epochs


def measure(args) -> dict:
    """One measurement in this process: ``args.mode`` (loop or batched) for ``args.kind``."""
    torch.set_num_threads(args.threads)
    x, train, val = build_problem(args)
    kw = options(args, args.kind, x, train.index[train.mask])
    seeds = training.lens_seeds(0, len(train))
    warm = torch.arange(2)
    training.train_lenses(x, train.subset(warm), val.subset(warm), seeds=seeds[warm], **kw)
    rows, labels = train.rows_of(0)
    val_rows, val_labels = val.rows_of(0)
    training.fit_one_lens(
        x[rows], labels, x[val_rows], val_labels, seed=int(seeds[0]), **kw
    )  # imports torch.optim's lazy modules outside the timing
    base = rss_mb()
    seconds = []
    for _ in range(args.repeat):  # the machine is shared: keep the fastest of a few runs
        started = time.perf_counter()
        val_f1, epochs = run_trainer(args.mode, x, train, val, seeds=seeds, options=kw)
        seconds.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": min(seconds),
        "peak_mb": max(0.0, peak - base),
        "val_f1": sum(val_f1) / len(val_f1),
        "epochs": sum(epochs) / len(epochs),
    }


def run_child(args, *, kind: str, mode: str, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", "--kind", kind, "--mode", mode]
    command += ["--threads", str(threads)]
    for name in ("lenses", "d_model", "rows", "prompts", "signal", "lr", "batch_size", "repeat"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--max-epochs", str(args.max_epochs), "--patience", str(args.patience)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lenses", type=int, default=300)
    parser.add_argument("--d-model", type=int, default=640)
    parser.add_argument("--rows", type=int, default=40, help="train rows per lens")
    parser.add_argument("--prompts", type=int, default=20, help="prompts each concept owns")
    parser.add_argument("--signal", type=float, default=5.0, help="shift of a concept's rows")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the fastest counts")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=50)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", default=list(training.LENS_KINDS))
    parser.add_argument(
        "--graduation", nargs="*", type=int, default=[], help="lens counts to graduate (table 2)"
    )
    parser.add_argument("--max-lenses", type=int, default=1000, help="lenses per program")
    parser.add_argument("--graduation-threads", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    print(
        f"{args.lenses} lenses, d_model {args.d_model}, {args.rows} train rows per lens, "
        f"batch {args.batch_size}, max {args.max_epochs} epochs, patience {args.patience}, "
        f"fastest of {args.repeat} runs"
    )
    header = (
        f"{'kind':<7}{'trainer':<9}{'threads':>8}{'seconds':>9}{'lenses/s':>10}{'ratio':>8}"
        f"{'peak MB':>9}{'val F1':>8}{'epochs':>8}"
    )
    print(header)
    print("-" * len(header))
    for kind in args.kinds if args.lenses else ():  # --lenses 0: the graduation table only
        loop = run_child(args, kind=kind, mode="loop", threads=1)
        runs = [("loop", 1, loop)]
        runs += [
            ("batched", t, run_child(args, kind=kind, mode="batched", threads=t)) for t in (1, 2)
        ]
        for mode, threads, r in runs:
            print(
                f"{kind:<7}{mode:<9}{threads:>8}{r['seconds']:>9.2f}"
                f"{args.lenses / r['seconds']:>10.0f}{loop['seconds'] / r['seconds']:>7.1f}x"
                f"{r['peak_mb']:>9.0f}{r['val_f1']:>8.3f}{r['epochs']:>8.1f}"
            )
    if args.graduation:
        run_graduation(args)


if __name__ == "__main__":
    main()
