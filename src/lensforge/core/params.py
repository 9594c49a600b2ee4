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

from lensforge.core.errors import ParamsError


@dataclasses.dataclass(frozen=True)
class DataParams:
    synsets: Literal["imbalanced", "enriched"]
    simplexes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ValidateParams:
    """Minimum counts per selected pole and the longest text each kind of field may hold."""

    min_synsets_per_pole: int
    min_experiential_per_pole: int
    max_definition_chars: int
    max_name_chars: int
    max_prompt_chars: int

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            low = 1 if name.startswith("max_") else 0
            if value < low:
                key = f"validate.{name}"
                raise ParamsError(f"{key} must be >= {low}, got {value}", row=key, rule="range")


@dataclasses.dataclass(frozen=True)
class SplitParams:
    """Fractions of groups per split (prompts.split, adjudicate.split); checked by ``parse``."""

    train: float
    validation: float
    test: float


@dataclasses.dataclass(frozen=True)
class PromptsParams:
    seed: int
    per_synset: int
    minority_boost: bool
    behavioral_ratio: float
    include_experiential: bool
    overlap: Literal["duplicate", "soft", "primary", "exclude"]
    overlap_primary: Literal["neutral", "polar"]
    split: SplitParams


@dataclasses.dataclass(frozen=True)
class ModelParams:
    source: Literal["gemma3-270m", "smollm2-135m", "hf"]
    name_or_path: str
    revision: str
    layers: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ActivationsParams:
    pooling: Literal["last", "mean"]
    dtype: Literal["float16", "float32"]
    compute_dtype: Literal["float32", "bfloat16"]
    batch_size: int
    max_length: int
    shard_size: int


@dataclasses.dataclass(frozen=True)
class BalanceParams:
    strategy: Literal["none", "downsample_min", "median_target", "class_weight"]
    base_prompts: int


@dataclasses.dataclass(frozen=True)
class LensParams:
    kind: Literal["tripole", "two_head", "mlp"]
    hidden: int
    dropout: float

    def __post_init__(self):
        _check_range(self.dropout, 0.0, 0.95, "train.lens.dropout")


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
    layer: int
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


# --------------------------------------------------------------------------------------------
# Adjudications branch (import_adjudications -> adjudicate -> finetune -> evaluate_adjudications)


def _check_range(value: float, low: float, high: float, key: str) -> None:
    if not low <= value <= high:
        raise ParamsError(f"{key} must be in [{low}, {high}], got {value}", row=key, rule="range")


@dataclasses.dataclass(frozen=True)
class ImportItemsParams:
    tweets: int
    movie_reviews: int
    nyt_editorials: int
    amazon_reviews: int
    debates: int
    rotten_tomatoes: int

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if value < 0:
                key = f"import_adjudications.items.{name}"
                raise ParamsError(f"{key} must be >= 0, got {value}", row=key, rule="range")


@dataclasses.dataclass(frozen=True)
class BundledTasksParams:
    scores_task: str
    source_label_task: str


