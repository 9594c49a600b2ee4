"""Report sections from the tables ``inputs`` reads: figures, tables and notes, no file access.

Figure ids are stable (``fig-<what>-<simplex or task>``) so tests and readers can find them.
"""

from __future__ import annotations

import numbers

import pandas as pd

from lensforge.core.paths import simplex_slug
from lensforge.report import figures
from lensforge.report.page import Figure, Note, Section, Table


def fmt(value) -> str:
    """Numbers to 3 decimals, integers and text as they are."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{value:.3f}"


def _table(frame: pd.DataFrame, *, caption: str) -> Table:
    rows = tuple(tuple(fmt(v) for v in row) for row in frame.itertuples(index=False))
    return Table(header=tuple(str(c) for c in frame.columns), rows=rows, caption=caption)


def summary_section(strategy: str, balance: pd.DataFrame, tiers: pd.DataFrame) -> Section:
    """Balancing (rows per pole and simplex) and the tier summary of every simplex."""
    counts = balance.pivot(index="simplex", columns="pole", values="n_rows")
    ratios = balance.groupby("simplex")["imbalance_ratio"].first()
    balance_table = counts.assign(imbalance_ratio=ratios).reset_index()
    return Section(
        section_id="summary",
        title="Balancing and tiers",
        intro=f"Training rows selected with the {strategy!r} balancing strategy; tiers grade "
        "the mean validation macro-F1 (tier) and the mean test macro-F1 (test_tier) over seeds.",
        blocks=(
            _table(tiers, caption="Tier summary per simplex (test set, mean and std over seeds)"),
            _table(balance_table, caption="Training rows per pole after balancing"),
            Figure(
                figure_id="fig-balance",
                alt="Training rows per pole and simplex after balancing",
                png=figures.grouped_bars(
                    counts, title=f"Training rows per pole ({strategy})", ylabel="rows"
                ),
            ),
        ),
    )


def confusion_counts(pairs: pd.DataFrame, *, classes=None) -> pd.DataFrame:
    """Counts of (actual, predicted) pairs as a square table, classes in first-seen order."""
    if classes is None:
        classes = list(dict.fromkeys([*pairs["actual"], *pairs["predicted"]]))
    table = pd.crosstab(pairs["actual"], pairs["predicted"])
    return table.reindex(index=classes, columns=classes, fill_value=0)


def simplex_section(
    simplex: str,
    *,
    confusion: pd.DataFrame,
    f1_by_seed: pd.DataFrame,
    calibration: pd.DataFrame,
    curves: dict[str, dict[str, pd.DataFrame]],
) -> Section:
    """Confusion matrix (summed over seeds), per-pole F1 across seeds, calibration and training
    curves of one simplex; every frame holds that simplex's rows only."""
    slug = simplex_slug(simplex)
    n_seeds = f1_by_seed["seed"].nunique()
    return Section(
        section_id=f"simplex-{slug}",
        title=f"Simplex {simplex}",
        intro=f"Test split, {n_seeds} seeds.",
        blocks=(
            Figure(
                figure_id=f"fig-confusion-{slug}",
                alt=f"Confusion matrix of {simplex}",
                png=figures.confusion(
                    confusion_counts(confusion, classes=list(pd.unique(f1_by_seed["pole"]))),
                    title=f"{simplex}: confusion",
                ),
                caption="Counts summed over seeds; shading is the share of the actual pole.",
            ),
            Figure(
                figure_id=f"fig-f1-seeds-{slug}",
                alt=f"Per-pole F1 across seeds of {simplex}",
                png=figures.points_by_group(
                    f1_by_seed, x="pole", y="f1_score", title=f"{simplex}: F1 per pole", ylabel="F1"
                ),
                caption="One dot per seed; the bar is the mean.",
            ),
            Figure(
                figure_id=f"fig-calibration-{slug}",
                alt=f"Calibration of {simplex}",
                png=figures.reliability(calibration, title=f"{simplex}: calibration"),
                caption="Accuracy against confidence per bin; the diagonal is perfect calibration.",
            ),
            Figure(
                figure_id=f"fig-curves-{slug}",
                alt=f"Training curves of {simplex}",
                png=figures.curves(curves, title=f"{simplex}: training curves"),
            ),
        ),
    )


