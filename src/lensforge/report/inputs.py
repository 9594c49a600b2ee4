"""What the report reads: one small function per input file, each returning a plain table.

Every reader raises ``ArtifactError`` naming the file when it is missing, unreadable, empty or
lacks a column or key the report draws; nothing is guessed or filled in. Branches change their
output formats over time: keep each reader to one file, so a format change touches one function.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lensforge.core import artifacts, paths
from lensforge.core.errors import ArtifactError

# Curves of the tripole trainer drawn per simplex (dvclive names, see lenses.training).
CURVE_METRICS = ("train/total", "val/macro_f1", "val/f1_neutral")
# Per-simplex keys of metrics/evaluate.json shown in the tier summary.
TIER_KEYS = ("tier", "test_tier", "macro_f1_mean", "macro_f1_std", "n_catastrophic")
# Per-quadrant keys of metrics/data_quality.json shown in the data-quality table.
QUALITY_KEYS = ("n_concepts", "lens_f1_mean", "ceiling", "target", "relevance_gap", "retention")


def read_table(path: Path, *, columns: Sequence[str], what: str, sep: str = ",") -> pd.DataFrame:
    """The CSV (or TSV) at ``path`` with at least ``columns`` and one row."""
    if not path.is_file():
        raise ArtifactError(f"{what} missing", path=path, rule="file exists")
    try:
        frame = pd.read_csv(path, sep=sep)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{what} is not a readable table ({exc})", path=path) from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ArtifactError(f"{what} lacks columns {missing}", path=path, rule="columns")
    if frame.empty:
        raise ArtifactError(f"{what} has no rows", path=path, rule="non-empty")
    return frame


def read_mapping(path: Path, *, what: str) -> dict:
    data = artifacts.read_json(path, what=what)
    if not isinstance(data, dict):
        raise ArtifactError(f"{what} is not a JSON object", path=path, rule="JSON object")
    return data


def _require(mapping: dict, key: str, *, path: Path, what: str):
    if key not in mapping:
        raise ArtifactError(f"{what} lacks key {key!r}", path=path, rule="keys")
    return mapping[key]


def _split_class(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``simplex:pole`` labels -> (simplex, pole); simplex names may hold ``/`` but not ``:``."""
    parts = values.astype(str).str.rsplit(":", n=1, expand=True)
    return parts[0], parts[1]


# ---- simplex branch


def simplex_confusion(root: Path) -> pd.DataFrame:
    """Test predictions of every seed: columns ``simplex``, ``seed``, ``actual``, ``predicted``."""
    path = paths.under(root, paths.EVALUATE_CONFUSION)
    frame = read_table(path, columns=("actual", "predicted", "seed"), what="evaluate confusion")
    simplex, actual = _split_class(frame["actual"])
    _, predicted = _split_class(frame["predicted"])
    if actual.isna().any() or predicted.isna().any():
        raise ArtifactError(
            "evaluate confusion has a class not written simplex:pole", path=path, rule="labels"
        )
    return pd.DataFrame(
        {"simplex": simplex, "seed": frame["seed"], "actual": actual, "predicted": predicted}
    )


def simplex_f1_by_seed(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.EVALUATE_F1_BY_SEED)
    columns = ("simplex", "pole", "seed", "f1_score")
    return read_table(path, columns=columns, what="evaluate F1 by seed")[list(columns)]


def simplex_calibration(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.EVALUATE_CALIBRATION)
    columns = ("simplex", "confidence", "accuracy", "count")
    return read_table(path, columns=columns, what="evaluate calibration")[list(columns)]


def training_curves(
    root: Path, simplex: str, seeds: Sequence[int], *, metrics: Sequence[str] = CURVE_METRICS
) -> dict[str, dict[str, pd.DataFrame]]:
    """``{metric: {"seed <n>": frame of step, value}}`` from the dvclive TSVs that
    ``core.curves`` writes under ``metrics/train/<simplex>/seed_<n>/plots/metrics/``."""
    panels: dict[str, dict[str, pd.DataFrame]] = {metric: {} for metric in metrics}
    for seed in seeds:
        plots_dir = paths.train_live_dir(root, simplex, int(seed)) / "plots" / "metrics"
        for metric in metrics:
            name = Path(metric).name
            frame = read_table(
                plots_dir / f"{metric}.tsv",
                columns=("step", name),
                what=f"training curve {metric} of {simplex} seed {seed}",
                sep="\t",
            )
            panels[metric][f"seed {seed}"] = frame.rename(columns={name: "value"})
    return panels


