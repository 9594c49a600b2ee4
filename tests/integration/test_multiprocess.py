"""Two CPU processes against one: extraction, lens training and fine-tuning (issue 5).

The stages run under a real ``accelerate launch --multi_gpu --num_processes 2`` with
``ACCELERATE_USE_CPU=1`` (gloo), the launch form that really starts two connected processes (see
NOTES.md for the forms that silently run one): every test asserts the world size was 2. Each
launch happens once per module (module-scoped fixtures); the one-process references run in this
process. Both sides use one thread per process (``OMP_NUM_THREADS=1``, ``LENSFORGE_THREADS=1``):
extraction is then bit-for-bit identical. With two intra-op threads in the single process the
same matmuls split their sums differently and the vectors differ (measured: up to 9.5e-7 on
values up to 5.5), so "identical" holds at equal threads per process only.

Fine-tuning matches one process only without dropout: every process draws its own masks for its
share of the batch (measured with dropout 0.1: weights differ by 0.03), so the finetune checks
switch dropout off, in the encoder and in the heads.

"Identical weights on both ranks" needs each rank's weights, which the stages keep to themselves
(only the main process writes), so those checks launch the cores (``training.fit``,
``finetune_loop.train``) with ``accelerate.debug_launcher`` and gather a copy from every rank.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from accelerate import debug_launcher
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lensforge.activations import cache
from lensforge.adjudication import encoders, finetune_loop, tasks
from lensforge.core import params as params_mod
from lensforge.core import paths, runtime
from lensforge.lenses import models, training
from lensforge.lenses.hatcat import POLES
from lensforge.stages import activations, finetune, subject_model, train
from tests.helpers import finetune_data, tiny_encoder
from tests.helpers.adjudication_setup import tiny_adjudication_params
from tests.helpers.lens_data import SEEDS, SIMPLEXES, TEXTS, make_project, write_pool

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir

TOLERANCE = 1e-5  # issue 5: metrics (and weights) of 2 processes within this of 1 process
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
LAUNCH += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
LAUNCH += ["--dynamo_backend", "no", "--main_process_port", "0"]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "LENSFORGE_THREADS": "1"}


def launch_two(root: Path, stage: str) -> str:
    """``lensforge --root ROOT STAGE`` under ``accelerate launch`` with 2 CPU processes; its log."""
    env = {**os.environ, **ONE_THREAD, "ACCELERATE_USE_CPU": "1"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [*LAUNCH, "-m", "lensforge.cli", "--root", str(root), stage],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode:
        raise AssertionError(
            f"2-process {stage} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    return done.stdout + done.stderr


@contextlib.contextmanager
def one_thread():
    """This process with the launched processes' thread setting, restored afterwards."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ONE_THREAD.items():
            patch.setenv(name, value)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            AcceleratorState._reset_state(True)  # leave no process-wide Accelerate state behind


def leftovers(root: Path) -> list[Path]:
    """Temporary files or folders an atomic write would leave behind."""
    return [p for p in root.rglob("*") if ".tmp" in p.name]


# ---- activations: the pool sharded over two ranks ---------------------------------------------


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, project_root, tiny_model_dir) -> dict:
    """One tmp project extracted by one process (here) and by two (launched), and the launch log.

    7 prompts in batches of 2: rank 0 runs batches 0 and 2 (4 prompts, shards of 3 -> 2 shards),
    rank 1 runs batches 1 and 3 (3 prompts -> 1 shard).
    """
    base = tmp_path_factory.mktemp("activations")
    raw = yaml.safe_load((project_root / paths.PARAMS).read_text(encoding="utf-8"))
    raw["model"].update({"source": "hf", "name_or_path": str(tiny_model_dir), "layers": [2]})
    raw["activations"].update({"batch_size": 2, "shard_size": 3, "dtype": "float32"})
    one, two = base / "one", base / "two"
    for root in (one, two):
        root.mkdir()
        (root / paths.PARAMS).write_text(yaml.safe_dump(raw), encoding="utf-8")
        write_pool(root)
    params = params_mod.load(one / paths.PARAMS)
    subject_model.run(params, root=one)
    shutil.copytree(one / paths.SUBJECT_MODEL_DIR, two / paths.SUBJECT_MODEL_DIR)
    log = launch_two(two, "activations")
    with one_thread():
        activations.run(params, root=one)
    return {"one": one, "two": two, "log": log}