def layer_sweep_section(sweep: pd.DataFrame) -> Section:
    """Macro-F1 and neutral F1 against the layer, per simplex; the dashed line marks the layer
    with the best validation macro-F1 (the layer one would pick, never chosen on test)."""
    blocks = []
    for simplex, rows in sweep.groupby("simplex", sort=True):
        best = rows.loc[rows["val_macro_f1"].idxmax(), "layer"]
        blocks.append(
            Figure(
                figure_id=f"fig-layer-sweep-{simplex_slug(str(simplex))}",
                alt=f"Layer sweep of {simplex}",
                png=figures.lines(
                    rows,
                    x="layer",
                    ys=("val_macro_f1", "test_macro_f1", "val_neutral_f1", "test_neutral_f1"),
                    title=f"{simplex}: F1 by layer",
                    ylabel="F1",
                    mark_x=best,
                ),
                caption=f"Best validation macro-F1 at layer {fmt(best)}.",
            )
        )
    return Section(
        section_id="layer-sweep",
        title="Layer sweep",
        intro="One tripole lens per cached layer (one seed, default balancing).",
        blocks=tuple(blocks),
    )


def adjudication_section(
    tasks: pd.DataFrame,
    classes: pd.DataFrame,
    *,
    confusions: dict[str, pd.DataFrame],
    calibration: pd.DataFrame,
) -> Section:
    """Confusion matrix per task, per-class F1 (raw and with tuned offsets), calibration."""
    blocks: list = [_table(tasks, caption="Scores per task (test split)")]
    for task, pairs in confusions.items():
        order = classes.loc[classes["task"] == task, "class"].tolist() or None
        blocks.append(
            Figure(
                figure_id=f"fig-adjudication-confusion-{task}",
                alt=f"Confusion matrix of the adjudication task {task}",
                png=figures.confusion(
                    confusion_counts(pairs, classes=order), title=f"{task}: confusion"
                ),
            )
        )
    per_class = classes.assign(label=classes["task"] + ":" + classes["class"])
    blocks.append(
        Figure(
            figure_id="fig-adjudication-f1",
            alt="Per-class F1 of the adjudication tasks",
            png=figures.grouped_bars(
                per_class.set_index("label")[["f1", "tuned_f1"]],
                title="Per-class F1",
                ylabel="F1",
                ylim=(0.0, 1.0),
            ),
            caption="tuned_f1: with the class offsets tuned on validation.",
        )
    )
    blocks.append(
        Figure(
            figure_id="fig-adjudication-calibration",
            alt="Calibration of the adjudication tasks",
            png=figures.reliability(calibration, title="Calibration", hue="task"),
            caption="Accuracy against confidence per bin; the diagonal is perfect calibration.",
        )
    )
    return Section(
        section_id="adjudications",
        title="Adjudication branch",
        intro="The encoder classifier fine-tuned on rater labels, scored on its test split.",
        blocks=tuple(blocks),
    )