def simplex_tiers(root: Path) -> pd.DataFrame:
    """One row per simplex of metrics/evaluate.json (flat ``<simplex>/<key>``) with TIER_KEYS."""
    path = paths.under(root, paths.EVALUATE_METRICS)
    data = read_mapping(path, what="evaluate metrics")
    suffix = "/test_tier"  # one per simplex (``.../set/macro_f1_mean`` is not a simplex)
    simplexes = sorted(key[: -len(suffix)] for key in data if key.endswith(suffix))
    if not simplexes:
        raise ArtifactError(
            f"evaluate metrics has no <simplex>{suffix} key", path=path, rule="keys"
        )
    rows = [
        {"simplex": simplex}
        | {
            key: _require(data, f"{simplex}/{key}", path=path, what="evaluate metrics")
            for key in TIER_KEYS
        }
        for simplex in simplexes
    ]
    return pd.DataFrame(rows)


def balance(root: Path) -> tuple[str, pd.DataFrame]:
    """The balancing strategy and one row per simplex and pole: ``n_rows``, ``n_synsets``,
    ``weight`` and the simplex's ``imbalance_ratio``."""
    path = paths.under(root, paths.BALANCE_SUMMARY)
    data = read_mapping(path, what="balance summary")
    strategy = str(_require(data, "strategy", path=path, what="balance metrics"))
    rows = []
    for simplex, entry in sorted(data.items()):
        if not (isinstance(entry, dict) and "n_rows" in entry):
            continue
        ratio = _require(entry, "imbalance_ratio", path=path, what=f"balance of {simplex}")
        for pole, counts in entry.items():
            if isinstance(counts, dict):
                row = {"simplex": simplex, "pole": pole, "imbalance_ratio": ratio}
                for key in ("n_rows", "n_synsets", "weight"):
                    row[key] = _require(counts, key, path=path, what=f"balance of {simplex}/{pole}")
                rows.append(row)
    if not rows:
        raise ArtifactError("balance metrics names no simplex", path=path, rule="keys")
    return strategy, pd.DataFrame(rows)


def layer_sweep(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.LAYER_SWEEP_PLOT)
    columns = ("layer", "simplex", "val_macro_f1", "test_macro_f1", "val_neutral_f1")
    columns += ("test_neutral_f1",)
    return read_table(path, columns=columns, what="layer sweep")[list(columns)]


# ---- adjudication branch