def test_two_process_extraction_equals_one_process_bit_for_bit(extracted):
    one_dir = extracted["one"] / paths.ACTIVATIONS_DIR
    two_dir = extracted["two"] / paths.ACTIVATIONS_DIR
    one_manifest, two_manifest = cache.read_manifest(one_dir), cache.read_manifest(two_dir)
    assert (one_manifest["n_processes"], two_manifest["n_processes"]) == (1, 2)
    metrics = json.loads((extracted["two"] / paths.ACTIVATIONS_METRICS).read_text())
    assert metrics["n_processes"] == 2 and metrics["n_prompts"] == len(TEXTS)
    assert two_manifest["shards"] == [
        cache.shard_name(0, rank=0),
        cache.shard_name(1, rank=0),
        cache.shard_name(0, rank=1),
    ]
    assert all((two_dir / name).is_file() for name in two_manifest["shards"])
    # The same cache by every setting that changes a vector; only the shard layout differs.
    assert two_manifest["cache_key"] == one_manifest["cache_key"]
    layout = {"n_processes", "shards"}
    assert {k: v for k, v in two_manifest.items() if k not in layout} == {
        k: v for k, v in one_manifest.items() if k not in layout
    }

    one_index, two_index = cache.read_index(one_dir), cache.read_index(two_dir)
    # The index is identical but for where a vector lives (shard names carry the rank).
    where = ["shard", "row"]
    pd.testing.assert_frame_equal(two_index.drop(columns=where), one_index.drop(columns=where))
    assert set(two_index["shard"]) == set(two_manifest["shards"])
    one_vectors = cache.read_vectors(one_dir, one_index, layer=2)  # (7, d_model)
    two_vectors = cache.read_vectors(two_dir, two_index, layer=2)  # (7, d_model)
    assert torch.equal(two_vectors, one_vectors)


def test_two_process_extraction_writes_each_artifact_once(extracted):
    root = extracted["two"]
    act_dir = root / paths.ACTIVATIONS_DIR
    manifest, index = cache.read_manifest(act_dir), cache.read_index(act_dir)
    names = {paths.ACTIVATION_INDEX_NAME, paths.ACTIVATION_MANIFEST_NAME, *manifest["shards"]}
    assert sorted(p.name for p in act_dir.iterdir()) == sorted(names)
    assert sorted(index["prompt_id"]) == sorted(pd.read_csv(root / paths.PROMPT_POOL)["prompt_id"])
    assert not index["prompt_id"].duplicated().any()
    assert not index.duplicated(["shard", "row"]).any()
    for name in manifest["shards"]:  # each shard holds exactly the rows the index points to
        with safe_open(str(act_dir / name), framework="pt") as handle:
            n_rows = handle.get_tensor(cache.tensor_name(2)).shape[0]
        assert sorted(index.loc[index["shard"] == name, "row"]) == list(range(n_rows))
    metrics = json.loads((root / paths.ACTIVATIONS_METRICS).read_text())
    assert set(metrics) == {
        "n_prompts", "d_model", "n_shards", "n_truncated", "n_processes", "seconds",
        "prompts_per_second",
    }  # fmt: skip
    assert extracted["log"].count(f"activations: {len(TEXTS)} prompts at layers [2]") == 1
    assert sorted(p.name for p in (root / "data").iterdir()) == ["activations", "prompts"]
    assert leftovers(root) == []


# ---- train: DDP over the lens batches ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, project_root) -> dict:
    """The train stage's tiny project (tests/stages/test_train.py) run by one and by two processes."""
    base = tmp_path_factory.mktemp("train")
    one, two = base / "one", base / "two"
    params = make_project(one, project_root)
    make_project(two, project_root)
    log = launch_two(two, "train")
    with one_thread():
        train.run(params, root=one)
    return {"one": one, "two": two, "log": log}


def _curves(root: Path, simplex: str, seed: int) -> dict[str, pd.DataFrame]:
    plots = paths.train_live_dir(root, simplex, seed) / "plots" / "metrics"
    return {
        str(p.relative_to(plots)): pd.read_csv(p, sep="\t") for p in sorted(plots.rglob("*.tsv"))
    }


