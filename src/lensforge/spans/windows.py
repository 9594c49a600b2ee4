"""Bars -> labelled windows: time splits with a purge gap, then fixed-length windows and targets.

Per instrument, the usable bars (every feature and the label ratio defined) are split by time:
with ``n`` usable bars, the boundaries sit at ``round((1 - validation - test) * n)`` and
``round((1 - test) * n)``; the ``purge`` bars after each boundary belong to no split, so no
label of one split reads a bar of the next. A held-out instrument's usable bars are all
``holdout``. Windows are ``window`` consecutive bars, their first bars on a grid of ``stride``
from the instrument's first usable bar; a window is kept iff all its bars carry the same split
(windows across a boundary, a purge gap or an undefined bar are dropped and counted).

Per window of ``L`` bars (positions 0..L-1):

- ``membership[i]`` = 1 when bar i is in a span;
- ``window_class``: 1 (start) when a span starts inside the window, else 2 (inside) when any bar
  is in a span, else 0 (none);
- ``start``: position of the first span start in the window (-1 if none); ``end``: that span's
  last bar, clipped to L-1 when it runs past the window (-1 if none);
- ``countdown[i] = start - i`` in bars, unclipped; NaN for every bar of a window without a start.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from lensforge.core import artifacts, paths
from lensforge.core.errors import ArtifactError, DataError, ParamsError
from lensforge.core.params import WindowsParams
from lensforge.spans import features, labels, sources

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
HOLDOUT = "holdout"
PURGE = "purge"  # split of a bar in a purge gap
UNUSED = "unused"  # split of a bar whose features or label are undefined
CLASSES = ("none", "start", "inside")
INDEX_COLUMNS = [
    "window_id",
    "instrument",
    "split",
    "first_bar",
    "first_time",
    "last_time",
    "window_class",
    "start",
    "end",
]


@dataclasses.dataclass(frozen=True)
class WindowSet:
    """Windows of one or more instruments, in ``index`` row order (``window_id``)."""

    features: np.ndarray  # (n, L, F) float32
    membership: np.ndarray  # (n, L) float32, 0 / 1
    countdown: np.ndarray  # (n, L) float32, start - i; NaN without a start
    window_class: np.ndarray  # (n,) int64
    start: np.ndarray  # (n,) int64
    end: np.ndarray  # (n,) int64
    index: pd.DataFrame  # INDEX_COLUMNS

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "features": self.features,
            "membership": self.membership,
            "countdown": self.countdown,
            "window_class": self.window_class,
            "start": self.start,
            "end": self.end,
        }


def check_purge(params: WindowsParams) -> None:
    """The purge must cover what a label reads ahead (``labels.label_lookahead``)."""
    needed = labels.label_lookahead(
        horizon=params.label.horizon, min_length=params.label.min_length
    )
    if params.split.purge < needed:
        raise ParamsError(
            f"windows.split.purge {params.split.purge} < horizon + min_length - 1 = {needed}: "
            "span labels at the end of one split would read bars of the next",
            row="windows.split.purge",
            rule="purge gap covers the label look-ahead",
        )


def split_bars(
    usable: np.ndarray, *, validation: float, test: float, purge: int, holdout: bool
) -> np.ndarray:
    """Split name per bar (module docstring); ``UNUSED`` where ``usable`` is False."""
    usable = np.asarray(usable, dtype=bool)
    split = np.full(len(usable), UNUSED, dtype=object)
    rows = np.flatnonzero(usable)
    if holdout:
        split[rows] = HOLDOUT
        return split
    n = len(rows)
    first_boundary = round((1 - validation - test) * n)
    second_boundary = round((1 - test) * n)
    split[rows[:first_boundary]] = "train"
    split[rows[first_boundary : first_boundary + purge]] = PURGE
    split[rows[first_boundary + purge : second_boundary]] = "validation"
    split[rows[second_boundary : second_boundary + purge]] = PURGE
    split[rows[second_boundary + purge :]] = "test"
    return split


def label_bars(instrument: sources.Instrument, params: WindowsParams, *, holdout: bool):
    """The instrument's bar table with every feature, the label columns and the split."""
    rule = params.label
    bars = instrument.bars
    feature_table = features.compute_features(
        bars, horizon=rule.horizon, trailing_bars=rule.trailing
    )
    label_table = labels.expansion_labels(
        bars["close"].to_numpy(),
        horizon=rule.horizon,
        multiple=rule.multiple,
        trailing_bars=rule.trailing,
        smoothing=rule.smoothing,
        min_length=rule.min_length,
    )
    usable = np.isfinite(feature_table.to_numpy()).all(axis=1)
    usable &= np.isfinite(label_table["ratio"].to_numpy())
    split = split_bars(
        usable,
        validation=params.split.validation,
        test=params.split.test,
        purge=params.split.purge,
        holdout=holdout,
    )
    table = pd.concat([bars, feature_table, label_table[["ratio", "expanding", "span_id"]]], axis=1)
    return table.assign(split=split)