def concept_section(
    summary: dict[str, float],
    *,
    tiers: pd.DataFrame,
    f1_distribution: pd.DataFrame,
    f1_by_samples: pd.DataFrame,
) -> Section:
    """Headline numbers, tiers per pack layer, the F1 distribution and F1 against samples."""
    summary_table = Table(
        header=("metric", "value"),
        rows=tuple((key, fmt(value)) for key, value in summary.items()),
        caption="Headline numbers",
    )
    tier_counts = tiers.pivot_table(
        index="pack_layer", columns="tier", values="n_concepts", aggfunc="sum", fill_value=0
    )
    tier_counts.index = [f"layer {layer}" for layer in tier_counts.index]
    return Section(
        section_id="concepts",
        title="Concept branch",
        intro="Concept lenses scored on their test prompts.",
        blocks=(
            summary_table,
            Figure(
                figure_id="fig-concept-tiers",
                alt="Concept tiers per pack layer",
                png=figures.stacked_bars(
                    tier_counts, title="Tiers per pack layer", ylabel="concepts"
                ),
            ),
            Figure(
                figure_id="fig-concept-f1",
                alt="Distribution of concept test F1",
                png=figures.grouped_bars(
                    f1_distribution.set_index("f1_bin")[["n_concepts"]],
                    title="Test F1 distribution",
                    ylabel="concepts",
                ),
            ),
            Figure(
                figure_id="fig-concept-f1-samples",
                alt="Concept test F1 against training samples",
                png=figures.scatter(
                    f1_by_samples, x="samples", y="test_f1", title="Test F1 against samples"
                ),
            ),
        ),
    )


def data_quality_section(
    quadrants: pd.DataFrame, *, grades: pd.DataFrame, gap_vs_f1: pd.DataFrame
) -> Section:
    """Per variety quadrant: grades of the generations, lens F1 against its ceiling, and the
    relevance gap against F1 per concept."""
    grade_shares = grades.assign(group=grades["quadrant"] + " " + grades["side"]).pivot_table(
        index="group", columns="grade", values="share", aggfunc="sum", fill_value=0.0
    )
    return Section(
        section_id="data-quality",
        title="Data quality",
        intro="Generations about sampled concepts, graded and judged, per variety quadrant.",
        blocks=(
            _table(quadrants, caption="Per quadrant"),
            Figure(
                figure_id="fig-quality-ceiling",
                alt="Lens F1 against its ceiling per quadrant",
                png=figures.grouped_bars(
                    quadrants.set_index("quadrant")[["lens_f1_mean", "ceiling", "target"]],
                    title="Lens F1, ceiling and target",
                    ylabel="F1",
                    ylim=(0.0, 1.0),
                ),
            ),
            Figure(
                figure_id="fig-quality-grades",
                alt="Grades of the generations per quadrant and side",
                png=figures.stacked_bars(grade_shares, title="Generation grades", ylabel="share"),
            ),
            Figure(
                figure_id="fig-quality-gap-f1",
                alt="Relevance gap against lens F1 per concept",
                png=figures.scatter(
                    gap_vs_f1, x="relevance_gap", y="f1", hue="quadrant", title="Gap against F1"
                ),
            ),
        ),
    )


def span_section(scores: pd.DataFrame, *, loss_share: pd.DataFrame, windows: pd.DataFrame):
    """Test scores of the span model against its baselines, the loss share per task, and a few
    test windows with the rule's spans and the model's probability."""
    return Section(
        section_id="spans",
        title="Span model",
        intro="Expansion spans in windows of price bars (test split; the model's scores are the "
        "mean over seeds, thresholds chosen on validation).",
        blocks=(
            _table(scores, caption="Test span scores"),
            Figure(
                figure_id="fig-span-loss-share",
                alt="Each task's share of the weighted training loss per epoch",
                png=figures.lines(
                    loss_share,
                    x="epoch",
                    ys=["class", "pointers", "span", "countdown"],
                    title="Loss share per task",
                    ylabel="share of the weighted loss",
                ),
            ),
            Figure(
                figure_id="fig-span-windows",
                alt="Test windows end to end: rule spans and the model's probability",
                png=figures.lines(
                    windows,
                    x="position",
                    ys=["in_span", "predicted_probability"],
                    title="Test windows",
                    ylabel="in span / probability",
                ),
            ),
        ),
    )


def missing_input_section(section_id: str, title: str, *, path: str, producer: str) -> Section:
    """A visible placeholder for an optional section whose input is not there (yet)."""
    return Section(
        section_id=section_id,
        title=title,
        blocks=(Note(f"Not drawn: {path} does not exist. It is written by {producer}."),),
    )