def test_two_process_lenses_and_metrics_match_one_process_within_1e_5(trained):
    one, two = trained["one"], trained["two"]
    one_summary = json.loads((one / paths.TRAIN_METRICS).read_text())
    two_summary = json.loads((two / paths.TRAIN_METRICS).read_text())
    assert (one_summary["n_processes"], two_summary["n_processes"]) == (1, 2)
    for simplex in SIMPLEXES:
        for key, value in one_summary[simplex].items():
            if key != "seconds":
                assert two_summary[simplex][key] == pytest.approx(value, rel=0, abs=TOLERANCE)
        for seed in SEEDS:
            one_lens, one_card = models.load_lens(paths.lens_dir(one, simplex, seed))
            two_lens, two_card = models.load_lens(paths.lens_dir(two, simplex, seed))
            assert (two_card["best_epoch"], two_card["epochs_run"]) == (
                one_card["best_epoch"],
                one_card["epochs_run"],
            )
            for name, tensor in one_lens.state_dict().items():
                torch.testing.assert_close(
                    two_lens.state_dict()[name], tensor, atol=TOLERANCE, rtol=0
                )
            one_curves, two_curves = _curves(one, simplex, seed), _curves(two, simplex, seed)
            assert sorted(two_curves) == sorted(one_curves)
            for name, curve in one_curves.items():
                pd.testing.assert_frame_equal(
                    two_curves[name], curve, check_exact=False, rtol=0, atol=TOLERANCE
                )


def test_two_process_training_writes_each_artifact_once(trained):
    root = trained["two"]
    lens_dirs = {p.parent for p in (root / paths.LENSES_DIR).rglob(models.CARD_NAME)}
    assert lens_dirs == {paths.lens_dir(root, s, seed) for s in SIMPLEXES for seed in SEEDS}
    for lens_dir in lens_dirs:
        assert sorted(p.name for p in lens_dir.iterdir()) == [models.CARD_NAME, models.WEIGHTS_NAME]
    for simplex in SIMPLEXES:
        for seed in SEEDS:
            card = json.loads((paths.lens_dir(root, simplex, seed) / models.CARD_NAME).read_text())
            for name, curve in _curves(root, simplex, seed).items():  # one row per epoch
                assert curve["step"].tolist() == list(range(1, card["epochs_run"] + 1)), name
    summary = json.loads((root / paths.TRAIN_METRICS).read_text())
    assert set(summary) == {*SIMPLEXES, "seconds", "n_processes"}
    assert trained["log"].count(f"trained {len(SIMPLEXES) * len(SEEDS)} lenses") == 1
    assert leftovers(root) == []


