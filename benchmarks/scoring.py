"""Benchmark: what reading the lenses adds to the subject model's forward pass, per token.

For each of ``--n-texts`` pool prompts, one at a time (as ``lensforge score`` runs them): (a) the
forward pass of the model cut at the lenses' layer alone; (b) the same forward plus every trained
simplex lens (every seed) and, when trained, every graduated concept lens on every token. The
ratio (b) / (a) - 1 is the lenses' overhead (target: at most 5%). Needs a reproduced pipeline
(models/subject, data/activations, models/lenses).

    .venv/bin/python benchmarks/scoring.py [--n-texts 200] [--root .] [--no-concepts]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lensforge import scoring  # noqa: E402
from lensforge.activations import cache  # noqa: E402
from lensforge.core import paths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-texts", type=int, default=200)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--no-concepts", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the fastest counts")
    args = parser.parse_args()
    readers = scoring.load_simplex_readers(args.root)
    concepts_dir = paths.under(args.root, paths.CONCEPT_LENSES_DIR)
    concepts = None
    if not args.no_concepts and concepts_dir.is_dir():
        concepts = scoring.load_concept_reader(args.root)
    manifest = cache.read_manifest(paths.under(args.root, paths.ACTIVATIONS_DIR))
    scorer = scoring.Scorer.load(
        args.root, readers, concepts=concepts, compute_dtype=manifest["compute_dtype"]
    )
    pool = pd.read_csv(paths.under(args.root, paths.PROMPT_POOL), keep_default_na=False)
    step = max(1, len(pool) // args.n_texts)
    texts = pool["text"].iloc[::step].head(args.n_texts).tolist()
    token_ids = [scorer.tokenizer(t, add_special_tokens=True)["input_ids"] for t in texts]
    n_tokens = sum(len(ids) for ids in token_ids)
    scorer.read(scorer.hidden(token_ids[0]), ["x"] * len(token_ids[0]))  # warm-up
    forward_s, reading_s = [], []
    for _ in range(args.repeats):
        forward, reading = 0.0, 0.0
        for ids in token_ids:
            started = time.perf_counter()
            hidden = scorer.hidden(ids)
            middle = time.perf_counter()
            scorer.read(hidden, ["x"] * len(ids))
            forward += middle - started
            reading += time.perf_counter() - middle
        forward_s.append(forward)
        reading_s.append(reading)
    forward, reading = min(forward_s), min(reading_s)
    n_lenses = sum(len(r.lenses) for r in readers)
    n_concepts = len(concepts.concepts) if concepts else 0
    layers = sorted(scorer.cut.layers)
    print(
        f"{len(texts)} texts, {n_tokens} tokens, cut after layer(s) {layers}, "
        f"{n_lenses} simplex lenses ({len(readers)} simplexes x seeds), {n_concepts} concept "
        f"lenses, torch threads {torch.get_num_threads()}, fastest of {args.repeats}"
    )
    print("\n| part | seconds | tokens/s |\n| --- | ---: | ---: |")
    print(f"| (a) forward to the lens layer | {forward:.2f} | {n_tokens / forward:.0f} |")
    print(f"| (b) lenses on every token | {reading:.3f} | {n_tokens / reading:.0f} |")
    print(f"\nlens overhead (b) / (a): {100 * reading / forward:.1f}% (target <= 5%)")


if __name__ == "__main__":
    main()
