"""A stage killed at any moment leaves each output whole (issue 8, section 5).

The real ``activations`` and ``train`` stages run as ``python -m lensforge.cli --root ROOT STAGE``
and are SIGKILLed at several moments drawn from a seeded RNG, spread over a timeline measured on
one uninterrupted run of the same stage (the reference): once while it starts or computes, twice
while it writes its output folder (``<out>.tmp`` exists), once after the folder is in place, while
the metrics are written. Before the kills the project holds a previous complete version made with
other settings. After every kill:

- the output is the previous version, the reference version, or absent (a kill between the two
  renames of ``atomic_dir``); it is never a mix, and whatever is there loads: the cache's index,
  manifest and every shard; every lens with the weights' sha256 its card records;
- beside the output there is nothing but its ``.tmp`` / ``.old`` leftovers (never read as it);
- metrics come last: if the stage's metrics changed, the output is the reference version.

Then one uninterrupted run gives the reference's bytes and the reference's metrics (timings
aside), and leaves no leftover.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from accelerate.state import AcceleratorState

from lensforge.activations import cache
from lensforge.core import params as params_mod
from lensforge.core import paths
from lensforge.lenses import models
from lensforge.stages import activations, subject_model, train
from tests.helpers.lens_data import make_project
from tests.helpers.tiny_model import WORDS

pytestmark = pytest.mark.slow

N_PROMPTS = 3000  # with batches of 4 and shards of 64, the tiny model writes for about a second
TIMING_KEYS = {"seconds", "prompts_per_second"}
POLL_S = 0.001


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Seconds from launch until ``<out>.tmp`` appears, until it is renamed, until the exit."""

    tmp_appears: float
    tmp_renamed: float
    exits: float


def cli_env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LENSFORGE_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env


