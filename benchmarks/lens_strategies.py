"""The balancing experiment (research note 000), redone: one `dvc exp run` per strategy, then a table.

Run from the project root after `make repro` (the activation cache must exist):

    .venv/bin/python benchmarks/lens_strategies.py [--simplex taste_development]

Each trial is `dvc exp run evaluate -n <strategy> -S balance.strategy=<strategy>` on the
experiment's own inputs, whatever the defaults are (`-S data.synsets=imbalanced -S
prompts.overlap=duplicate -S activations.pooling=last -S train.layer=6`); after the first trial
only balance, train and evaluate rerun. Prints neutral F1 and macro-F1 as
mean ± sample std over the seeds in params.yaml, the number of catastrophic runs, the wall time of
each `dvc exp run`, and the note's numbers beside ours.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

STRATEGIES = ("none", "downsample_min", "median_target", "class_weight")
# The balancing experiment's inputs: the imbalanced file, overlap synsets in both poles, the
# last token at layer 6 (pinned, so the experiment stays reproducible whatever the defaults).
EXPERIMENT = (
    "data.synsets=imbalanced",
    "prompts.overlap=duplicate",
    "activations.pooling=last",
    "train.layer=6",
)
# The balancing experiment (HatCat, taste_development, gemma-3-4b-pt layer 12, 80/20 split without validation):
# neutral F1 and overall F1; none is mean ± std over 5 runs, the others single runs.
SEED_000 = {
    "none": ("0.273 ± 0.151", "0.649 ± 0.186"),
    "downsample_min": ("0.377", "0.354"),
    "median_target": ("0.767", "0.826"),
    "class_weight": ("n/a", "n/a"),
}


def run_trial(strategy: str) -> tuple[float, list[str]]:
    started = time.monotonic()
    result = subprocess.run(
        [
            "dvc",
            "exp",
            "run",
            "evaluate",
            "-n",
            f"bal-{strategy}",
            "-S",
            f"balance.strategy={strategy}",
            *(arg for setting in EXPERIMENT for arg in ("-S", setting)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.monotonic() - started, re.findall(r"Running stage '([^']+)'", result.stdout)


def fmt(metrics: dict, key: str) -> str:
    mean, std = metrics.get(f"{key}_mean"), metrics.get(f"{key}_std")
    return (
        "n/a" if mean is None else f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--simplex", default="taste_development")
    args = parser.parse_args()
    rows = []
    for strategy in STRATEGIES:
        seconds, stages = run_trial(strategy)
        evaluated = json.loads(Path("metrics/evaluate.json").read_text())
        flat = {
            k.removeprefix(f"{args.simplex}/"): v
            for k, v in evaluated.items()
            if k.startswith(f"{args.simplex}/")
        }
        balance = json.loads(Path("data/balanced/summary.json").read_text())[args.simplex]
        counts = "/".join(
            str(balance[p]["n_template_rows"]) for p in ("negative", "neutral", "positive")
        )
        rows.append(
            (
                strategy,
                counts,
                fmt(flat, "neutral/f1"),
                fmt(flat, "macro_f1"),
                str(flat.get("n_catastrophic")),
                *SEED_000[strategy],
                f"{seconds:.0f} s ({', '.join(stages) or 'none'})",
            )
        )
    header = (
        "strategy",
        "train rows neg/neu/pos",
        "neutral F1",
        "macro-F1",
        "catastrophic",
        "note neutral F1",
        "note F1",
        "dvc exp run (stages run)",
    )
    print(f"{args.simplex}: test split, mean ± sample std over seeds")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
