"""The adjudication classifier: a pretrained encoder, a pooling, one MLP head per task.

- ``encoder_location``: ``minilm`` and ``hf`` resolve through ``core.packaged`` (all-MiniLM-L6-v2
  from its package, or any HF id or local folder); ``subject`` is the subject model the
  ``subject_model`` stage wrote (``models/subject``, Gemma-3-270m by default; its decoder layers
  are the encoder, no LM head).
- ``MultiTaskClassifier``: pooling ``cls`` (first token), ``mean`` (masked token mean of the last
  layer) or ``last4_mean`` (masked token mean of the average of the last four layers), then per
  task ``n_hidden`` x (dropout, linear, GELU) and (dropout, linear) to the task's classes.
  Tokenising, padding and the masked mean are ``core.sequences`` (shared with extraction).
- ``adjudicator_card`` / ``save_adjudicator`` / ``load_adjudicator``: encoder config + tokenizer +
  safetensors weights + a card (head spec, classes, data and weight hashes). Loading rebuilds the
  model from the artifact alone and fails on a missing file, a hash mismatch or any missing /
  unexpected weight: evaluation never scores an untrained model (the imbalanced-labels
  experiment calibrated an untrained one without noticing); ``check_trained_on`` refuses a model
  trained on other items.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from lensforge.core import artifacts, packaged, paths, sequences
from lensforge.core.errors import ArtifactError
from lensforge.core.params import FinetuneParams

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "card.json"
POOLINGS = ("cls", "mean", "last4_mean")


def encoder_location(source: str, name_or_path: str, *, root: Path) -> str:
    """Folder or HF id of the encoder (module doc); ``subject`` must have been built by the
    ``subject_model`` stage (an ``ArtifactError`` says so)."""
    if source != "subject":
        return packaged.encoder_location(source, name_or_path)
    folder = paths.under(root, paths.SUBJECT_MODEL_DIR)
    if not (folder / "config.json").is_file():
        raise ArtifactError(
            "the subject model is missing: run the subject_model stage first",
            path=folder,
            rule="exists",
        )
    return str(folder)


def load_pretrained(location: str):
    """(encoder, tokenizer) from a folder or HF id; the pooler (unused by every pooling here,
    and an unused parameter would stall DistributedDataParallel) is dropped."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    encoder = AutoModel.from_pretrained(location, dtype=torch.float32)
    return _without_pooler(encoder), tokenizer


def _without_pooler(encoder: nn.Module) -> nn.Module:
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def n_layers(encoder: nn.Module) -> int:
    return int(encoder.config.num_hidden_layers)


def d_model(encoder: nn.Module) -> int:
    return int(encoder.config.hidden_size)


def pool(outputs, attention_mask: torch.Tensor, *, pooling: str) -> torch.Tensor:
    """(batch, d_model) sentence vectors from an encoder's outputs (module doc)."""
    if pooling == "cls":
        return outputs.last_hidden_state[:, 0]  # (batch, d_model)
    if pooling == "mean":
        return sequences.masked_mean(outputs.last_hidden_state, attention_mask)
    if pooling == "last4_mean":
        stacked = torch.stack(outputs.hidden_states[-4:], dim=0).mean(dim=0)  # (batch, seq, d)
        return sequences.masked_mean(stacked, attention_mask)
    raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")


def _head(d_in: int, *, hidden_size: int, n_hidden: int, dropout: float, n_out: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = d_in
    for _ in range(n_hidden):
        layers += [nn.Dropout(dropout), nn.Linear(width, hidden_size), nn.GELU()]
        width = hidden_size
    layers += [nn.Dropout(dropout), nn.Linear(width, n_out)]
    return nn.Sequential(*layers)


class MultiTaskClassifier(nn.Module):
    """Encoder + pooling + one head per task; ``forward`` returns task -> logits (batch, k)."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        task_classes: Mapping[str, Sequence[str]],
        pooling: str,
        hidden_size: int,
        n_hidden: int,
        dropout: float,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        self.task_classes = {task: tuple(names) for task, names in task_classes.items()}
        self.encoder = encoder
        self.pooling = pooling
        self.heads = nn.ModuleDict(
            {
                task: _head(
                    d_model(encoder),
                    hidden_size=hidden_size,
                    n_hidden=n_hidden,
                    dropout=dropout,
                    n_out=len(classes),
                )
                for task, classes in task_classes.items()
            }
        )

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled sentence vectors (batch, d_model) that the heads read."""
        outputs = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=self.pooling == "last4_mean",
        )
        return pool(outputs, attention_mask, pooling=self.pooling)  # (batch, d_model)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        pooled = self.embed(input_ids, attention_mask)  # (batch, d_model)
        return {task: head(pooled) for task, head in self.heads.items()}


