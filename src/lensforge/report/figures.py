"""Plots of the report as PNG bytes: tables in, images out, no files and no global state.

Each figure is a ``matplotlib.figure.Figure`` on its own Agg canvas (no pyplot, so no GUI backend
and no figure registry that leaks between calls). The PNG carries no software or date metadata,
so the same tables give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100
WIDTH = 5.2  # inches
HEIGHT = 3.6  # inches


def _new(n_axes: int = 1, *, width: float = WIDTH, height: float = HEIGHT):
    figure = Figure(figsize=(width * n_axes if n_axes > 1 else width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, n_axes, squeeze=False)[0]
    return figure, list(axes)


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def confusion(counts: pd.DataFrame, *, title: str) -> bytes:
    """Heat map of ``counts`` (index: actual class, columns: predicted class), each row shaded by
    its share of the actual class, each cell labelled with its count."""
    figure, (ax,) = _new()
    values = counts.to_numpy(dtype=float)
    shares = values / np.maximum(values.sum(axis=1, keepdims=True), 1.0)
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(values):
        colour = "white" if shares[i, j] > 0.5 else "black"
        ax.text(j, i, f"{int(count)}", ha="center", va="center", color=colour)
    ax.set_xticks(range(counts.shape[1]), [str(c) for c in counts.columns])
    ax.set_yticks(range(counts.shape[0]), [str(i) for i in counts.index])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    return _png(figure)


def points_by_group(frame: pd.DataFrame, *, x: str, y: str, title: str, ylabel: str) -> bytes:
    """One dot per row of ``frame`` over its ``x`` group (e.g. one per seed per pole), with the
    group mean as a horizontal bar: the spread across seeds at a glance."""
    figure, (ax,) = _new()
    groups = list(pd.unique(frame[x]))
    rng = np.random.default_rng(0)  # fixed jitter, so the image is reproducible
    for position, group in enumerate(groups):
        values = frame.loc[frame[x] == group, y].to_numpy(dtype=float)
        jitter = rng.uniform(-0.12, 0.12, size=len(values))
        ax.scatter(position + jitter, values, s=24, alpha=0.8)
        ax.hlines(values.mean(), position - 0.25, position + 0.25, color="black")
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _png(figure)


def reliability(frame: pd.DataFrame, *, title: str, hue: str | None = None) -> bytes:
    """Calibration: accuracy against mean confidence per bin (``confidence``, ``accuracy``,
    ``count``), the diagonal being perfect calibration; dot area follows the bin's count. With
    ``hue``, one curve per value of that column."""
    figure, (ax,) = _new(width=4.2, height=3.8)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    largest = max(float(frame["count"].max()), 1.0)
    groups = frame.groupby(hue, sort=True) if hue else [("", frame)]
    for name, group in groups:
        group = group.sort_values("confidence")
        sizes = 20 + 200 * group["count"] / largest
        (line,) = ax.plot(group["confidence"], group["accuracy"], linewidth=1, label=name or None)
        ax.scatter(
            group["confidence"], group["accuracy"], s=sizes, color=line.get_color(), alpha=0.7
        )
    if hue:
        ax.legend(fontsize="small", title=hue)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("mean confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    return _png(figure)


def curves(panels: Mapping[str, Mapping[str, pd.DataFrame]], *, title: str) -> bytes:
    """One panel per metric (``panels[metric][run]`` a frame of ``step`` and ``value``), one line
    per run (seed) in each."""
    figure, axes = _new(len(panels), width=4.0, height=3.2)
    for ax, (metric, runs) in zip(axes, panels.items(), strict=True):
        for run, frame in runs.items():
            ax.plot(frame["step"], frame["value"], linewidth=1.2, label=run)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.suptitle(title)
    return _png(figure)


def grouped_bars(table: pd.DataFrame, *, title: str, ylabel: str, ylim=None) -> bytes:
    """One group of bars per row of ``table`` (its index), one bar per column."""
    figure, (ax,) = _new()
    n_columns = max(table.shape[1], 1)
    width = 0.8 / n_columns
    positions = np.arange(table.shape[0])
    for k, column in enumerate(table.columns):
        ax.bar(positions + (k - (n_columns - 1) / 2) * width, table[column], width, label=column)
    ax.set_xticks(positions, [str(i) for i in table.index], rotation=30, ha="right")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return _png(figure)


def stacked_bars(table: pd.DataFrame, *, title: str, ylabel: str) -> bytes:
    """One bar per row of ``table`` (its index), its columns stacked."""
    figure, (ax,) = _new()
    bottom = np.zeros(table.shape[0])
    labels = [str(i) for i in table.index]
    for column in table.columns:
        values = table[column].to_numpy(dtype=float)
        ax.bar(labels, values, bottom=bottom, label=str(column))
        bottom += values
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.tick_params(axis="x", rotation=15)
    return _png(figure)


def lines(
    frame: pd.DataFrame, *, x: str, ys: Sequence[str], title: str, ylabel: str, mark_x=None
) -> bytes:
    """One line per column of ``ys`` against ``x``; ``mark_x`` draws a dashed vertical line."""
    figure, (ax,) = _new()
    frame = frame.sort_values(x)
    for column in ys:
        ax.plot(frame[x], frame[column], marker="o", linewidth=1.2, label=column)
    if mark_x is not None:
        ax.axvline(mark_x, linestyle="--", color="grey", linewidth=1)
    if pd.api.types.is_integer_dtype(frame[x]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _png(figure)


def scatter(frame: pd.DataFrame, *, x: str, y: str, title: str, hue: str | None = None) -> bytes:
    """``y`` against ``x``, one colour per value of ``hue`` when given."""
    figure, (ax,) = _new()
    groups = frame.groupby(hue, sort=True) if hue else [("", frame)]
    for name, group in groups:
        ax.scatter(group[x], group[y], s=22, alpha=0.7, label=str(name) if hue else None)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    if hue:
        ax.legend(fontsize="small", title=hue)
    ax.grid(alpha=0.3)
    return _png(figure)