def launch(root: Path, stage: str, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lensforge.cli", "--root", str(root), stage],
            env=cli_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_until(condition, proc: subprocess.Popen, *, timeout_s: float = 120.0) -> bool:
    """Poll ``condition`` until it holds (True) or the process has ended (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the stage neither progressed nor ended in time")
        time.sleep(POLL_S)
    return True


def measured_run(root: Path, stage: str, out: Path) -> Timeline:
    """One uninterrupted run of ``stage`` and its timeline."""
    tmp = out.with_name(out.name + ".tmp")
    started = time.monotonic()
    proc = launch(root, stage, root / "stage.log")
    assert wait_until(tmp.exists, proc), (root / "stage.log").read_text()[-3000:]
    appears = time.monotonic() - started
    wait_until(lambda: not tmp.exists(), proc)
    renamed = time.monotonic() - started
    assert proc.wait(timeout=300) == 0, (root / "stage.log").read_text()[-3000:]
    return Timeline(appears, renamed, time.monotonic() - started)


def kill_moments(timeline: Timeline, rng: random.Random) -> list[tuple[str, float]]:
    """``(anchor, seconds after it)`` for four kills: while starting or computing, twice while
    writing (each half of the write phase), once after the rename."""
    write = timeline.tmp_renamed - timeline.tmp_appears
    after = timeline.exits - timeline.tmp_renamed
    return [
        ("launch", rng.uniform(0.3, 1.0) * timeline.tmp_appears),
        ("tmp", rng.uniform(0.0, 0.5) * write),
        ("tmp", rng.uniform(0.5, 1.0) * write),
        ("tmp", write + rng.uniform(0.0, 0.8) * after),
    ]


def touched_since(folder: Path, since_ns: int) -> bool:
    """Whether ``folder`` exists and was made or changed since ``since_ns``: this run's
    ``atomic_dir`` has started (it clears an earlier kill's ``.tmp`` and makes a new one)."""
    try:
        return folder.stat().st_ctime_ns >= since_ns
    except FileNotFoundError:
        return False


def killed_run(root: Path, stage: str, out: Path, *, anchor: str, delay: float) -> bool:
    """Launch ``stage`` and SIGKILL it ``delay`` s after launch or after ``<out>.tmp`` appears.

    Returns whether the process was still running when the signal went out.
    """
    tmp = out.with_name(out.name + ".tmp")
    time.sleep(0.05)  # whatever an earlier kill left in ``tmp`` is now clearly older than this run
    launched_ns = time.time_ns() - 10_000_000  # file times come from a coarse clock: 10 ms slack
    proc = launch(root, stage, root / "stage.log")
    if anchor == "tmp" and not wait_until(lambda: touched_since(tmp, launched_ns), proc):
        raise AssertionError((root / "stage.log").read_text()[-3000:])
    time.sleep(delay)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return running


def tree_hashes(out: Path) -> dict[str, str] | None:
    """Relative path -> sha256 of every file under ``out``; None when ``out`` is absent."""
    if not out.exists():
        return None
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def snapshot(path: Path) -> object:
    """The bytes of a file, the hashes of a folder's files, or None when absent."""
    if path.is_dir():
        return tree_hashes(path)
    return path.read_bytes() if path.exists() else None


def only_leftovers_beside(out: Path) -> None:
    allowed = {out.name, f"{out.name}.tmp", f"{out.name}.old"}
    assert {p.name for p in out.parent.iterdir() if p.name.startswith(out.name)} <= allowed


def without_timings(metrics: dict) -> dict:
    return {
        k: without_timings(v) if isinstance(v, dict) else v
        for k, v in metrics.items()
        if k not in TIMING_KEYS
    }


def check_kills(
    root: Path, stage: str, out: Path, metrics: list[Path], *, versions: dict, moments, load
) -> list[bool]:
    """Kill ``stage`` at each moment and check the invariants of the module docstring.

    Returns, per kill, whether it hit a running process and which version it left.
    """
    outcomes = []
    for anchor, delay in moments:
        metrics_before = [snapshot(m) for m in metrics]
        running = killed_run(root, stage, out, anchor=anchor, delay=delay)
        state = tree_hashes(out)
        name = next((n for n, v in versions.items() if v == state), None)
        assert name is not None, f"{stage} killed {delay:.3f} s after {anchor}: torn output"
        if state is not None:
            load(out)
        only_leftovers_beside(out)
        metrics_after = [snapshot(m) for m in metrics]
        if metrics_after != metrics_before:
            assert name == "reference", f"{stage}: metrics changed before its output ({name})"
        outcomes.append((running, name))
    return outcomes


def check_final_run(root: Path, stage: str, out: Path, *, reference: dict, metrics: Path, ref):
    subprocess.run(
        [sys.executable, "-m", "lensforge.cli", "--root", str(root), stage],
        env=cli_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert tree_hashes(out) == reference
    final = json.loads(metrics.read_text(encoding="utf-8"))
    assert without_timings(final) == without_timings(ref)
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name)) == [out.name]
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


# ---- activations ---------------------------------------------------------------------------------


def write_big_pool(root: Path, n_prompts: int) -> None:
    rng = np.random.default_rng(0)
    words = [w for w in WORDS if w.isalpha()]
    poles = ["negative", "neutral", "positive"]
    pool = pd.DataFrame(
        {
            "prompt_id": [f"taste|{poles[i % 3]}|syn{i}|0" for i in range(n_prompts)],
            "simplex": "taste",
            "pole": [poles[i % 3] for i in range(n_prompts)],
            "label": [i % 3 for i in range(n_prompts)],
            "poles": [poles[i % 3] for i in range(n_prompts)],
            "synset_key": [f"syn{i}" for i in range(n_prompts)],
            "group": [f"syn{i}" for i in range(n_prompts)],
            "kind": "definitional",
            "split": [("train", "validation", "test")[i % 3] for i in range(n_prompts)],
            "rank": 0,
            "text": [
                " ".join(rng.choice(words, size=rng.integers(4, 30))) for _ in range(n_prompts)
            ],
        }
    )
    (root / paths.PROMPTS_DIR).mkdir(parents=True)
    pool.to_csv(root / paths.PROMPT_POOL, index=False)


def activations_root(root: Path, project_root: Path, model_dir: Path) -> params_mod.Params:
    raw = yaml.safe_load((project_root / paths.PARAMS).read_text(encoding="utf-8"))
    raw["model"].update({"source": "hf", "name_or_path": str(model_dir), "layers": [2]})
    raw["activations"].update({"batch_size": 4, "shard_size": 64, "dtype": "float16"})
    root.mkdir(parents=True)
    (root / paths.PARAMS).write_text(yaml.safe_dump(raw), encoding="utf-8")
    write_big_pool(root, N_PROMPTS)
    return params_mod.load(root / paths.PARAMS)


def load_cache(act_dir: Path) -> None:
    index, manifest = cache.read_index(act_dir), cache.read_manifest(act_dir)
    assert manifest["shards"] == sorted(set(index["shard"]))
    layer = manifest["layers"][0]  # the previous version caches another layer
    vectors = cache.read_vectors(act_dir, index, layer=layer)  # (n_prompts, d_model): every shard
    assert vectors.shape[0] == len(index) == manifest["n_prompts"]
    names = {paths.ACTIVATION_INDEX_NAME, paths.ACTIVATION_MANIFEST_NAME, *manifest["shards"]}
    assert {p.name for p in act_dir.iterdir()} == names


def test_killing_the_activations_stage_never_leaves_a_torn_cache(
    tmp_path, project_root, tiny_model_dir
):
    ref_root, root = tmp_path / "reference", tmp_path / "killed"
    params = activations_root(ref_root, project_root, tiny_model_dir)
    activations_root(root, project_root, tiny_model_dir)
    subject_model.run(params, root=ref_root)
    shutil.copytree(ref_root / paths.SUBJECT_MODEL_DIR, root / paths.SUBJECT_MODEL_DIR)
    out = paths.ACTIVATIONS_DIR

    timeline = measured_run(ref_root, "activations", ref_root / out)
    reference = tree_hashes(ref_root / out)
    ref_metrics = json.loads((ref_root / paths.ACTIVATIONS_METRICS).read_text(encoding="utf-8"))
    previous_params = dataclasses.replace(
        params, model=dataclasses.replace(params.model, layers=(1,))
    )
    activations.run(previous_params, root=root)  # the previous version: another layer
    AcceleratorState._reset_state(True)
    previous = tree_hashes(root / out)
    assert previous != reference

    moments = kill_moments(timeline, random.Random(8))
    outcomes = check_kills(
        root, "activations", root / out, [root / paths.ACTIVATIONS_METRICS],
        versions={"previous": previous, "reference": reference, "absent": None},
        moments=moments, load=load_cache,
    )  # fmt: skip
    assert sum(running for running, _ in outcomes) >= 3, f"most kills must hit a run: {outcomes}"
    check_final_run(root, "activations", root / out, reference=reference,
                    metrics=root / paths.ACTIVATIONS_METRICS, ref=ref_metrics)  # fmt: skip


# ---- train -----------------------------------------------------------------------------------


def load_lenses(lenses_dir: Path) -> None:
    cards = sorted(lenses_dir.rglob(models.CARD_NAME))
    assert cards
    for card_path in cards:
        models.load_lens(card_path.parent)  # checks the weights' sha256 against the card
        assert sorted(p.name for p in card_path.parent.iterdir()) == sorted(
            [models.CARD_NAME, models.WEIGHTS_NAME]
        )


TRAIN_SETTINGS = {"seeds": list(range(8)), "max_epochs": 20, "patience": 20}


def test_killing_the_train_stage_never_leaves_torn_lenses(tmp_path, project_root):
    ref_root, root = tmp_path / "reference", tmp_path / "killed"
    make_project(ref_root, project_root, **TRAIN_SETTINGS)
    params = make_project(root, project_root, **TRAIN_SETTINGS)
    out = paths.LENSES_DIR

    timeline = measured_run(ref_root, "train", ref_root / out)
    reference = tree_hashes(ref_root / out)
    ref_metrics = json.loads((ref_root / paths.TRAIN_METRICS).read_text(encoding="utf-8"))
    previous_params = dataclasses.replace(
        params, train=dataclasses.replace(params.train, seeds=[11], max_epochs=3)
    )
    try:
        train.run(previous_params, root=root)  # the previous version: another seed
    finally:
        AcceleratorState._reset_state(True)
    previous = tree_hashes(root / out)

    moments = kill_moments(timeline, random.Random(9))
    outcomes = check_kills(
        root, "train", root / out, [root / paths.TRAIN_METRICS, root / paths.TRAIN_LIVE_DIR],
        versions={"previous": previous, "reference": reference, "absent": None},
        moments=moments, load=load_lenses,
    )  # fmt: skip
    assert sum(running for running, _ in outcomes) >= 3, f"most kills must hit a run: {outcomes}"
    check_final_run(root, "train", root / out, reference=reference,
                    metrics=root / paths.TRAIN_METRICS, ref=ref_metrics)  # fmt: skip
