"""The loss-scale story of the span model as queued `dvc exp run`s: the collapse and its cures.

Run from the project root of a committed checkout whose pipeline is reproduced (`make repro`):

    .venv/bin/python benchmarks/span_collapse.py              # queue, run, print the table
    .venv/bin/python benchmarks/span_collapse.py --show-only  # table of finished trials

Trials (each with ``train_spans.seeds=[0,1,2]`` on top of ``--base``):

- ``raw-uncertainty``: the note's setup: every head, countdown on the raw [-20, 20] scale,
  uncertainty weighting, no normalisation;
- ``raw-fixed``: the same without uncertainty weighting (every task weight 1): nothing
  down-weights the countdown;
- ``unit``: countdown mapped to [0, 1] (the note's option 2);
- ``unit-normalised``: ``unit`` plus per-task loss normalisation by the running mean;
- ``span-only``: the membership head alone (the note's option 3).

Printed per trial (test split; mean ± sample std over the 3 seeds): span F1 / precision / recall
at IoU 0.5 (threshold chosen on validation), per-bar AUROC, mean membership probability on
in-span and on out-of-span bars, the countdown's share of the weighted loss and of the raw losses at the best epoch,
and on how many seeds the collapse rule holds (test in-span minus out-of-span mean probability
below ``evaluate_spans.collapse_separation``, the diagnostic's rule).
"""

from __future__ import annotations

import argparse
import sys

from dvc_queue import (
    experiments,
    failure_reason,
    metrics_of,
    parse_base,
    queue,
    run_queue,
    statuses,
)

PREFIX = "span-"
SEEDS = "[0,1,2]"
TRIALS = {
    "raw-uncertainty": {
        "train_spans.countdown_scale": "raw",
        "train_spans.task_weighting.method": "uncertainty",
        "train_spans.task_weighting.normalize": "false",
    },
    "raw-fixed": {
        "train_spans.countdown_scale": "raw",
        "train_spans.task_weighting.method": "fixed",
        "train_spans.task_weighting.normalize": "false",
    },
    "unit": {
        "train_spans.countdown_scale": "unit",
        "train_spans.task_weighting.normalize": "false",
    },
    "unit-normalised": {
        "train_spans.countdown_scale": "unit",
        "train_spans.task_weighting.normalize": "true",
    },
    "span-only": {"train_spans.tasks": "[span]", "train_spans.task_weighting.normalize": "false"},
}
TRAIN_METRICS = "metrics/train_spans.json"
EVALUATE_METRICS = "metrics/evaluate_spans.json"


def _spread(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.3f} ± {std:.3f}"


def _shares(train: dict, key: str) -> list[float]:
    return [run[key].get("countdown", 0.0) for run in train["runs"].values()]


def row(name: str, train: dict, evaluate: dict, *, collapse_below: float) -> list[str]:
    per_seed = list(evaluate["runs"].values())
    test = [seed["test"] for seed in per_seed]
    # `dvc exp show` keeps numbers only (not the diagnostics' words): apply the same rule here
    collapsed = sum(t["p_in"] - t["p_out"] < collapse_below for t in test)
    return [
        name.removeprefix(PREFIX),
        _spread([t["span_f1"] for t in test]),
        _spread([t["span_precision"] for t in test]),
        _spread([t["span_recall"] for t in test]),
        _spread([t["bar_auroc"] for t in test]),
        _spread([t["p_in"] for t in test]),
        _spread([t["p_out"] for t in test]),
        _spread(_shares(train, "loss_share")),
        _spread(_shares(train, "raw_loss_share")),
        f"{collapsed}/{len(per_seed)}",
    ]


def table(names: list[str], found: dict[str, dict], status: dict[str, str]) -> list[str]:
    header = (
        "trial",
        "span F1",
        "precision",
        "recall",
        "bar AUROC",
        "p in span",
        "p out of span",
        "countdown share (weighted)",
        "countdown share (raw)",
        "collapse",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        train = metrics_of(found.get(name), TRAIN_METRICS)
        evaluate = metrics_of(found.get(name), EVALUATE_METRICS)
        if status.get(name) != "Success" or not train or not evaluate:
            reason = failure_reason(name) if status.get(name) == "Failed" else "not run"
            lines.append(f"| {name.removeprefix(PREFIX)} | {reason} |" + " |" * 8)
            continue
        params = ((found[name].get("params") or {}).get("params.yaml") or {}).get("data") or {}
        below = params.get("evaluate_spans", {}).get("collapse_separation", 0.05)
        cells = row(name, train, evaluate, collapse_below=below)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--base", default="", help="params every trial sets: key=value,...")
    parser.add_argument("--show-only", action="store_true", help="print the table, run nothing")
    parser.add_argument("--suffix", default="", help="appended to the trial names (a new base)")
    args = parser.parse_args()
    names = [PREFIX + name + args.suffix for name in TRIALS]
    seconds = None
    if not args.show_only:
        base = {"train_spans.seeds": SEEDS, **parse_base(args.base)}
        trials = {PREFIX + n + args.suffix: changes for n, changes in TRIALS.items()}
        queue(trials, base, target="evaluate_spans")
        seconds = run_queue(names, log_name="span_collapse_queue")
    print(f"span model trials, base: train_spans.seeds={SEEDS} {args.base}")
    print("test split; mean ± sample std over 3 seeds; shares at each seed's best epoch")
    print("\n".join(table(names, experiments(), statuses())))
    if seconds is not None:
        print(f"\n{len(names)} trials in {seconds / 60:.1f} min (one queue worker)")
    if any(statuses().get(name) == "Failed" for name in names):
        sys.exit(1)


if __name__ == "__main__":
    main()
