"""Benchmark: the activations stage's extractor against a naive loop, on the same prompts.

(a) naive: one prompt at a time through the full model (all layers and the LM head) with
    ``output_hidden_states=True``, keeping ``hidden_states[layer]`` at the last token;
(b) lensforge: the stage's extractor (length-sorted batches of ``activations.batch_size``, model cut
    after ``train.layer``, last-non-pad pooling);
(c) every layer of ``model.layers`` from one pass (cut after the deepest), against one
    single-layer pass per layer (the extractor of (b) once per layer): the multi-layer ratio.

All run in float32 on the CPU from the converted folder ``models/subject`` (run
``lensforge subject_model`` first) with ``train.layer``, ``model.layers``,
``activations.batch_size`` and ``activations.max_length`` from params.yaml. Prints prompts/s, the
speed-ups and the largest absolute difference between the naive and the extractor's vectors.

    .venv/bin/python benchmarks/extraction.py [--n-prompts 512] [--root .]
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
from tqdm.auto import tqdm  # noqa: E402

from lensforge.activations import extraction, subject  # noqa: E402
from lensforge.core import params as params_mod  # noqa: E402
from lensforge.core import paths, sequences  # noqa: E402
from lensforge.lenses import hatcat, prompts  # noqa: E402


def load_texts(root: Path, params: params_mod.Params, n_prompts: int) -> list[str]:
    """``n_prompts`` texts spread evenly over the real pool (built from data/raw if absent)."""
    pool_path = paths.under(root, paths.PROMPT_POOL)
    if pool_path.is_file():
        pool = pd.read_csv(pool_path, keep_default_na=False)
    else:
        synsets = hatcat.synset_table(
            hatcat.load_synsets(paths.under(root, paths.SYNSETS[params.data.synsets])),
            params.data.simplexes,
        )
        experiential = hatcat.load_experiential(paths.under(root, paths.EXPERIENTIAL_PROMPTS))
        experiential = experiential[experiential["simplex"].isin(params.data.simplexes)]
        pool = prompts.build_pool(synsets, experiential, params.prompts)
    step = max(1, len(pool) // n_prompts)
    return pool["text"].iloc[::step].iloc[:n_prompts].tolist()


def naive(model_dir: Path, texts: list[str], *, layer: int, max_length: int):
    loaded = subject.load_for_extraction(model_dir, dtype=torch.float32)
    model, tokenizer = loaded.model, loaded.tokenizer
    vectors = []
    with torch.inference_mode():
        model(**tokenizer(texts[0], return_tensors="pt"))  # warm-up, not timed
        started = time.perf_counter()
        for text in tqdm(texts, unit="prompt", desc="(a) naive"):
            inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
            out = model(**inputs, output_hidden_states=True)
            vectors.append(out.hidden_states[layer][0, -1])  # (d_model,)
        seconds = time.perf_counter() - started
    return torch.stack(vectors), seconds  # (n, d_model)


def lensforge_extractor(
    model_dir: Path, texts: list[str], *, layers: list[int], max_length: int, batch_size: int
):
    """Vectors (layer -> (n, d_model)) of ``layers`` from one pass each batch, and the seconds."""
    loaded = subject.load_for_extraction(model_dir, dtype=torch.float32)
    cut = extraction.CutModel(loaded.model, layers)
    pad_id = sequences.pad_id_of(loaded.tokenizer)
    device = torch.device("cpu")
    ids = [f"p{i}" for i in range(len(texts))]
    warm, _ = sequences.tokenize(loaded.tokenizer, texts[:1], max_length=max_length)
    list(extraction.iter_vectors(cut, warm, [[0]], pooling="last", pad_id=pad_id,
                                 prompt_ids=ids, device=device))  # warm-up, not timed  # fmt: skip
    started = time.perf_counter()
    token_ids, _ = sequences.tokenize(loaded.tokenizer, texts, max_length=max_length)
    batches = extraction.plan_batches([len(t) for t in token_ids], batch_size=batch_size)
    width = cut.decoder.config.hidden_size
    out = {layer: torch.empty(len(texts), width) for layer in layers}  # each (n, d_model)
    with tqdm(total=len(texts), unit="prompt", desc=f"lensforge layers {layers}") as bar:
        for positions, vectors in extraction.iter_vectors(
            cut, token_ids, batches, pooling="last", pad_id=pad_id, prompt_ids=ids,
            device=device, progress=bar,
        ):  # fmt: skip
            for layer, block in vectors.items():
                out[layer][positions] = block
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-prompts", type=int, default=512)
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args()
    params = params_mod.load(args.root / paths.PARAMS)
    model_dir = paths.under(args.root, paths.SUBJECT_MODEL_DIR)
    card = subject.read_card(model_dir)
    layer, layers, settings = params.train.layer, list(params.model.layers), params.activations
    extraction.check_layers(layers, n_layers=card["n_layers"])
    extraction.validate_layer(layer, n_layers=card["n_layers"], key="train.layer")
    texts = load_texts(args.root, params, args.n_prompts)
    print(
        f"model {card.get('gguf_file') or card.get('name_or_path')} ({card['n_layers']} layers "
        f"x {card['d_model']}), layer {layer}, {len(texts)} prompts, batch {settings.batch_size}, "
        f"max_length {settings.max_length}, torch threads {torch.get_num_threads()}"
    )
    naive_vectors, naive_s = naive(model_dir, texts, layer=layer, max_length=settings.max_length)
    common = {"max_length": settings.max_length, "batch_size": settings.batch_size}
    fast, fast_s = lensforge_extractor(model_dir, texts, layers=[layer], **common)
    fast_vectors = fast[layer]
    together, together_s = lensforge_extractor(model_dir, texts, layers=layers, **common)
    apart = {}
    for one in layers:
        vectors, apart[one] = lensforge_extractor(model_dir, texts, layers=[one], **common)
        if not torch.equal(vectors[one], together[one]):
            raise SystemExit(f"layer {one}: one-pass vectors differ from its own pass")
    apart_s = sum(apart.values())
    diff = (naive_vectors - fast_vectors).abs().max().item()
    scale = naive_vectors.abs().max().item()
    rows = [
        ("(a) naive: 1 prompt, full model", naive_s),
        (f"(b) lensforge extractor, layer {layer}", fast_s),
        (f"(c) layers {layers}: one pass", together_s),
        (f"(c) layers {layers}: one pass per layer", apart_s),
    ]
    print("\n| method | prompts | seconds | prompts/s |\n| --- | ---: | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {len(texts)} | {seconds:.1f} | {len(texts) / seconds:.1f} |")
    print(f"\nspeed-up (b)/(a): {naive_s / fast_s:.1f}x")
    print(
        f"{len(layers)} layers in one pass vs one pass per layer: {apart_s / together_s:.2f}x "
        f"(the same vectors, bit for bit); one pass up to layer {max(layers)} vs up to layer "
        f"{layer}: {together_s / fast_s:.2f}x the time"
    )
    print(f"max abs diff: {diff:.3g} (largest |value| {scale:.3g}, relative {diff / scale:.2g})")


if __name__ == "__main__":
    main()
