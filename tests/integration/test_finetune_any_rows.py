"""Two processes fine-tune what one process fine-tunes, for row counts that do not divide evenly.

Accelerate's default sharding evens out the last batch with rows from the start of the epoch, so
"N processes equal 1" held only when the batch size divides the row count. Here the loop shares
each global batch with ``runtime.rank_share`` and uses the global batch's denominators, so the
equality must hold for awkward sizes:

- ``uneven``: 67 training rows in global batches of 8 (8 full batches, then 3 rows: shares of 2
  and 1), plain cross-entropy, no accumulation;
- ``empty_share``: 65 rows (the last global batch is 1 row: the second process has none), two
  batches per optimizer step (the last step has one), oversampling, uncertainty task weighting
  with loss normalisation, class weights and R-Drop.

Both launch the loop under ``accelerate.debug_launcher`` (gloo on CPU) with 1 and with 2
processes, one thread each, without dropout (every process draws its own masks, so dropout alone
would make them differ). Validation has 21 rows (shares of 11 and 10).

Tolerance: 1e-5 (absolute) on every weight and every logged number, as in
tests/integration/test_multiprocess.py. Two processes add the same per-row gradients in another
order (two partial sums, then the all-reduce), so float32 rounding differs. Measured: at most
4.8e-7 on a weight and 2.4e-7 on a logged number, while one epoch moves weights by ~1e-2; the
loop before this fix (Accelerate's padded shards) missed by 8.2e-3 on the ``uneven`` scenario.
Runs in ~4 s (two launches of a tiny encoder); slow by conftest, as all of tests/integration.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import debug_launcher
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lensforge.adjudication import encoders, finetune_loop
from lensforge.core import runtime
from tests.helpers import finetune_data, tiny_encoder

tiny_encoder_dir = tiny_encoder.tiny_encoder_dir

TOLERANCE = 1e-5
N_VALIDATION = 21
SCENARIOS = {"uneven": 67, "empty_share": 65}  # training rows


def _config(project_root: Path, scenario: str):
    config = finetune_data.tiny_finetune_config(project_root)
    if scenario == "uneven":
        return config
    weighting = dataclasses.replace(config.task_weighting, method="uncertainty", normalize=True)
    losses = dict(config.losses)
    losses["polarization"] = dataclasses.replace(losses["polarization"], class_weights=True)
    return dataclasses.replace(
        config,
        grad_accumulation=2,
        oversample=dataclasses.replace(config.oversample, enabled=True),
        task_weighting=weighting,
        losses=losses,
        rdrop_alpha=0.5,
    )


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().flatten().double().cpu() for t in state.values()])


def _finetune_and_gather(encoder_dir: str, project_root: str, out_dir: str) -> None:
    """Runs in each launched process: every scenario's fine-tuning; every rank's best weights,
    final weights and validation logits (predicted by all ranks together) gathered to the main
    process, which saves them with the history."""
    AcceleratorState._reset_state(True)
    accelerator = runtime.make_accelerator(mixed_precision="no")
    for scenario, n_rows in SCENARIOS.items():
        config = _config(Path(project_root), scenario)
        set_seed(0)
        encoder, _ = encoders.load_pretrained(encoder_dir)
        for module in encoder.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        classes = finetune_data.CLASSES
        classifier = finetune_loop.build_classifier(encoder, config, classes=classes, seed=0)
        train_split = finetune_data.random_split(n_rows, seed=0)
        val_split = finetune_data.random_split(N_VALIDATION, seed=1)
        result = finetune_loop.train(
            classifier,
            finetune_loop.build_objective(config, train_split.labels, classes=classes),
            train_split,
            val_split,
            config=config,
            accelerator=accelerator,
            pad_id=0,
            weights=finetune_loop.sample_weights(config, train_split.labels, classes=classes),
            seed=0,
            on_epoch=lambda epoch, record: None,
        )
        logits = finetune_loop.predict(
            classifier, val_split, batch_size=4, pad_id=0, accelerator=accelerator
        )
        mine = {
            "best": _flat(result.best_state)[None],  # (1, n_weights)
            "final": _flat(classifier.state_dict())[None],  # (1, n_weights)
            "val_logits": torch.cat([torch.as_tensor(v) for v in logits.values()], 1)[None],
            "rank": torch.tensor([[accelerator.process_index]]),
        }
        per_rank = {k: accelerator.gather(v.to(accelerator.device)).cpu() for k, v in mine.items()}
        if accelerator.is_main_process:
            save_file(
                per_rank,
                str(Path(out_dir) / f"{scenario}.safetensors"),
                metadata={
                    "n_processes": str(accelerator.num_processes),
                    "history": json.dumps(result.history),
                    "best_epoch": str(result.best_epoch),
                },
            )
        accelerator.wait_for_everyone()


@pytest.fixture(scope="module")
def launched(tmp_path_factory, project_root, tiny_encoder_dir) -> dict[int, Path]:
    """The scenarios run by one and by two launched processes: out folder per process count."""
    base = tmp_path_factory.mktemp("finetune_any_rows")
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LENSFORGE_THREADS", "1")
        for n_processes in (1, 2):
            out[n_processes] = base / f"n{n_processes}"
            out[n_processes].mkdir()
            try:
                debug_launcher(
                    _finetune_and_gather,
                    args=(str(tiny_encoder_dir), str(project_root), str(out[n_processes])),
                    num_processes=n_processes,
                )
            finally:
                AcceleratorState._reset_state(True)
    return out


def _read(folder: Path, scenario: str) -> tuple[dict, dict[str, torch.Tensor]]:
    path = folder / f"{scenario}.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    return meta, load_file(str(path))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_two_processes_train_the_weights_and_metrics_of_one_for_an_awkward_row_count(
    launched, scenario
):
    one_meta, one = _read(launched[1], scenario)
    two_meta, two = _read(launched[2], scenario)
    assert (one_meta["n_processes"], two_meta["n_processes"]) == ("1", "2")
    assert two["rank"].flatten().tolist() == [0, 1]  # two distinct processes really ran
    for key in ("best", "final", "val_logits"):  # both ranks hold the same, bit for bit
        assert torch.equal(two[key][0], two[key][1]), key

    gaps = {key: float((two[key][0] - one[key][0]).abs().max()) for key in ("best", "final")}
    assert max(gaps.values()) <= TOLERANCE, gaps
    assert two_meta["best_epoch"] == one_meta["best_epoch"]
    one_history, two_history = json.loads(one_meta["history"]), json.loads(two_meta["history"])
    assert len(two_history) == len(one_history) == 2
    for one_record, two_record in zip(one_history, two_history, strict=True):
        assert two_record.keys() == one_record.keys()
        for name, value in one_record.items():
            assert two_record[name] == pytest.approx(value, rel=0, abs=TOLERANCE), name


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_two_processes_predict_every_validation_row_exactly_once(launched, scenario):
    _, one = _read(launched[1], scenario)
    _, two = _read(launched[2], scenario)
    n_classes = sum(len(c) for c in finetune_data.CLASSES.values())
    assert one["val_logits"].shape == (1, N_VALIDATION, n_classes)
    assert two["val_logits"].shape == (2, N_VALIDATION, n_classes)  # 11 + 10 rows, no padding
    np.testing.assert_allclose(two["val_logits"][0], one["val_logits"][0], atol=TOLERANCE, rtol=0)
