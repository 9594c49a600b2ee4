"""Lens quality as a measured search: the levers of a simplex lens as queued `dvc exp run`s, one table.

Run from the project root of a committed checkout whose pipeline is reproduced (`make repro`):

    .venv/bin/python benchmarks/lens_quality.py --group overlap
    .venv/bin/python benchmarks/lens_quality.py --group levers --base data.synsets=enriched,prompts.overlap=soft
    .venv/bin/python benchmarks/lens_quality.py --show-only --group overlap   # table of finished trials

Every trial is `dvc exp run --queue evaluate -n lq-<name> -S ...` on top of ``--base``; the queue
then runs them one at a time (`dvc queue start -j 1`). Only what a trial changes reruns: DVC's
run cache restores a stage whose code, inputs and params it has seen, so the activations of
one (data, layer, pooling) choice are computed once whatever the other levers say.

Printed per trial and simplex (test split, mean ± sample std over the seeds in params.yaml): the
per-pole F1 and macro-F1, the set-valued macro-F1 (a prediction of any pole an overlap synset
applies to counts), the macro-F1 on single-pole rows (rows every overlap mode shares), the tier
of the validation macro-F1 (what selection may use) and the tier of the test macro-F1. A trial
that fails prints the reason (e.g. a pole left without train synsets).
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

POLES = ("negative", "neutral", "positive")
SIMPLEXES = ("taste_development", "social_evaluation", "threat_perception")
PREFIX = "lq-"
# Lever groups: trial name -> the params it sets on top of --base.
GROUPS = {
    "overlap": {
        "imbalanced-duplicate": {},
        "imbalanced-soft": {"prompts.overlap": "soft"},
        "imbalanced-primary": {"prompts.overlap": "primary"},
        "imbalanced-exclude": {"prompts.overlap": "exclude"},
        "enriched-duplicate": {"data.synsets": "enriched"},
        "enriched-soft": {"data.synsets": "enriched", "prompts.overlap": "soft"},
        "enriched-primary": {"data.synsets": "enriched", "prompts.overlap": "primary"},
        "enriched-primary-polar": {
            "data.synsets": "enriched",
            "prompts.overlap": "primary",
            "prompts.overlap_primary": "polar",
        },
        "enriched-exclude": {"data.synsets": "enriched", "prompts.overlap": "exclude"},
    },
    "levers": {
        "base": {},
        "balance-none": {"balance.strategy": "none"},
        "balance-downsample_min": {"balance.strategy": "downsample_min"},
        "balance-class_weight": {"balance.strategy": "class_weight"},
        "base_prompts-8": {"balance.base_prompts": "8"},
        "mlp": {"train.lens.kind": "mlp"},
        "two_head": {"train.lens.kind": "two_head"},
        "pooling-mean": {"activations.pooling": "mean"},
        "layer-3": {"train.layer": "3"},
        "layer-9": {"train.layer": "9"},
        "layer-12": {"train.layer": "12"},
        "margin_weight-2": {"train.loss.margin_weight": "2.0"},
        "ortho_weight-0.1": {"train.loss.ortho_weight": "0.1"},
    },
}


def fmt(metrics: dict, key: str) -> str:
    mean, std = metrics.get(f"{key}_mean"), metrics.get(f"{key}_std")
    if mean is None:
        return "n/a"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def table(names: list[str], found: dict[str, dict], status: dict[str, str]) -> list[str]:
    header = (
        "trial",
        "simplex",
        "negative F1",
        "neutral F1",
        "positive F1",
        "macro-F1",
        "set-valued macro-F1",
        "single-pole macro-F1",
        "val macro-F1",
        "val tier",
        "test tier",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        scores = metrics_of(found.get(name), "metrics/evaluate.json")
        if status.get(name) != "Success" or not scores:
            # a failed trial shows its reason, never the metrics of the commit it started from
            reason = failure_reason(name) if status.get(name) == "Failed" else "not run"
            lines.append(f"| {name.removeprefix(PREFIX)} | all | {reason} |" + " |" * 8)
            continue
        for simplex in SIMPLEXES:
            flat = {
                k.removeprefix(f"{simplex}/"): v
                for k, v in scores.items()
                if k.startswith(f"{simplex}/")
            }
            cells = [fmt(flat, f"{pole}/f1") for pole in POLES]
            cells += [
                fmt(flat, "macro_f1"),
                fmt(flat, "set/macro_f1"),
                fmt(flat, "single_pole/macro_f1"),
                fmt(flat, "val_macro_f1"),
                str(flat.get("tier")),
                str(flat.get("test_tier")),
            ]
            lines.append(f"| {name.removeprefix(PREFIX)} | {simplex} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--group", choices=sorted(GROUPS), required=True)
    parser.add_argument("--base", default="", help="params every trial sets: key=value,...")
    parser.add_argument("--only", default="", help="comma-separated trial names of the group")
    parser.add_argument("--show-only", action="store_true", help="print the table, run nothing")
    parser.add_argument("--suffix", default="", help="appended to the trial names (a new base)")
    args = parser.parse_args()
    trials = GROUPS[args.group]
    if args.only:
        unknown = sorted(set(args.only.split(",")) - set(trials))
        if unknown:
            sys.exit(f"unknown trials {unknown}; the group has {sorted(trials)}")
        trials = {name: trials[name] for name in args.only.split(",")}
    trials = {name + args.suffix: changes for name, changes in trials.items()}
    names = [PREFIX + name for name in trials]
    seconds = None
    if not args.show_only:
        queue(
            {PREFIX + name: changes for name, changes in trials.items()},
            parse_base(args.base),
            target="evaluate",
        )
        seconds = run_queue(names, log_name="lens_quality_queue")
    print(f"group {args.group}, base: {args.base or 'params.yaml'}")
    print("test split; mean ± sample std over seeds; tiers: val = validation macro-F1 (selection)")
    print("\n".join(table(names, experiments(), statuses())))
    if seconds is not None:
        print(f"\n{len(names)} trials in {seconds / 60:.1f} min (one queue worker)")


if __name__ == "__main__":
    main()
