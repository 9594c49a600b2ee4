"""Queued `dvc exp run` trials, shared by the benchmark scripts that compare params as experiments.

Each trial is ``dvc exp run --queue <target> -n <name> -S key=value ...``; one queue worker runs
them in order (`dvc queue start -j 1`), and the finished experiments are read back with
``dvc exp show --json``. A failed trial reports the error lensforge printed, never the metrics of
the commit it started from.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

TASK_LINE = re.compile(r"^\w+\s+(\S+)\s+.*\s(Queued|Running|Success|Failed)\s*$", re.M)


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], capture_output=True, text=True, check=check)


def parse_base(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 for pair in pairs):
        sys.exit(f"--base must be key=value[,key=value...], got {text!r}")
    return dict(pairs)


def queue(trials: dict[str, dict[str, str]], base: dict[str, str], *, target: str) -> None:
    """Queue one experiment per trial name with ``base`` then the trial's own settings."""
    for name, changes in trials.items():
        settings = {**base, **changes}
        args = ["exp", "run", "--queue", target, "-n", name]
        for key, value in settings.items():
            args += ["-S", f"{key}={value}"]
        dvc(*args)
        print(f"queued {name}: {settings or 'params.yaml'}", file=sys.stderr)


def statuses() -> dict[str, str]:
    return dict(TASK_LINE.findall(dvc("queue", "status").stdout))


def run_queue(names: list[str], *, log_name: str) -> float:
    """Start one worker and wait until every named trial succeeded or failed; seconds taken."""
    started = time.monotonic()
    with open(f".dvc/tmp/{log_name}.log", "w") as log:
        subprocess.run(["dvc", "queue", "start", "-j", "1"], stdout=log, stderr=log, check=True)
    done: set[str] = set()
    while True:
        current = statuses()
        for name in names:
            if current.get(name) in ("Success", "Failed") and name not in done:
                done.add(name)
                elapsed = time.monotonic() - started
                print(f"{name}: {current[name]} after {elapsed:.0f} s", file=sys.stderr)
        if len(done) == len(names):
            return time.monotonic() - started
        time.sleep(10)


def experiments() -> dict[str, dict]:
    """Experiment name -> its ``data`` (params, metrics) from ``dvc exp show --json``."""
    shown = json.loads(dvc("exp", "show", "--json", "--all-commits").stdout)
    found = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for rev in experiment["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def metrics_of(data: dict | None, path: str) -> dict | None:
    """The parsed metrics file ``path`` of one experiment's data, or None."""
    return (((data or {}).get("metrics") or {}).get(path) or {}).get("data")


def failure_reason(name: str) -> str:
    logs = dvc("queue", "logs", name, check=False)
    lines = (logs.stdout + logs.stderr).splitlines()
    ours = [line.split("error:", 1)[1].strip() for line in lines if "lensforge: error:" in line]
    errors = ours or [line.split("ERROR", 1)[1].strip(": ") for line in lines if "ERROR" in line]
    return errors[-1][:200] if errors else "failed (no log)"
