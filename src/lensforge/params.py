"""params.yaml -> frozen, typed dataclasses, one per section.

Unknown keys, missing keys and values of the wrong type raise ``ParamsError`` naming the key:
a typo in params.yaml must never silently fall back to a default (there are no defaults here).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

import yaml

from lensforge.errors import ParamsError

POLES = ("negative", "neutral", "positive")


@dataclasses.dataclass(frozen=True)
class DataParams:
    synsets: Literal["imbalanced", "enriched"]
    simplexes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ValidateParams:
    min_synsets_per_pole: int
    min_experiential_per_pole: int


@dataclasses.dataclass(frozen=True)
class SplitParams:
    train: float
    validation: float
    test: float

    def __post_init__(self):
        fractions = (self.train, self.validation, self.test)
        if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
            raise ParamsError(
                f"split fractions must be positive and sum to 1, got {fractions}",
                row="prompts.split",
                rule="fractions",
            )


@dataclasses.dataclass(frozen=True)
class PromptsParams:
    seed: int
    per_synset: int
    minority_boost: bool
    behavioral_ratio: float
    include_experiential: bool
    split: SplitParams


@dataclasses.dataclass(frozen=True)
class ModelParams:
    source: Literal["gemma3-270m", "smollm2-135m", "hf"]
    name_or_path: str
    revision: str
    layer: int


@dataclasses.dataclass(frozen=True)
class ActivationsParams:
    pooling: Literal["last", "mean"]
    dtype: Literal["float16", "float32"]
    batch_size: int
    max_length: int
    shard_size: int


@dataclasses.dataclass(frozen=True)
class BalanceParams:
    strategy: Literal["none", "downsample_min", "median_target", "class_weight"]
    base_prompts: int


@dataclasses.dataclass(frozen=True)
class LensParams:
    kind: Literal["tripole", "two_head"]


@dataclasses.dataclass(frozen=True)
class LossParams:
    margin_weight: float
    ortho_weight: float
    margin_target: float
    margin_floor: float


@dataclasses.dataclass(frozen=True)
class OptimizerParams:
    lr: float
    weight_decay: float


@dataclasses.dataclass(frozen=True)
class TrainParams:
    seeds: tuple[int, ...]
    lens: LensParams
    loss: LossParams
    optimizer: OptimizerParams
    batch_size: int
    max_epochs: int
    patience: int
    standardize: bool


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    ece_bins: int
    catastrophic_f1: float
    imbalance_minority_f1: float
    imbalance_majority_f1: float
    dominant_loss_fraction: float
    collapse_separation: float
    tiers: dict[str, float]


@dataclasses.dataclass(frozen=True)
class Params:
    data: DataParams
    validate: ValidateParams
    prompts: PromptsParams
    model: ModelParams
    activations: ActivationsParams
    balance: BalanceParams
    train: TrainParams
    evaluate: EvaluateParams


_POSITIVE_INTS = {
    "per_synset",
    "batch_size",
    "max_length",
    "shard_size",
    "base_prompts",
    "max_epochs",
    "patience",
    "ece_bins",
    "layer",
}


def _convert(value: object, hint: object, key: str) -> object:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is Literal:
        if value not in get_args(hint):
            raise ParamsError(
                f"{key} must be one of {list(get_args(hint))}, got {value!r}",
                row=key,
                rule="domain",
            )
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"{key} must be a list, got {value!r}", row=key, rule="type")
        (item_hint, _) = get_args(hint)
        return tuple(_convert(v, item_hint, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{key} must be a mapping, got {value!r}", row=key, rule="type")
        key_hint, value_hint = get_args(hint)
        return {
            _convert(k, key_hint, f"{key}.{k}"): _convert(v, value_hint, f"{key}.{k}")
            for k, v in value.items()
        }
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unions are not supported in params ({key})")
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key} must be true or false, got {value!r}", row=key, rule="type")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key} must be an integer, got {value!r}", row=key, rule="type")
        if key.rsplit(".", 1)[-1] in _POSITIVE_INTS and value < 1:
            raise ParamsError(f"{key} must be >= 1, got {value}", row=key, rule="range")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{key} must be a number, got {value!r}", row=key, rule="type")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key} must be a string, got {value!r}", row=key, rule="type")
        return value
    raise TypeError(f"unsupported params type {hint!r} for {key}")


def _build(cls: type, raw: object, prefix: str):
    where = prefix or "params"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping, got {raw!r}", row=where, rule="type")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    missing = [n for n in names if n not in raw]
    if unknown:
        raise ParamsError(f"unknown key(s) {unknown} in {where}", row=where, rule="known keys")
    if missing:
        raise ParamsError(f"missing key(s) {missing} in {where}", row=where, rule="required keys")
    values = {n: _convert(raw[n], hints[n], f"{prefix}.{n}" if prefix else n) for n in names}
    return cls(**values)


def parse(raw: object) -> Params:
    """Build ``Params`` from the parsed YAML mapping; raises ``ParamsError`` on any mismatch."""
    params = _build(Params, raw, "")
    if not 0.0 <= params.prompts.behavioral_ratio <= 1.0:
        raise ParamsError(
            f"prompts.behavioral_ratio must be in [0, 1], got {params.prompts.behavioral_ratio}",
            row="prompts.behavioral_ratio",
            rule="range",
        )
    if params.model.source == "hf" and not params.model.name_or_path:
        raise ParamsError(
            "model.name_or_path is required when model.source is hf",
            row="model.name_or_path",
            rule="required",
        )
    if not params.train.seeds:
        raise ParamsError(
            "train.seeds must list at least one seed", row="train.seeds", rule="range"
        )
    return params


def load(path: Path | str = "params.yaml") -> Params:
    """Read and parse params.yaml; a missing file or broken YAML is a ``ParamsError``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError("params file not found", path=path, rule="exists") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"params file is not valid YAML: {exc}", path=path, rule="yaml") from None
    try:
        return parse(raw)
    except ParamsError as exc:
        raise ParamsError(exc.message, path=path, row=exc.row, rule=exc.rule) from None