def window_starts(split: np.ndarray, *, window: int, stride: int) -> tuple[np.ndarray, int]:
    """(first bars of the kept windows, windows dropped) on the grid of the module docstring."""
    split = np.asarray(split, dtype=object)
    usable = np.flatnonzero(split != UNUSED)
    if len(usable) < window:
        return np.zeros(0, dtype=np.int64), 0
    grid = np.arange(usable[0], len(split) - window + 1, stride)
    spans = np.lib.stride_tricks.sliding_window_view(split, window)[grid]  # (grid, window)
    kept = (spans == spans[:, :1]).all(axis=1) & np.isin(spans[:, 0], [*SPLITS, HOLDOUT])
    return grid[kept].astype(np.int64), int((~kept).sum())


def window_targets(span_id: np.ndarray, first_bars: np.ndarray, *, window: int) -> dict:
    """Membership, class, start / end pointers and countdown (module docstring) per window."""
    span_id = np.asarray(span_id, dtype=np.int64)
    previous = np.concatenate([[labels.NO_SPAN], span_id[:-1]])
    is_start = (span_id != labels.NO_SPAN) & (span_id != previous)
    last_bar = {}  # span id -> its last bar
    for bar in np.flatnonzero(span_id != labels.NO_SPAN):
        last_bar[span_id[bar]] = bar
    rows = first_bars[:, None] + np.arange(window)  # (n, L) bar of each position
    membership = (span_id[rows] != labels.NO_SPAN).astype(np.float32)
    starts_here = is_start[rows]
    has_start = starts_here.any(axis=1)
    start = np.where(has_start, starts_here.argmax(axis=1), -1).astype(np.int64)
    end = np.full(len(first_bars), -1, dtype=np.int64)
    for w in np.flatnonzero(has_start):
        span_last = last_bar[span_id[first_bars[w] + start[w]]]
        end[w] = min(span_last - first_bars[w], window - 1)
    window_class = np.where(has_start, 1, np.where(membership.any(axis=1), 2, 0)).astype(np.int64)
    countdown = np.where(has_start[:, None], start[:, None] - np.arange(window), np.nan)
    return {
        "membership": membership,
        "countdown": countdown.astype(np.float32),
        "window_class": window_class,
        "start": start,
        "end": end,
    }


def instrument_windows(
    table: pd.DataFrame, name: str, *, window: int, stride: int
) -> tuple[WindowSet, int]:
    """(windows of one labelled bar table, windows dropped); ``window_id`` from 0."""
    first_bars, n_dropped = window_starts(table["split"].to_numpy(), window=window, stride=stride)
    rows = first_bars[:, None] + np.arange(window)  # (n, L)
    values = table[list(features.FEATURE_NAMES)].to_numpy(np.float32)
    targets = window_targets(table["span_id"].to_numpy(), first_bars, window=window)
    times = table["time"].astype(str).to_numpy()
    index = pd.DataFrame(
        {
            "window_id": np.arange(len(first_bars)),
            "instrument": name,
            "split": table["split"].to_numpy()[first_bars],
            "first_bar": first_bars,
            "first_time": times[first_bars],
            "last_time": times[first_bars + window - 1],
            "window_class": targets["window_class"],
            "start": targets["start"],
            "end": targets["end"],
        }
    )
    return WindowSet(features=values[rows], index=index, **targets), n_dropped