def _lens_rows(n_per_pole: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (3 * n_per_pole, 8): a centre per pole plus unit noise, labels 0..2."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(len(POLES)).repeat_interleave(n_per_pole)  # (n,)
    centres = 2.0 * torch.eye(len(POLES), 8)  # (3, 8)
    return centres[y] + torch.randn(len(y), 8, generator=generator), y  # (n, 8), (n,)


def _fit_and_gather(project_root: str, out_file: str) -> None:
    """Runs in each launched process: fit one lens, gather every rank's weights to the main one."""
    AcceleratorState._reset_state(True)
    accelerator = runtime.make_accelerator()
    config = params_mod.load(Path(project_root) / paths.PARAMS).train
    config = dataclasses.replace(config, batch_size=12, max_epochs=6, patience=6)
    train_x, train_y = _lens_rows(12, seed=0)
    val_x, val_y = _lens_rows(4, seed=1)
    result = training.fit(
        train_x, train_y, val_x, val_y,
        weights=torch.linspace(0.5, 1.5, len(train_y)), config=config, seed=0,
        accelerator=accelerator,
    )  # fmt: skip
    flat = torch.cat([t.flatten().double() for t in result.lens.state_dict().values()])
    per_rank = accelerator.gather(flat[None].to(accelerator.device))  # (n_processes, n_weights)
    if accelerator.is_main_process:
        save_file(
            {"per_rank": per_rank.cpu()},
            out_file,
            metadata={"n_processes": str(accelerator.num_processes)},
        )
    accelerator.wait_for_everyone()


def test_data_parallel_lens_fit_ends_with_identical_weights_on_both_ranks(
    project_root, tmp_path, monkeypatch
):
    monkeypatch.setenv("LENSFORGE_THREADS", "1")
    out_file = tmp_path / "ranks.safetensors"
    debug_launcher(_fit_and_gather, args=(str(project_root), str(out_file)), num_processes=2)
    with safe_open(str(out_file), framework="pt") as handle:
        assert handle.metadata()["n_processes"] == "2"
    per_rank = load_file(str(out_file))["per_rank"]  # (2, n_weights)
    assert per_rank.shape[0] == 2 and torch.equal(per_rank[0], per_rank[1])


# ---- finetune: DDP over the encoder classifier -------------------------------------------------


def _finetune_and_gather(encoder_dir: str, project_root: str, out_file: str) -> None:
    """Runs in each launched process: the loop test's fine-tuning (no dropout, so 1 and 2
    processes do the same math), then every rank's best and final weights gathered to the main
    process, which saves them with the history."""
    AcceleratorState._reset_state(True)
    accelerator = runtime.make_accelerator(gradient_accumulation_steps=1, mixed_precision="no")
    config = finetune_data.tiny_finetune_config(Path(project_root))
    set_seed(0)
    encoder, _ = encoders.load_pretrained(encoder_dir)
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.manual_seed(0)
    classifier = encoders.MultiTaskClassifier(
        encoder,
        task_classes=finetune_data.CLASSES,
        pooling="mean",
        hidden_size=16,
        n_hidden=1,
        dropout=0.0,
    )
    train_split = finetune_data.random_split(48, seed=0)
    val_split = finetune_data.random_split(21, seed=1)
    result = finetune_loop.train(
        classifier,
        finetune_loop.build_objective(config, train_split.labels, classes=finetune_data.CLASSES),
        train_split,
        val_split,
        config=config,
        accelerator=accelerator,
        pad_id=0,
        weights=None,
        seed=0,
        on_epoch=lambda epoch, record: None,
    )
    best = torch.cat([t.flatten().double() for t in result.best_state.values()])  # (n_weights,)
    final = torch.cat([t.detach().flatten().double() for t in classifier.state_dict().values()])
    mine = torch.stack([best, final])[None].to(accelerator.device)  # (1, 2, n_weights)
    per_rank = accelerator.gather(mine)  # (n_processes, 2, n_weights)
    if accelerator.is_main_process:
        save_file(
            {"per_rank": per_rank.cpu()},
            out_file,
            metadata={
                "n_processes": str(accelerator.num_processes),
                "history": json.dumps(result.history),
            },
        )
    accelerator.wait_for_everyone()


def _launch_finetune(n_processes: int, encoder_dir: Path, project_root: Path, out_file: Path):
    debug_launcher(
        _finetune_and_gather,
        args=(str(encoder_dir), str(project_root), str(out_file)),
        num_processes=n_processes,
    )
    with safe_open(str(out_file), framework="pt") as handle:
        meta = handle.metadata()
    per_rank = load_file(str(out_file))["per_rank"]  # (n_processes, 2, n_weights)
    return int(meta["n_processes"]), per_rank, json.loads(meta["history"])


def test_two_process_finetune_has_identical_ranks_and_matches_one_process_within_1e_5(
    tiny_encoder_dir, project_root, tmp_path, monkeypatch
):
    monkeypatch.setenv("LENSFORGE_THREADS", "1")
    try:
        n_one, one, one_history = _launch_finetune(
            1, tiny_encoder_dir, project_root, tmp_path / "one.safetensors"
        )
        n_two, two, two_history = _launch_finetune(
            2, tiny_encoder_dir, project_root, tmp_path / "two.safetensors"
        )
    finally:
        AcceleratorState._reset_state(True)
    assert (n_one, n_two) == (1, 2) and two.shape[0] == 2
    assert torch.equal(two[0], two[1])  # best and final weights, bit for bit on both ranks
    assert float((two[0] - one[0]).abs().max()) <= TOLERANCE  # the whole classifier
    assert len(two_history) == len(one_history) == 2
    for one_record, two_record in zip(one_history, two_history, strict=True):
        assert two_record.keys() == one_record.keys()
        for name, value in one_record.items():
            assert two_record[name] == pytest.approx(value, rel=0, abs=TOLERANCE), name


def _run_finetune_stage(root: str) -> None:
    """Runs in each launched process: the finetune stage on ``root`` (fresh Accelerate state)."""
    AcceleratorState._reset_state(True)
    finetune.run(params_mod.load(Path(root) / paths.PARAMS), root=Path(root))


def _adjudicated_items(n_train: int, n_validation: int) -> pd.DataFrame:
    """Items whose first word decides both labels; every fourth row lacks its sentiment label."""
    words = {0: ("awful", "negative", "partisan"), 1: ("plain", "neutral", "objective"),
             2: ("lovely", "positive", "non_polarized")}  # fmt: skip
    rows = []
    for split, n_rows in (("train", n_train), ("validation", n_validation)):
        for i in range(n_rows):
            word, sentiment, polarization = words[i % 3]
            rows.append({
                "text": f"{word} item number {i} of the {split} rows",
                "split": split,
                "sentiment": "" if i % 4 == 0 else sentiment,
                "polarization": polarization,
            })  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, project_root, tiny_encoder_dir) -> dict:
    """The finetune stage run by one and by two processes on the same items, without dropout
    (the encoder's and the heads'), so both do the same math."""
    base = tmp_path_factory.mktemp("finetune")
    encoder_dir = base / "encoder"
    shutil.copytree(tiny_encoder_dir, encoder_dir)
    config = json.loads((encoder_dir / "config.json").read_text())
    config.update({"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})
    (encoder_dir / "config.json").write_text(json.dumps(config))
    raw = tiny_adjudication_params(
        yaml.safe_load((project_root / paths.PARAMS).read_text(encoding="utf-8")), encoder_dir
    )
    raw["finetune"]["head"]["dropout"] = 0.0
    raw["finetune"].update({"batch_size": 8, "max_epochs": 2, "patience": 2})
    roots = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LENSFORGE_THREADS", "1")
        for n_processes in (1, 2):
            root = roots[n_processes] = base / f"n{n_processes}"
            (root / paths.ADJUDICATED_DIR).mkdir(parents=True)
            (root / paths.PARAMS).write_text(yaml.safe_dump(raw), encoding="utf-8")
            _adjudicated_items(48, 21).to_csv(root / paths.ADJUDICATED_ITEMS, index=False)
            tasks.write_task_classes(root / paths.ADJUDICATED_TASKS, finetune_data.CLASSES)
            try:
                debug_launcher(_run_finetune_stage, args=(str(root),), num_processes=n_processes)
            finally:
                AcceleratorState._reset_state(True)
    return roots


def _numbers(record: dict) -> dict[str, float]:
    return {k: v for k, v in record.items() if isinstance(v, (int, float))}


def test_two_process_finetune_stage_writes_once_and_matches_one_process_within_1e_5(finetuned):
    one, two = finetuned[1], finetuned[2]
    one_summary = json.loads((one / paths.FINETUNE_METRICS).read_text())["runs"]["seed_0"]
    two_summary = json.loads((two / paths.FINETUNE_METRICS).read_text())["runs"]["seed_0"]
    assert (one_summary["n_processes"], two_summary["n_processes"]) == (1, 2)
    assert two_summary["best_epoch"] == one_summary["best_epoch"]
    assert two_summary["n_epochs"] == one_summary["n_epochs"] == 2
    for part in ("best", "last"):  # train_seconds (wall clock) is not compared
        assert two_summary[part].keys() == one_summary[part].keys()
        for name, value in _numbers(one_summary[part]).items():
            assert two_summary[part][name] == pytest.approx(value, rel=0, abs=TOLERANCE), name
    one_weights = load_file(str(paths.adjudicator_dir(one, 0) / paths.ADJUDICATOR_WEIGHTS_NAME))
    two_weights = load_file(str(paths.adjudicator_dir(two, 0) / paths.ADJUDICATOR_WEIGHTS_NAME))
    assert two_weights.keys() == one_weights.keys()
    for name, tensor in one_weights.items():
        torch.testing.assert_close(two_weights[name], tensor, atol=TOLERANCE, rtol=0)

    # Written once: the same files as one process, curves with one row per epoch (1-based).
    assert sorted(p.name for p in paths.adjudicator_dir(two, 0).iterdir()) == sorted(
        p.name for p in paths.adjudicator_dir(one, 0).iterdir()
    )
    curves = sorted((paths.finetune_live_dir(two, 0) / "plots" / "metrics").rglob("*.tsv"))
    assert curves
    for curve in curves:
        assert pd.read_csv(curve, sep="\t")["step"].tolist() == [1, 2], curve
    assert leftovers(two) == []