@dataclasses.dataclass(frozen=True)
class ImportAdjudicationsParams:
    source: Literal["bundled", "csv"]
    seed: int
    items: ImportItemsParams
    bundled_tasks: BundledTasksParams
    min_chars: int
    max_chars: int

    def __post_init__(self):
        if not 1 <= self.min_chars <= self.max_chars:
            raise ParamsError(
                f"need 1 <= min_chars <= max_chars, got {self.min_chars}, {self.max_chars}",
                row="import_adjudications.min_chars",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class AdjudicationTaskParams:
    classes: tuple[str, ...]
    label_source: Literal["scores", "labels", "mapping"]
    score_range: tuple[float, ...]
    cuts: tuple[float, ...]
    mapping: dict[str, str]


def _check_task(name: str, task: AdjudicationTaskParams) -> None:
    key = f"adjudicate.tasks.{name}"

    def fail(message: str, rule: str) -> None:
        raise ParamsError(f"{key}: {message}", row=key, rule=rule)

    if len(task.classes) < 2 or len(set(task.classes)) != len(task.classes):
        fail(f"needs two or more distinct classes, got {list(task.classes)}", "classes")
    if task.label_source == "scores":
        low_high = task.score_range
        if len(low_high) != 2 or low_high[0] >= low_high[1]:
            fail(f"score_range must be [low, high] with low < high, got {list(low_high)}", "range")
        cuts = list(task.cuts)
        if len(cuts) != len(task.classes) - 1 or cuts != sorted(set(cuts)):
            fail(
                f"cuts must be {len(task.classes) - 1} increasing scores (one between each pair "
                f"of classes), got {cuts}",
                "cuts",
            )
        if not all(low_high[0] < c < low_high[1] for c in cuts):
            fail(f"cuts {cuts} must lie inside score_range {list(low_high)}", "cuts")
    elif task.score_range or task.cuts:
        fail("score_range and cuts are for label_source scores only: leave them []", "unused")
    if task.label_source == "mapping":
        unknown = sorted(set(task.mapping.values()) - set(task.classes))
        if not task.mapping or unknown:
            fail(
                f"mapping must map source labels to the classes {list(task.classes)}; "
                f"unknown class(es) {unknown}",
                "mapping",
            )
    elif task.mapping:
        fail("mapping is for label_source mapping only: leave it {}", "unused")


@dataclasses.dataclass(frozen=True)
class AdjudicateParams:
    tasks: dict[str, AdjudicationTaskParams]
    method: Literal["mean_threshold", "majority", "dawid_skene", "glad", "mace"]
    n_iter: int
    min_agreement: float
    min_confidence: float
    min_raters: int
    min_per_class: int
    seed: int
    split: SplitParams

    def __post_init__(self):
        if not self.tasks:
            raise ParamsError(
                "adjudicate.tasks must declare at least one task",
                row="adjudicate.tasks",
                rule="required",
            )
        for name, task in self.tasks.items():
            _check_task(name, task)
        _check_range(self.min_agreement, 0.0, 1.0, "adjudicate.min_agreement")
        _check_range(self.min_confidence, 0.0, 1.0, "adjudicate.min_confidence")
        if self.min_raters < 1 or self.min_per_class < 1 or self.n_iter < 1:
            raise ParamsError(
                "need min_raters, min_per_class and n_iter >= 1, got "
                f"{self.min_raters}, {self.min_per_class}, {self.n_iter}",
                row="adjudicate.min_raters",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class EncoderParams:
    source: Literal["minilm", "hf", "subject"]
    name_or_path: str
    pooling: Literal["cls", "mean", "last4_mean"]
    max_length: int

    def __post_init__(self):
        if self.source == "hf" and not self.name_or_path:
            raise ParamsError(
                "finetune.encoder.name_or_path is required when finetune.encoder.source is hf",
                row="finetune.encoder.name_or_path",
                rule="required",
            )


@dataclasses.dataclass(frozen=True)
class HeadParams:
    hidden_size: int
    n_hidden: int
    dropout: float

    def __post_init__(self):
        _check_range(self.dropout, 0.0, 0.95, "finetune.head.dropout")
        if self.n_hidden < 0:
            raise ParamsError(
                f"finetune.head.n_hidden must be >= 0, got {self.n_hidden}",
                row="finetune.head.n_hidden",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class TaskLossParams:
    loss: Literal["ce", "focal"]
    focal_gamma: float
    label_smoothing: float
    class_weights: bool
    class_weight_multipliers: dict[str, float]
    class_weight_cap: float
    task_weight: float
    oversample_boosts: dict[str, float]


@dataclasses.dataclass(frozen=True)
class TaskWeightingParams:
    method: Literal["fixed", "uncertainty"]
    normalize: bool
    normalize_momentum: float
    log_var_min: float
    log_var_max: float
    log_var_lr: float

    def __post_init__(self):
        _check_range(
            self.normalize_momentum, 0.0, 0.999, "finetune.task_weighting.normalize_momentum"
        )
        if self.log_var_min > self.log_var_max or self.log_var_lr <= 0:
            raise ParamsError(
                f"need log_var_min <= log_var_max and log_var_lr > 0, got {self.log_var_min}, "
                f"{self.log_var_max}, {self.log_var_lr}",
                row="task_weighting",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class OversampleParams:
    enabled: bool
    joint_alpha: float
    max_joint_weight: float


@dataclasses.dataclass(frozen=True)
class FinetuneOptimizerParams:
    lr: float
    weight_decay: float
    llrd_decay: float
    head_lr_multiplier: float
    warmup_ratio: float

    def __post_init__(self):
        _check_range(self.llrd_decay, 1e-6, 1.0, "finetune.optimizer.llrd_decay")
        _check_range(self.warmup_ratio, 0.0, 1.0, "finetune.optimizer.warmup_ratio")


@dataclasses.dataclass(frozen=True)
class FinetuneParams:
    seeds: tuple[int, ...]
    encoder: EncoderParams
    head: HeadParams
    losses: dict[str, TaskLossParams]
    task_weighting: TaskWeightingParams
    oversample: OversampleParams
    optimizer: FinetuneOptimizerParams
    batch_size: int
    grad_accumulation: int
    max_grad_norm: float
    max_epochs: int
    patience: int
    rdrop_alpha: float
    mixed_precision: Literal["fp32", "bf16", "fp16"]

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ParamsError(
                f"finetune.seeds must list one or more distinct seeds, got {list(self.seeds)}",
                row="finetune.seeds",
                rule="range",
            )
        for task, loss in self.losses.items():
            key = f"finetune.losses.{task}"
            _check_range(loss.label_smoothing, 0.0, 0.5, f"{key}.label_smoothing")
            _check_range(loss.focal_gamma, 0.0, 10.0, f"{key}.focal_gamma")
            if loss.class_weight_cap <= 0 or loss.task_weight < 0:
                raise ParamsError(
                    f"{key}: class_weight_cap must be > 0 and task_weight >= 0",
                    row=key,
                    rule="range",
                )
        if self.grad_accumulation < 1 or self.patience < 1 or self.max_epochs < 1:
            raise ParamsError(
                "finetune.grad_accumulation, patience and max_epochs must be >= 1",
                row="finetune",
                rule="range",
            )
        if self.rdrop_alpha < 0 or self.max_grad_norm <= 0:
            raise ParamsError(
                "finetune.rdrop_alpha must be >= 0 and max_grad_norm > 0",
                row="finetune",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class OffsetsParams:
    grid_min: float
    grid_max: float
    grid_step: float
    n_rounds: int

    def __post_init__(self):
        if self.grid_step <= 0 or self.grid_min > 0 or self.grid_max < 0 or self.n_rounds < 1:
            raise ParamsError(
                "evaluate_adjudications.offsets: need grid_min <= 0 <= grid_max, grid_step > 0, "
                f"n_rounds >= 1, got {self}",
                row="evaluate_adjudications.offsets",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class BaselinesParams:
    tfidf_max_features: int
    tfidf_ngram_max: int
    tfidf_min_df: int
    logreg_c: float
    domain_margin: float

    def __post_init__(self):
        counts = (self.tfidf_max_features, self.tfidf_ngram_max, self.tfidf_min_df)
        if min(counts) < 1 or self.logreg_c <= 0:
            raise ParamsError(
                "evaluate_adjudications.baselines: need tfidf_max_features, tfidf_ngram_max, "
                f"tfidf_min_df >= 1 and logreg_c > 0, got {self}",
                row="evaluate_adjudications.baselines",
                rule="range",
            )
        _check_range(self.domain_margin, 0.0, 1.0, "evaluate_adjudications.baselines.domain_margin")


@dataclasses.dataclass(frozen=True)
class EvaluateAdjudicationsParams:
    batch_size: int
    ece_bins: int
    catastrophic_f1: float
    dominant_loss_fraction: float
    collapse_separation: float
    offsets: OffsetsParams
    baselines: BaselinesParams


# --------------------------------------------------------------------------------------------
# Concept branch (validate_concepts -> concept_prompts -> concept_activations -> train_concepts
# -> evaluate_concepts -> lens_pack)


@dataclasses.dataclass(frozen=True)
class ValidateConceptsParams:
    max_definition_chars: int


@dataclasses.dataclass(frozen=True)
class ConceptPromptsParams:
    pack_layers: tuple[int, ...]
    per_concept: int
    behavioral_ratio: float
    unit: Literal["prompt", "concept"]
    random_negative_ratio: float
    seed: int
    split: SplitParams

    def __post_init__(self):
        if not self.pack_layers or any(layer < 0 for layer in self.pack_layers):
            raise ParamsError(
                f"concept_prompts.pack_layers must list pack layers >= 0, got {self.pack_layers}",
                row="concept_prompts.pack_layers",
                rule="range",
            )
        _check_range(self.behavioral_ratio, 0.0, 1.0, "concept_prompts.behavioral_ratio")
        if self.random_negative_ratio < 0:
            raise ParamsError(
                "concept_prompts.random_negative_ratio must be >= 0",
                row="concept_prompts.random_negative_ratio",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class ConceptScheduleParams:
    kind: Literal["exponential", "linear"]
    start: int
    step: int
    cap: int
    n_iterations: int


@dataclasses.dataclass(frozen=True)
class ConceptTierParams:
    name: str
    min_f1: float
    first: int
    last: int


@dataclasses.dataclass(frozen=True)
class TrainConceptsParams:
    layer: int
    kind: Literal["linear", "mlp"]
    seed: int
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    standardize: bool
    schedule: ConceptScheduleParams
    tiers: tuple[ConceptTierParams, ...]
    max_train_val_gap: float
    positive_fraction: float
    validation_negative_ratio: float
    max_lenses_per_program: int

    def __post_init__(self):
        _check_range(self.positive_fraction, 0.01, 0.99, "train_concepts.positive_fraction")
        if self.lr <= 0 or self.max_train_val_gap < 0:
            raise ParamsError(
                "train_concepts: lr must be > 0 and max_train_val_gap >= 0",
                row="train_concepts",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class EvaluateConceptsParams:
    ece_bins: int


# ---- data-quality branch (quality_samples -> data_quality)


def _check_at_least_one(section: object, prefix: str, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(section, name)
        if value < 1:
            key = f"{prefix}.{name}"
            raise ParamsError(f"{key} must be >= 1, got {value}", row=key, rule="range")


@dataclasses.dataclass(frozen=True)
class QuadrantParams:
    """Variety thresholds of the quadrants (inclusive): positive variety = WordNet synsets,
    negative variety = siblings (concepts sharing a parent)."""

    low_synsets_max: int
    high_synsets_min: int
    low_siblings_max: int
    high_siblings_min: int

    def __post_init__(self):
        if min(dataclasses.astuple(self)) < 0 or not (
            self.low_synsets_max < self.high_synsets_min
            and self.low_siblings_max < self.high_siblings_min
        ):
            raise ParamsError(
                "quality_samples.quadrants: thresholds must be >= 0 and every low maximum below "
                f"its high minimum, got {dataclasses.asdict(self)}",
                row="quality_samples.quadrants",
                rule="low < high",
            )


@dataclasses.dataclass(frozen=True)
class QualitySamplesParams:
    per_quadrant: int
    seed: int
    quadrants: QuadrantParams
    n_positive: int
    n_negative: int
    max_new_tokens: int
    decoding: Literal["greedy", "sample"]
    temperature: float
    batch_size: int

    def __post_init__(self):
        _check_at_least_one(self, "quality_samples", ("per_quadrant", "n_positive", "n_negative",
                                                      "max_new_tokens"))  # fmt: skip
        if self.temperature <= 0:
            raise ParamsError(
                f"quality_samples.temperature must be > 0, got {self.temperature}",
                row="quality_samples.temperature",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class GradingParams:
    empty_chars: int
    short_chars: int
    ngram: int
    max_repetition: float

    def __post_init__(self):
        _check_range(self.max_repetition, 0.0, 1.0, "data_quality.grading.max_repetition")
        if not 1 <= self.empty_chars <= self.short_chars or self.ngram < 1:
            raise ParamsError(
                "data_quality.grading: need 1 <= empty_chars <= short_chars and ngram >= 1",
                row="data_quality.grading",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class JudgeParams:
    kind: Literal["embedding"]
    source: Literal["minilm", "hf"]
    name_or_path: str
    max_length: int
    batch_size: int
    n_random_candidates: int
    calibration_concepts: int
    grade_levels: tuple[float, ...]

    def __post_init__(self):
        levels = self.grade_levels
        if len(levels) != 4 or any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
            raise ParamsError(
                f"data_quality.judge.grade_levels must be 4 increasing numbers, got {levels}",
                row="data_quality.judge.grade_levels",
                rule="4 increasing levels",
            )
        if self.source == "hf" and not self.name_or_path:
            raise ParamsError(
                "data_quality.judge.name_or_path is required when source is hf",
                row="data_quality.judge.name_or_path",
                rule="required",
            )
        if self.n_random_candidates < 0:
            raise ParamsError(
                "data_quality.judge.n_random_candidates must be >= 0",
                row="data_quality.judge.n_random_candidates",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class DataQualityParams:
    grading: GradingParams
    judge: JudgeParams
    seed: int
    n_bootstrap: int
    ci_level: float
    target_margin: float
    target_step: float

    def __post_init__(self):
        _check_at_least_one(self, "data_quality", ("n_bootstrap",))
        _check_at_least_one(self.judge, "data_quality.judge", ("calibration_concepts",))
        _check_range(self.ci_level, 0.5, 0.999, "data_quality.ci_level")
        _check_range(self.target_margin, 0.0, 0.5, "data_quality.target_margin")
        _check_range(self.target_step, 0.001, 0.5, "data_quality.target_step")


@dataclasses.dataclass(frozen=True)
class SpanLabelParams:
    horizon: int
    multiple: float
    trailing: int
    smoothing: int
    min_length: int

    def __post_init__(self):
        if self.multiple <= 0 or self.smoothing < 1 or self.trailing < 2 or self.horizon < 2:
            raise ParamsError(
                "windows.label needs multiple > 0, smoothing >= 1, trailing >= 2, horizon >= 2",
                row="windows.label",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class SpanSplitParams:
    validation: float
    test: float
    purge: int

    def __post_init__(self):
        _check_range(self.validation, 0.01, 0.5, "windows.split.validation")
        _check_range(self.test, 0.01, 0.5, "windows.split.test")
        if self.purge < 0:
            raise ParamsError(
                f"windows.split.purge must be >= 0, got {self.purge}",
                row="windows.split.purge",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class WindowsParams:
    instruments: tuple[str, ...]
    holdout: str
    window: int
    stride: int
    label: SpanLabelParams
    split: SpanSplitParams

    def __post_init__(self):
        if not self.instruments or len(set(self.instruments)) != len(self.instruments):
            raise ParamsError(
                f"windows.instruments must list distinct instruments, got {list(self.instruments)}",
                row="windows.instruments",
                rule="range",
            )
        if self.holdout and self.holdout in self.instruments:
            raise ParamsError(
                f"windows.holdout {self.holdout!r} is also in windows.instruments",
                row="windows.holdout",
                rule="held-out instrument not trained on",
            )
        if self.window < 8 or self.stride < 1:
            raise ParamsError(
                "windows.window must be >= 8 and windows.stride >= 1",
                row="windows",
                rule="range",
            )
        # Bar t's label reads returns up to t + horizon, and whether t sits in a run of
        # min_length bars reads the ratio up to t + min_length - 1 (smoothing looks back only).
        needed = self.label.horizon + self.label.min_length - 1
        if self.split.purge < needed:
            raise ParamsError(
                f"windows.split.purge {self.split.purge} < label horizon + min_length - 1 = "
                f"{needed}: a label at the end of one split would read bars of the next",
                row="windows.split.purge",
                rule="purge gap covers the label look-ahead",
            )


SPAN_TASKS = ("class", "pointers", "span", "countdown")


@dataclasses.dataclass(frozen=True)
class SpanEncoderParams:
    kind: Literal["conv", "gru"]
    hidden: int
    n_layers: int
    kernel: int
    dropout: float
    causal: bool

    def __post_init__(self):
        _check_range(self.dropout, 0.0, 0.9, "train_spans.encoder.dropout")
        if self.n_layers < 1 or self.kernel < 1 or self.kernel % 2 == 0:
            raise ParamsError(
                "train_spans.encoder needs n_layers >= 1 and an odd kernel",
                row="train_spans.encoder",
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class TrainSpansParams:
    seeds: tuple[int, ...]
    encoder: SpanEncoderParams
    tasks: tuple[str, ...]
    task_weights: dict[str, float]
    task_weighting: TaskWeightingParams
    countdown_scale: Literal["raw", "unit"]
    countdown_clip: float
    huber_delta: float
    span_label_smoothing: float
    lr: float
    weight_decay: float
    batch_size: int
    max_grad_norm: float
    max_epochs: int
    patience: int
    threshold: float

    def __post_init__(self):
        key = "train_spans"
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ParamsError(
                f"{key}.seeds must list one or more distinct seeds, got {list(self.seeds)}",
                row=f"{key}.seeds",
                rule="range",
            )
        unknown = sorted(set(self.tasks) - set(SPAN_TASKS))
        if not self.tasks or unknown or len(set(self.tasks)) != len(self.tasks):
            raise ParamsError(
                f"{key}.tasks must list distinct tasks of {list(SPAN_TASKS)}, got "
                f"{list(self.tasks)}",
                row=f"{key}.tasks",
                rule="domain",
            )
        if "span" not in self.tasks:
            raise ParamsError(
                f"{key}.tasks must keep span (early stopping reads validation span F1)",
                row=f"{key}.tasks",
                rule="span head present",
            )
        if sorted(self.task_weights) != sorted(SPAN_TASKS):
            raise ParamsError(
                f"{key}.task_weights must name every task of {list(SPAN_TASKS)}",
                row=f"{key}.task_weights",
                rule="known keys",
            )
        _check_range(self.span_label_smoothing, 0.0, 0.5, f"{key}.span_label_smoothing")
        _check_range(self.threshold, 0.0, 1.0, f"{key}.threshold")
        if min(self.countdown_clip, self.huber_delta, self.lr, self.max_grad_norm) <= 0:
            raise ParamsError(
                f"{key}: countdown_clip, huber_delta, lr and max_grad_norm must be > 0",
                row=key,
                rule="range",
            )


@dataclasses.dataclass(frozen=True)
class EvaluateSpansParams:
    iou: float
    thresholds: tuple[float, ...]
    plot_windows: int
    collapse_separation: float
    dominant_loss_fraction: float
    logistic_c: float

    def __post_init__(self):
        _check_range(self.iou, 0.01, 1.0, "evaluate_spans.iou")
        if not self.thresholds or not all(0.0 < t < 1.0 for t in self.thresholds):
            raise ParamsError(
                "evaluate_spans.thresholds must list probabilities in (0, 1)",
                row="evaluate_spans.thresholds",
                rule="range",
            )
        if self.plot_windows < 0 or self.logistic_c <= 0:
            raise ParamsError(
                "evaluate_spans.plot_windows must be >= 0 and logistic_c > 0",
                row="evaluate_spans",
                rule="range",
            )


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
    import_adjudications: ImportAdjudicationsParams
    adjudicate: AdjudicateParams
    finetune: FinetuneParams
    evaluate_adjudications: EvaluateAdjudicationsParams
    validate_concepts: ValidateConceptsParams
    concept_prompts: ConceptPromptsParams
    train_concepts: TrainConceptsParams
    evaluate_concepts: EvaluateConceptsParams
    quality_samples: QualitySamplesParams
    data_quality: DataQualityParams
    windows: WindowsParams
    train_spans: TrainSpansParams
    evaluate_spans: EvaluateSpansParams


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
    "hidden",
    "per_concept",
    "max_definition_chars",
    "n_iterations",
    "max_lenses_per_program",
    "start",
    "cap",
    "first",
    "last",
    "window",
    "stride",
    "horizon",
    "trailing",
    "smoothing",
    "min_length",
    "n_layers",
    "kernel",
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


def _check_split(split: SplitParams, key: str) -> None:
    fractions = (split.train, split.validation, split.test)
    if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ParamsError(
            f"split fractions must be positive and sum to 1, got {fractions}",
            row=key,
            rule="fractions",
        )


def parse(raw: object) -> Params:
    """Build ``Params`` from the parsed YAML mapping; raises ``ParamsError`` on any mismatch."""
    params = _build(Params, raw, "")
    _check_split(params.prompts.split, "prompts.split")
    _check_split(params.adjudicate.split, "adjudicate.split")
    _check_split(params.concept_prompts.split, "concept_prompts.split")
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