def concat(sets: list[WindowSet]) -> WindowSet:
    """One ``WindowSet`` of several, in order, renumbering ``window_id``."""
    index = pd.concat([s.index for s in sets], ignore_index=True)
    index["window_id"] = np.arange(len(index))
    arrays = {
        field: np.concatenate([getattr(s, field) for s in sets])
        for field in ("features", "membership", "countdown", "window_class", "start", "end")
    }
    return WindowSet(index=index[INDEX_COLUMNS], **arrays)


def build(
    instruments: list[sources.Instrument], params: WindowsParams
) -> tuple[dict[str, pd.DataFrame], WindowSet, dict[str, int]]:
    """(labelled bar table per instrument, all windows, windows dropped per instrument).

    The instrument named ``params.holdout`` gets split ``holdout``. A trained instrument with a
    split too short for one window is a ``DataError`` naming its source.
    """
    check_purge(params)
    tables, sets, dropped = {}, [], {}
    for instrument in instruments:
        holdout = instrument.name == sources.instrument_name(params.holdout)
        table = label_bars(instrument, params, holdout=holdout)
        window_set, dropped[instrument.name] = instrument_windows(
            table, instrument.name, window=params.window, stride=params.stride
        )
        wanted = (HOLDOUT,) if holdout else SPLITS
        counts = window_set.index["split"].value_counts()
        empty = [s for s in wanted if counts.get(s, 0) == 0]
        if empty:
            raise DataError(
                f"instrument {instrument.name!r}: no window of {params.window} bars fits in "
                f"split(s) {empty} ({int((table['split'] != UNUSED).sum())} usable bars of "
                f"{len(table)}); give it more bars or shorten windows.window / windows.label",
                path=instrument.source,
                rule="enough bars for every split",
            )
        tables[instrument.name] = table
        sets.append(window_set)
        log.info(
            "%s: %d bars, %d windows (%s), %d dropped",
            instrument.name,
            len(table),
            len(window_set.index),
            ", ".join(f"{s} {n}" for s, n in counts.items()),
            dropped[instrument.name],
        )
    return tables, concat(sets), dropped


def _bars_in_two_splits(tables: dict[str, pd.DataFrame], window_set: WindowSet, window: int):
    """Bars that windows of two different splits both contain (must be 0)."""
    total = 0
    for name, table in tables.items():
        owner = np.full(len(table), "", dtype=object)
        clash = np.zeros(len(table), dtype=bool)
        rows = window_set.index[window_set.index["instrument"] == name]
        for first, split in zip(rows["first_bar"], rows["split"], strict=True):
            covered = slice(first, first + window)
            clash[covered] |= (owner[covered] != "") & (owner[covered] != split)
            owner[covered] = split
        total += int(clash.sum())
    return total


def _split_gap(table: pd.DataFrame) -> int | None:
    """Fewest bars between the last bar of one split and the first of the next (None: one split)."""
    rows = table.reset_index(drop=True)
    bounds = [
        (rows.index[rows["split"] == s].min(), rows.index[rows["split"] == s].max())
        for s in SPLITS
        if (rows["split"] == s).any()
    ]
    gaps = [later[0] - earlier[1] - 1 for earlier, later in zip(bounds, bounds[1:], strict=False)]
    return min(gaps) if gaps else None


def summary(
    tables: dict[str, pd.DataFrame],
    window_set: WindowSet,
    dropped: dict[str, int],
    params: WindowsParams,
) -> dict:
    """metrics/windows.json: counts per instrument and split, class balance, in-span fractions,
    the purge and the checks that no bar sits in two splits."""
    index = window_set.index
    all_splits = [*SPLITS, HOLDOUT]
    windows = {
        name: {s: int(n) for s, n in group["split"].value_counts().items()}
        for name, group in index.groupby("instrument", sort=False)
    }
    class_counts = {
        s: {
            c: int((index.loc[index["split"] == s, "window_class"] == k).sum())
            for k, c in enumerate(CLASSES)
        }
        for s in all_splits
        if (index["split"] == s).any()
    }
    bars = pd.concat(tables.values(), ignore_index=True)
    in_split = bars[bars["split"].isin(all_splits)]
    in_span = in_split["span_id"] != labels.NO_SPAN
    gaps = [g for t in tables.values() if (g := _split_gap(t)) is not None]
    return {
        "n_windows": len(index),
        "windows_per_split": {s: int((index["split"] == s).sum()) for s in all_splits},
        "windows": windows,
        "class_counts": class_counts,
        "in_span_fraction": float(in_span.mean()),
        "in_span_fraction_per_split": {
            s: float(in_span[in_split["split"] == s].mean())
            for s in all_splits
            if (in_split["split"] == s).any()
        },
        "in_span_fraction_per_instrument": {
            name: float((t.loc[t["split"].isin(all_splits), "span_id"] != labels.NO_SPAN).mean())
            for name, t in tables.items()
        },
        "n_spans": {name: int(t["span_id"].max() + 1) for name, t in tables.items()},
        "purge_bars": params.split.purge,
        "min_split_gap_bars": min(gaps) if gaps else None,
        "bars_in_two_splits": _bars_in_two_splits(tables, window_set, params.window),
        "windows_dropped": dropped,
        "n_windows_dropped": sum(dropped.values()),
        "n_features": len(features.FEATURE_NAMES),
        "window": params.window,
    }