def adjudication_scores(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From metrics/evaluate_adjudications.json: one row per task (``macro_f1``, ``accuracy``,
    ``ece_uniform``, ``tuned_macro_f1``) and one row per task and class (``f1``, ``tuned_f1``,
    ``support``). A task is a top-level object holding ``macro_f1``; its classes are the nested
    objects holding ``f1``; ``tuned`` holds the scores with offsets tuned on validation."""
    path = paths.under(root, paths.EVALUATE_ADJUDICATIONS_METRICS)
    data = read_mapping(path, what="evaluate_adjudications metrics")
    tasks, classes = [], []
    for task, entry in sorted(data.items()):
        if not (isinstance(entry, dict) and "macro_f1" in entry):
            continue
        what = f"evaluate_adjudications metrics of task {task}"
        tuned = _require(entry, "tuned", path=path, what=what)
        row = {"task": task, "macro_f1": entry["macro_f1"]}
        row |= {
            key: _require(entry, key, path=path, what=what) for key in ("accuracy", "ece_uniform")
        }
        row["tuned_macro_f1"] = _require(tuned, "macro_f1", path=path, what=what)
        tasks.append(row)
        for name, scores in entry.items():
            if isinstance(scores, dict) and "f1" in scores:
                classes.append(
                    {
                        "task": task,
                        "class": name,
                        "f1": scores["f1"],
                        "tuned_f1": _require(tuned, f"{name}_f1", path=path, what=what),
                        "support": _require(scores, "support", path=path, what=what),
                    }
                )
    if not tasks:
        raise ArtifactError("evaluate_adjudications metrics names no task", path=path, rule="keys")
    return pd.DataFrame(tasks), pd.DataFrame(classes)


def adjudication_confusion(root: Path, task: str) -> pd.DataFrame:
    """Test predictions of one task, every seed: ``actual``, ``predicted``."""
    path = paths.adjudication_confusion_path(root, task)
    columns = ("actual", "predicted")
    return read_table(path, columns=columns, what=f"adjudication confusion of {task}")


def adjudication_calibration(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.EVALUATE_ADJUDICATIONS_CALIBRATION)
    columns = ("task", "confidence", "accuracy", "count")
    return read_table(path, columns=columns, what="adjudication calibration")[list(columns)]


# ---- concept branch


def concept_summary(root: Path) -> dict[str, float]:
    """The scalar headline numbers of metrics/evaluate_concepts.json (not per-layer keys)."""
    path = paths.under(root, paths.EVALUATE_CONCEPTS_METRICS)
    data = read_mapping(path, what="evaluate_concepts metrics")
    for key in ("n_concepts", "test_f1_mean"):
        _require(data, key, path=path, what="evaluate_concepts metrics")
    return {
        key: value
        for key, value in sorted(data.items())
        if "/" not in key and isinstance(value, int | float)
    }


def concept_tiers(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.EVALUATE_CONCEPTS_TIERS)
    columns = ("pack_layer", "tier", "n_concepts")
    return read_table(path, columns=columns, what="concept tiers by layer")[list(columns)]


def concept_f1_distribution(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.EVALUATE_CONCEPTS_F1)
    columns = ("f1_bin", "n_concepts")
    return read_table(path, columns=columns, what="concept F1 distribution")[list(columns)]


def concept_f1_by_samples(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.EVALUATE_CONCEPTS_F1_BY_SAMPLES)
    columns = ("concept", "samples", "test_f1")
    return read_table(path, columns=columns, what="concept F1 by samples")[list(columns)]


# ---- data-quality branch


def quality_quadrants(root: Path) -> pd.DataFrame:
    """One row per quadrant of metrics/data_quality.json (flat ``<quadrant>/<key>``)."""
    path = paths.under(root, paths.DATA_QUALITY_METRICS)
    data = read_mapping(path, what="data_quality metrics")
    quadrants = sorted({key.split("/")[0] for key in data if key.endswith("/n_concepts")})
    if not quadrants:
        raise ArtifactError(
            "data_quality metrics has no <quadrant>/n_concepts key", path=path, rule="keys"
        )
    rows = [
        {"quadrant": quadrant}
        | {
            key: _require(data, f"{quadrant}/{key}", path=path, what="data_quality metrics")
            for key in QUALITY_KEYS
        }
        for quadrant in quadrants
    ]
    return pd.DataFrame(rows)


def quality_grades(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.DATA_QUALITY_BY_QUADRANT)
    columns = ("quadrant", "side", "grade", "share")
    return read_table(path, columns=columns, what="generation grades by quadrant")[list(columns)]


def quality_gap_vs_f1(root: Path) -> pd.DataFrame:
    path = paths.under(root, paths.DATA_QUALITY_GAP_VS_F1)
    columns = ("concept", "quadrant", "relevance_gap", "f1")
    return read_table(path, columns=columns, what="relevance gap against F1")[list(columns)]


# ---- span model

SPAN_SCORES = ("span_f1", "span_precision", "span_recall", "bar_auroc")
SPAN_BASELINES = {
    "volatility_rule": "volatility rule (past bars)",
    "window_rule": "forward rule (bars in the window)",
    "logistic": "logistic regression (past bars)",
}


def span_scores(root: Path) -> pd.DataFrame:
    """From metrics/evaluate_spans.json: one row per scorer (the model, mean over seeds, then each
    baseline) with its test span F1, precision, recall and per-bar AUROC."""
    path = paths.under(root, paths.EVALUATE_SPANS_METRICS)
    what = "span evaluation metrics"
    data = read_mapping(path, what=what)
    test = _require(data, "test", path=path, what=what)
    rows = [
        {"scorer": "span model"} | {k: _require(test, k, path=path, what=what) for k in SPAN_SCORES}
    ]
    baselines = _require(data, "baselines", path=path, what=what)
    for key, name in SPAN_BASELINES.items():
        scores = _require(
            _require(baselines, key, path=path, what=what), "test", path=path, what=what
        )
        rows.append({"scorer": name} | {k: scores.get(k) for k in SPAN_SCORES})
    return pd.DataFrame(rows)


def span_loss_share(root: Path) -> pd.DataFrame:
    columns = ("epoch", "class", "pointers", "span", "countdown")
    path = paths.under(root, paths.EVALUATE_SPANS_LOSS_SHARE_PLOT)
    return read_table(path, columns=columns, what="span loss shares")[list(columns)]


def span_windows(root: Path) -> pd.DataFrame:
    columns = ("position", "in_span", "predicted_probability")
    path = paths.under(root, paths.EVALUATE_SPANS_WINDOWS_PLOT)
    return read_table(path, columns=columns, what="span test windows")[list(columns)]
