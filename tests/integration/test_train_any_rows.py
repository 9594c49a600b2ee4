"""N processes equal 1 for any row count: lens training on 67 rows with a global batch of 8.

67 = 8 x 8 + 3, so the last global batch splits 2 / 1 over two processes: Accelerate's
``even_batches`` would have padded it with rows from the start of the epoch. Both runs go through
``accelerate.debug_launcher`` (real gloo processes on CPU), and the test checks that two processes
really ran before comparing their weights and curves with the one-process run. The MLP lens
(dropout 0.1) trains with some soft targets: its dropout mask is drawn per global batch, so two
processes drop the units one process drops.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from accelerate import debug_launcher
from accelerate.state import AcceleratorState
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lensforge.core import params as params_mod
from lensforge.core import paths, runtime
from lensforge.lenses import training

N_ROWS, BATCH = 67, 8


def _rows(n_rows: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_rows`` rows (n_rows, 8): a centre per pole plus unit noise, labels cycling 0..2."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n_rows) % 3  # (n,)
    centres = 2.0 * torch.eye(3, 8)  # (3, 8)
    return centres[y] + torch.randn(n_rows, 8, generator=generator), y


def _soft_targets(y: torch.Tensor) -> torch.Tensor:
    """One-hot targets, with every fifth row split 0.5 / 0.5 with the next pole."""
    targets = torch.nn.functional.one_hot(y, 3).double()  # (n, 3)
    soft = torch.arange(len(y)) % 5 == 0
    targets[soft] = 0.5 * targets[soft] + 0.5 * targets[soft].roll(1, dims=1)
    return targets


def _fit(project_root: str, out_file: str, kind: str) -> None:
    """Runs in each launched process: fit one lens on the awkward rows; rank 0 saves it."""
    AcceleratorState._reset_state(True)
    accelerator = runtime.make_accelerator()
    config = params_mod.load(Path(project_root) / paths.PARAMS).train
    lens = params_mod.LensParams(kind=kind, hidden=16, dropout=0.1)
    config = dataclasses.replace(config, batch_size=BATCH, max_epochs=5, patience=5, lens=lens)
    train_x, train_y = _rows(N_ROWS, seed=0)
    val_x, val_y = _rows(12, seed=1)
    result = training.fit(
        train_x, train_y, val_x, val_y,
        weights=torch.linspace(0.5, 1.5, N_ROWS), config=config, seed=0, accelerator=accelerator,
        targets=_soft_targets(train_y) if kind == "mlp" else None,
    )  # fmt: skip
    losses = torch.tensor([[r[f"train/{c}"] for c in training.COMPONENTS] for r in result.history])
    if accelerator.is_main_process:
        save_file(
            {**result.lens.state_dict(), "losses": losses.double()},
            out_file,
            metadata={"n_processes": str(accelerator.num_processes)},
        )
    accelerator.wait_for_everyone()


def _launch(
    n_processes: int, project_root: Path, out_file: Path, *, kind: str
) -> dict[str, torch.Tensor]:
    debug_launcher(_fit, args=(str(project_root), str(out_file), kind), num_processes=n_processes)
    with safe_open(str(out_file), framework="pt") as handle:
        assert handle.metadata()["n_processes"] == str(n_processes)
    return load_file(str(out_file))


@pytest.mark.parametrize("kind", ["tripole", "mlp"])
def test_two_processes_train_the_one_process_lens_on_67_rows_with_batch_8(
    project_root, tmp_path, monkeypatch, kind
):
    monkeypatch.setenv("LENSFORGE_THREADS", "1")
    one = _launch(1, project_root, tmp_path / "one.safetensors", kind=kind)
    two = _launch(2, project_root, tmp_path / "two.safetensors", kind=kind)
    assert one.keys() == two.keys()
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name
    # The epoch losses average every row once: a duplicated row would shift them.
    assert torch.allclose(one["losses"], two["losses"], atol=1e-6)