def _facts(instrument: sources.Instrument, table: pd.DataFrame, params: WindowsParams) -> dict:
    times = instrument.bars["time"].astype(str)
    return {
        "n_bars": len(instrument.bars),
        "n_usable_bars": int((table["split"] != UNUSED).sum()),
        "first_time": times.iloc[0],
        "last_time": times.iloc[-1],
        "source": instrument.source,
        "sha256": instrument.sha256,
        "volume": "given" if instrument.volume_given else "absent: zeros",
        "holdout": instrument.name == sources.instrument_name(params.holdout),
    }


def describe(
    instruments: list[sources.Instrument], tables: dict[str, pd.DataFrame], params: WindowsParams
) -> dict:
    """features.json: feature names in tensor order, the label rule, per instrument facts and
    the threshold baseline's feature."""
    return {
        "features": list(features.FEATURE_NAMES),
        "label": dataclasses.asdict(params.label),
        "instruments": {i.name: _facts(i, tables[i.name], params) for i in instruments},
        "baseline_feature": features.BASELINE_FEATURE,
        "window": params.window,
        "stride": params.stride,
        "split": dataclasses.asdict(params.split),
        "classes": list(CLASSES),
    }


WINDOW_TENSORS = ("features", "membership", "countdown", "window_class", "start", "end")


def read_windows(path: Path) -> dict[str, np.ndarray]:
    """The window tensors (numpy) the span stages read; ``ArtifactError`` when missing."""
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            "span windows missing: run `dvc repro windows`", path=path, rule="file exists"
        )
    tensors = load_file(str(path))
    missing = [name for name in WINDOW_TENSORS if name not in tensors]
    if missing:
        raise ArtifactError(
            f"span windows lack tensors {missing}", path=path, rule="windows stage output"
        )
    return {name: tensors[name] for name in WINDOW_TENSORS}


def read_index(path: Path, *, n_windows: int) -> pd.DataFrame:
    """``windows.csv``; ``ArtifactError`` unless it has one row per window tensor row, in order."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            "span window index missing: run `dvc repro windows`", path=path, rule="file exists"
        )
    index = pd.read_csv(path)
    missing = [c for c in ("window_id", "instrument", "split", "first_bar") if c not in index]
    if missing or not np.array_equal(index.get("window_id"), np.arange(n_windows)):
        raise ArtifactError(
            f"span window index does not list window ids 0..{n_windows - 1} in order "
            f"(missing columns {missing})",
            path=path,
            rule="one index row per window tensor row",
        )
    return index


def read_window_set(root: Path) -> tuple[dict[str, np.ndarray], pd.DataFrame, dict, str]:
    """What the windows stage wrote under ``root``: the tensors, the index, features.json and
    the tensors' sha256 (what a span model card records)."""
    tensors_path = paths.under(root, paths.SPAN_WINDOWS)
    windows = read_windows(tensors_path)
    index = read_index(
        paths.under(root, paths.SPAN_WINDOW_INDEX), n_windows=len(windows["features"])
    )
    features = artifacts.read_json(
        paths.under(root, paths.SPAN_FEATURES), what="span features (windows stage)"
    )
    return windows, index, features, artifacts.file_sha256(tensors_path)
