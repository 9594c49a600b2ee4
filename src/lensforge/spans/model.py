"""The span model: a small temporal encoder over a window of bars with four heads.

Input: a window of bar features (n, L, F), standardised inside the model by the training split's
per-feature mean and standard deviation (buffers, so they travel with the weights). Encoder
(``train_spans.encoder.kind``): ``conv``, residual blocks of dilated 1-D convolutions (dilation 1,
2, 4, ...: the receptive field grows with depth) or ``gru``. ``encoder.causal`` decides what a
position reads. ``false``: the whole window (centred convolutions, a bidirectional GRU): the
model *detects* spans in a window of history, and since a bar's label is the volatility of the
next k bars, bars after it inside the window carry its label. ``true``: only positions <= i
(left-padded convolutions, a forward GRU): every per-bar output is a *forecast* from bars up to
that bar, as a live system would have to make it. Bar features only read bars up to their own
bar either way.
Heads: ``class`` (n, 3) logits from the mean and max over positions; ``pointers`` (n, 2, L) start
and end logits over positions; ``span`` (n, L) membership logits; ``countdown`` (n, L) regression
in the scaled units of ``countdown_scale``.

Dropout masks can be passed in (``dropout_masks``): the trainer draws them for a whole global batch
and hands each process its rows, so N processes train the 1-process model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lensforge.core import artifacts, paths
from lensforge.core.errors import ArtifactError

N_CLASSES = 3  # window classes: none, start, inside (spans.windows.CLASSES)
CARD_FORMAT = 1


def scale_countdown(bars: np.ndarray, *, scale: str, clip: float) -> np.ndarray:
    """Bars to the span start (NaN kept) in training units: ``raw`` clips to [-clip, clip] (the
    research note's countdown); ``unit`` maps [-clip, clip] to [0, 1] (its option 2)."""
    clipped = np.clip(bars, -clip, clip)
    if scale == "raw":
        return clipped.astype(np.float32)
    if scale == "unit":
        return ((clipped + clip) / (2 * clip)).astype(np.float32)
    raise ValueError(f"unknown countdown_scale {scale!r}")


def unscale_countdown(values: np.ndarray, *, scale: str, clip: float) -> np.ndarray:
    """The inverse of ``scale_countdown`` (bars, within [-clip, clip])."""
    if scale == "raw":
        return values
    return values * (2 * clip) - clip


@dataclasses.dataclass(frozen=True)
class SpanModelConfig:
    n_features: int
    window: int
    kind: str
    hidden: int
    n_layers: int
    kernel: int
    dropout: float
    causal: bool


class _ConvBlock(nn.Module):
    """Dilated convolution + GELU, residual, layer norm. Centred, or causal (padding on the
    left only: position i reads positions <= i)."""

    def __init__(self, hidden: int, *, kernel: int, dilation: int, causal: bool):
        super().__init__()
        reach = dilation * (kernel - 1)
        self.padding = (reach, 0) if causal else (reach // 2, reach - reach // 2)
        self.conv = nn.Conv1d(hidden, hidden, kernel, dilation=dilation)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (n, L, hidden)
        padded = torch.nn.functional.pad(h.transpose(1, 2), self.padding)  # (n, hidden, L + reach)
        out = self.conv(padded).transpose(1, 2)  # (n, L, hidden)
        return self.norm(h + torch.nn.functional.gelu(out))


class SpanModel(nn.Module):
    """Temporal encoder + class, pointer, membership and countdown heads (module doc)."""

    def __init__(self, config: SpanModelConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.register_buffer("feature_mean", torch.zeros(config.n_features))
        self.register_buffer("feature_std", torch.ones(config.n_features))
        self.project = nn.Linear(config.n_features, hidden)
        if config.kind == "conv":
            self.blocks = nn.ModuleList(
                _ConvBlock(hidden, kernel=config.kernel, dilation=2**i, causal=config.causal)
                for i in range(config.n_layers)
            )
            width = hidden
        elif config.kind == "gru":
            bidirectional = not config.causal
            self.gru = nn.GRU(
                hidden,
                hidden,
                num_layers=config.n_layers,
                batch_first=True,
                bidirectional=bidirectional,
            )
            width = 2 * hidden if bidirectional else hidden
        else:
            raise ValueError(f"unknown encoder kind {config.kind!r}")
        self.width = width
        self.class_head = nn.Linear(2 * width, N_CLASSES)
        # No bias: a constant added to every position cancels in the softmax over positions,
        # so its gradient is rounding noise that Adam would amplify into steps of size lr.
        self.pointer_head = nn.Linear(width, 2, bias=False)
        self.span_head = nn.Linear(width, 1)
        self.countdown_head = nn.Linear(width, 1)

    def set_standardisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        with torch.no_grad():
            self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.feature_std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def dropout_masks(self, n_rows: int, *, generator: torch.Generator) -> list[torch.Tensor]:
        """Scaled keep-masks for the two dropout sites, (n_rows, L, hidden) and (n_rows, L,
        width), drawn from ``generator``; empty without dropout."""
        p = self.config.dropout
        if p == 0.0:
            return []
        shapes = [(n_rows, self.config.window, self.config.hidden)]
        shapes.append((n_rows, self.config.window, self.width))
        return [(torch.rand(s, generator=generator) >= p).float() / (1.0 - p) for s in shapes]

    def _dropout(self, h: torch.Tensor, masks: list[torch.Tensor] | None, i: int) -> torch.Tensor:
        if not self.training or self.config.dropout == 0.0:
            return h
        if masks:
            return h * masks[i].to(h.device)
        return torch.nn.functional.dropout(h, self.config.dropout, training=True)

    def forward(
        self, features: torch.Tensor, *, dropout_masks: list[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        x = (features - self.feature_mean) / self.feature_std  # (n, L, F)
        h = self._dropout(self.project(x), dropout_masks, 0)  # (n, L, hidden)
        if self.config.kind == "conv":
            for block in self.blocks:
                h = block(h)
        else:
            h, _ = self.gru(h)  # (n, L, 2 hidden)
        h = self._dropout(h, dropout_masks, 1)  # (n, L, width)
        pooled = torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1)  # (n, 2 width)
        return {
            "class": self.class_head(pooled),  # (n, 3)
            "pointers": self.pointer_head(h).transpose(1, 2),  # (n, 2, L)
            "span": self.span_head(h).squeeze(-1),  # (n, L)
            "countdown": self.countdown_head(h).squeeze(-1),  # (n, L)
        }


def save_span_model(folder: Path, model: SpanModel, card: dict) -> None:
    """Weights (safetensors) and card (config + what the model was trained on) into ``folder``,
    which the caller writes atomically as part of the models folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    artifacts.write_safetensors(folder / paths.SPAN_WEIGHTS_NAME, state)
    card = {"format": CARD_FORMAT, "config": dataclasses.asdict(model.config), **card}
    artifacts.write_json(folder / paths.SPAN_CARD_NAME, card)


@dataclasses.dataclass
class LoadedSpanModel:
    seed: int
    card: dict
    model: SpanModel

    def predict(self, features: np.ndarray, *, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Probabilities and countdown (in bars) for windows (n, L, F), in row order."""
        parts: dict[str, list[np.ndarray]] = {}
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(features), batch_size):
                chunk = torch.as_tensor(features[start : start + batch_size], dtype=torch.float32)
                out = self.model(chunk)
                pointers = torch.softmax(out["pointers"], dim=2)  # (b, 2, L)
                values = {
                    "class_probs": torch.softmax(out["class"], dim=1),
                    "start_probs": pointers[:, 0],
                    "end_probs": pointers[:, 1],
                    "span_probs": torch.sigmoid(out["span"]),
                    "countdown_bars": out["countdown"],
                }
                for name, value in values.items():
                    parts.setdefault(name, []).append(value.numpy())
        n_positions = self.model.config.window
        empty = {
            "class_probs": np.zeros((0, N_CLASSES), np.float32),
            **{k: np.zeros((0, n_positions), np.float32) for k in _POSITION_OUTPUTS},
        }
        result = {k: np.concatenate(v) for k, v in parts.items()} if parts else empty
        result["countdown_bars"] = unscale_countdown(
            result["countdown_bars"],
            scale=self.card["countdown_scale"],
            clip=float(self.card["countdown_clip"]),
        )
        return result


_POSITION_OUTPUTS = ("start_probs", "end_probs", "span_probs", "countdown_bars")


def build_model(config: SpanModelConfig, *, seed: int) -> SpanModel:
    torch.manual_seed(seed)
    return SpanModel(config)


def load_span_model(folder: Path) -> LoadedSpanModel:
    """One saved span model; ``ArtifactError`` when its weights or card are missing or broken."""
    from safetensors.torch import load_file

    folder = Path(folder)
    card_path, weights = folder / paths.SPAN_CARD_NAME, folder / paths.SPAN_WEIGHTS_NAME
    if not card_path.is_file() or not weights.is_file():
        raise ArtifactError(
            "span model weights or card missing: run `dvc repro train_spans`", path=folder
        )
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if card.get("format") != CARD_FORMAT:
        raise ArtifactError(f"span model card format {card.get('format')!r}", path=card_path)
    model = SpanModel(SpanModelConfig(**card["config"]))
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as error:
        raise ArtifactError(
            f"span model weights do not fit its card: {error}", path=weights
        ) from error
    model.eval()
    return LoadedSpanModel(seed=int(card["seed"]), card=card, model=model)


def load_span_models(root: Path) -> list[LoadedSpanModel]:
    """Every seed's span model under ``models/spans`` (seed order); ``ArtifactError`` if none."""
    base = paths.under(root, paths.SPAN_MODELS_DIR)
    folders = sorted(base.glob("seed_*")) if base.is_dir() else []
    if not folders:
        raise ArtifactError("no trained span model: run `dvc repro train_spans`", path=base)
    return sorted((load_span_model(f) for f in folders), key=lambda m: m.seed)
