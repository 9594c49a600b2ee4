"""Two processes train the span model one process trains, for window counts that do not divide.

Scenarios (global batch 8, validation 21 windows: shares of 11 and 10):

- ``uneven``: 67 training windows (the last global batch has 3: shares of 2 and 1), conv
  encoder, the note's setup: every head, raw countdown, uncertainty weighting;
- ``empty_share``: 65 windows (the last global batch is 1 window: the second process has none),
  GRU encoder, unit countdown, uncertainty weighting with per-task normalisation.

Dropout is on (0.2): its masks are drawn for each whole global batch and each process takes its
rows, so it does not break the equality. Both run under ``accelerate.debug_launcher`` (gloo on
CPU) with 1 and with 2 processes, one thread each. Tolerance 1e-5 on every weight and logged
number (float32 sums in another order; tests/integration/test_finetune_any_rows.py measured the
same loop shape at under 5e-7).
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
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lensforge.core import params, runtime
from lensforge.spans import training
from tests.helpers.span_windows import synthetic_windows

TOLERANCE = 1e-5
N_VALIDATION = 21
SCENARIOS = {"uneven": 67, "empty_share": 65}


def _config(scenario: str):
    config = params.load(Path(__file__).parents[2] / "params.yaml").train_spans
    kind = "conv" if scenario == "uneven" else "gru"
    encoder = dataclasses.replace(
        config.encoder, kind=kind, hidden=8, n_layers=2, kernel=3, dropout=0.2
    )
    weighting = dataclasses.replace(
        config.task_weighting, method="uncertainty", normalize=scenario == "empty_share"
    )
    return dataclasses.replace(
        config,
        encoder=encoder,
        task_weighting=weighting,
        countdown_scale="raw" if scenario == "uneven" else "unit",
        batch_size=8,
        max_epochs=2,
        patience=2,
        threshold=0.3,
    )


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().flatten().double().cpu() for t in state.values()])


def _train_and_gather(out_dir: str) -> None:
    AcceleratorState._reset_state(True)
    accelerator = runtime.make_accelerator()
    for scenario, n_train in SCENARIOS.items():
        windows = synthetic_windows(n_train + N_VALIDATION, seed=5)
        split = np.array(["train"] * n_train + ["validation"] * N_VALIDATION)
        result = training.fit(
            windows, split, config=_config(scenario), seed=0, iou=0.5, accelerator=accelerator
        )
        outputs = training.predict_outputs(
            result.model,
            windows["features"][n_train:],
            accelerator=accelerator,
            batch_size=4,
        )
        mine = {
            "best": _flat(result.model.state_dict())[None],
            "val_span": torch.as_tensor(outputs["span"])[None],
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
def launched(tmp_path_factory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("spans_any_rows")
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LENSFORGE_THREADS", "1")
        for n_processes in (1, 2):
            out[n_processes] = base / f"n{n_processes}"
            out[n_processes].mkdir()
            try:
                debug_launcher(
                    _train_and_gather, args=(str(out[n_processes]),), num_processes=n_processes
                )
            finally:
                AcceleratorState._reset_state(True)
    return out


def _read(folder: Path, scenario: str):
    path = folder / f"{scenario}.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    return meta, load_file(str(path))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_two_processes_train_the_span_model_of_one(launched, scenario):
    one_meta, one = _read(launched[1], scenario)
    two_meta, two = _read(launched[2], scenario)
    assert (one_meta["n_processes"], two_meta["n_processes"]) == ("1", "2")
    assert two["rank"].flatten().tolist() == [0, 1]  # two distinct processes really ran
    assert torch.equal(two["best"][0], two["best"][1])
    gap = float((two["best"][0] - one["best"][0]).abs().max())
    assert gap <= TOLERANCE, gap
    assert two_meta["best_epoch"] == one_meta["best_epoch"]
    one_history, two_history = json.loads(one_meta["history"]), json.loads(two_meta["history"])
    assert len(one_history) == len(two_history) == 2
    for one_record, two_record in zip(one_history, two_history, strict=True):
        assert two_record.keys() == one_record.keys()
        for name, value in one_record.items():
            assert two_record[name] == pytest.approx(value, rel=0, abs=TOLERANCE), name
    assert two["val_span"].shape == (2, N_VALIDATION, 16)  # every window once, no padding
    np.testing.assert_allclose(two["val_span"][0], one["val_span"][0], atol=TOLERANCE, rtol=0)
