"""Parallel trials: two queued experiments run by two DVC queue workers (issue 5).

A temp git copy of the project with the tiny model is reproduced up to ``activations`` (what the
variants share; the rest of the baseline would cost ~13 s more and change nothing here) and
committed; two balance variants of ``evaluate`` go into the queue and ``dvc queue start -j 2``
runs them side by side. Queued experiments run in temporary copies that see only git- and
DVC-tracked files, so this also checks that every input of the pipeline is tracked.
``dvc queue stop`` ends the workers, and the test checks that none lingers.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import psutil

from tests.helpers.dvc_project import dvc_env, make_project, ran_stages, run

STRATEGIES = ("none", "class_weight")
TASK_LINE = re.compile(r"^\w+\s+(\S+)\s+.*\s(Queued|Running|Success|Failed)\s*$", re.M)


def start_workers(root: Path, n_workers: int) -> None:
    """``dvc queue start -j N``, its output to a file: the detached workers inherit the command's
    stdout, so with a pipe (``run``) the call would block until the last worker exits."""
    with (root.parent / "queue_start.log").open("w") as log:
        subprocess.run(
            ["dvc", "queue", "start", "-j", str(n_workers)],
            cwd=root,
            env=dvc_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=60,
        )


def queue_statuses(root: Path) -> dict[str, str]:
    """Experiment name -> status, from ``dvc queue status``."""
    return dict(TASK_LINE.findall(run(["dvc", "queue", "status"], root).stdout))


def wait_for_queue(root: Path, names: list[str], *, timeout_s: float) -> dict[str, str]:
    """Poll ``dvc queue status`` until every named experiment succeeded or failed."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = queue_statuses(root)
        if all(statuses.get(name) in ("Success", "Failed") for name in names):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"queue not done after {timeout_s} s: {statuses}")
        time.sleep(3)  # each status call is a DVC process: polling competes with the workers


def queue_workers(root: Path) -> list[psutil.Process]:
    """The DVC queue worker processes of the repository at ``root``."""
    workers = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = process.info["cmdline"] or []
        if "queue-worker" in cmdline and process.info["cwd"] == str(root):
            workers.append(process)
    return workers


def experiments(shown: list[dict]) -> dict[str, dict]:
    """Experiment name -> its ``data`` (params, metrics) from ``dvc exp show --json``."""
    found = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for rev in experiment["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def test_two_queued_experiments_run_side_by_side_and_report_their_metrics(
    project_root, tiny_model_dir, tmp_path
):
    root = make_project(project_root, tmp_path / "project", tiny_model_dir)
    run(["dvc", "repro", "activations"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "baseline"], root)
    names = {}
    for strategy in STRATEGIES:
        queued = run(
            ["dvc", "exp", "run", "--queue", "evaluate", "-S", f"balance.strategy={strategy}"], root
        )
        names[strategy] = re.search(r"Queued experiment '([^']+)'", queued.stdout).group(1)

    try:
        start_workers(root, 2)
        statuses = wait_for_queue(root, list(names.values()), timeout_s=240)
    finally:
        run(["dvc", "queue", "stop", "--kill"], root)
    deadline = time.monotonic() + 30
    while queue_workers(root) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert queue_workers(root) == []

    for name in names.values():
        logs = run(["dvc", "queue", "logs", name], root).stdout
        assert statuses[name] == "Success", logs[-3000:]
        # The baseline's cache serves everything upstream: only the changed branch reruns.
        assert ran_stages(logs) == ["balance", "train", "evaluate"]
    shown = experiments(json.loads(run(["dvc", "exp", "show", "--json"], root).stdout))
    for strategy, name in names.items():
        params = shown[name]["params"]["params.yaml"]["data"]
        metrics = shown[name]["metrics"]
        assert params["balance"]["strategy"] == strategy
        assert metrics["metrics/balance.json"]["data"]["strategy"] == strategy
        assert metrics["metrics/train.json"]["data"]["n_processes"] == 1
        evaluated = metrics["metrics/evaluate.json"]["data"]
        assert 0.0 <= evaluated["taste_development/macro_f1_mean"] <= 1.0
    run(["dvc", "queue", "remove", "--all"], root)
    assert queue_statuses(root) == {}