def adjudicator_card(
    config: FinetuneParams,
    *,
    task_classes: Mapping[str, Sequence[str]],
    items_sha256: str,
    summary: Mapping[str, object],
) -> dict:
    """What evaluation needs to rebuild the model from the artifact alone, and its provenance.

    The encoder is named by source and params, plus the package version for a packaged one, never
    by its install path: the card must hash the same in any clone.
    """
    encoder = {"source": config.encoder.source, "name_or_path": config.encoder.name_or_path}
    if config.encoder.source == "minilm":
        encoder["package_version"] = importlib.metadata.version(packaged.MINILM_DISTRIBUTION)
    return {
        "task_classes": {t: list(c) for t, c in task_classes.items()},
        "pooling": config.encoder.pooling,
        "head": dataclasses.asdict(config.head),
        "max_length": config.encoder.max_length,
        "encoder": encoder,
        "trained_on_sha256": items_sha256,
        "finetune_params": dataclasses.asdict(config),
        "training": dict(summary),
    }


def save_adjudicator(
    out_dir: Path, model: MultiTaskClassifier, tokenizer, *, card: Mapping[str, object]
) -> dict:
    """Write config, tokenizer, weights and the card (with the weights' sha256) into ``out_dir``.

    ``card`` must hold ``task_classes``, ``pooling``, ``head`` (hidden_size, n_hidden, dropout)
    and ``max_length``; returns the full card as written.
    """
    out_dir = Path(out_dir)
    model.encoder.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    artifacts.write_safetensors(out_dir / WEIGHTS_NAME, state)
    full = dict(card)
    full["weights_sha256"] = artifacts.file_sha256(out_dir / WEIGHTS_NAME)
    full["n_parameters"] = int(sum(v.numel() for v in state.values()))
    artifacts.write_json(out_dir / CARD_NAME, full)
    return full


def load_adjudicator(model_dir: Path) -> tuple[MultiTaskClassifier, object, dict]:
    """(model in eval mode, tokenizer, card) from a saved folder; ``ArtifactError`` when the
    weights or card are missing, the weights' hash differs from the card, or any weight is
    missing or unexpected."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    weights_path, card_path = model_dir / WEIGHTS_NAME, model_dir / CARD_NAME
    for needed in (card_path, weights_path):
        if not needed.is_file():
            raise ArtifactError(
                "trained weights not found: run the finetune stage first (refusing to score "
                "an untrained model)",
                path=needed,
                rule="trained weights exist",
            )
    card = artifacts.read_json(card_path, what="the adjudicator card (made by finetune)")
    artifacts.check_sha256(
        weights_path,
        card.get("weights_sha256"),
        what="weights",
        source="the card's",
        rule="weights match card",
    )
    config = AutoConfig.from_pretrained(model_dir)
    encoder = _without_pooler(AutoModel.from_config(config, dtype=torch.float32))
    head = card["head"]
    model = MultiTaskClassifier(
        encoder,
        task_classes=card["task_classes"],
        pooling=card["pooling"],
        hidden_size=head["hidden_size"],
        n_hidden=head["n_hidden"],
        dropout=head["dropout"],
    )
    state = load_file(str(weights_path))
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ArtifactError(
            f"weights do not match the model: {exc}", path=weights_path, rule="weights match model"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise ArtifactError(
            f"weights do not match the model: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}",
            path=weights_path,
            rule="weights match model",
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model.eval(), tokenizer, card


def check_trained_on(card: Mapping[str, object], items_path: Path) -> None:
    """Raise ``ArtifactError`` unless the model of ``card`` was trained on ``items_path``."""
    if card.get("trained_on_sha256") != artifacts.file_sha256(items_path):
        raise ArtifactError(
            "the model was trained on other adjudicated items: rerun finetune",
            path=items_path,
            rule="trained on these items",
        )


def check_task_classes(
    card: Mapping[str, object], classes: Mapping[str, Sequence[str]], *, model_dir: Path
) -> None:
    """Raise ``ArtifactError`` unless the model of ``card`` predicts exactly these tasks and
    classes (in label-id order)."""
    trained = {t: list(c) for t, c in card.get("task_classes", {}).items()}
    if trained != {t: list(c) for t, c in classes.items()}:
        raise ArtifactError(
            f"the model predicts other tasks or classes ({trained}) than the adjudicated items "
            f"declare ({dict(classes)}): rerun finetune",
            path=model_dir,
            rule="same tasks and classes",
        )


def predict_logits(
    model: MultiTaskClassifier,
    input_ids: Sequence[Sequence[int]],
    *,
    batch_size: int,
    pad_id: int,
) -> dict[str, torch.Tensor]:
    """Logits per task (n, k) in input order, on the CPU; the batches (length-sorted: less
    padding) run on the model's device."""
    from tqdm import tqdm

    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]))
    chunks: dict[str, list[torch.Tensor]] = {task: [] for task in model.heads}
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch_size), desc="predict", leave=False):
            rows = order[start : start + batch_size]
            batch = sequences.pad_batch([input_ids[r] for r in rows], pad_id=pad_id)
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            for task, logits in model(batch["input_ids"], batch["attention_mask"]).items():
                chunks[task].append(logits.float())
    back = torch.as_tensor(sorted(range(len(order)), key=order.__getitem__))
    return {task: torch.cat(parts).cpu()[back] for task, parts in chunks.items()}
