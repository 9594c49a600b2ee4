"""The windows stage: every output of the spec on the real bundled instruments, a user's CSV
through the CLI, and a broken CSV that exits 2 naming file, line and rule."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.numpy import load_file

from lensforge.cli import main
from lensforge.core import params, paths
from lensforge.spans import features, sources
from lensforge.stages import windows as windows_stage
from tests.helpers.bars import write_synthetic_bars


def _project(project_root, root, **windows_changes):
    """A tmp project: the real params.yaml with ``windows`` changed, and the bar archives."""
    raw = yaml.safe_load((project_root / paths.PARAMS).read_text())
    raw["windows"].update(windows_changes)
    (root / paths.PARAMS).write_text(yaml.safe_dump(raw, sort_keys=False))
    for archive in (sources.ARCH_WHEEL, sources.BACKTESTING_WHEEL):
        target = paths.under(root, archive)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(paths.under(project_root, archive), target)
    return params.load(root / paths.PARAMS)


@pytest.fixture(scope="module")
def bundled(project_root, tmp_path_factory):
    """The stage on the default instruments (sp500, nasdaq, eurusd; goog held out)."""
    root = tmp_path_factory.mktemp("windows")
    loaded = _project(project_root, root)
    windows_stage.run(loaded, root=root)
    return root, loaded


def test_tensors_have_the_spec_shapes_and_no_nan_feature(bundled):
    root, loaded = bundled
    tensors = load_file(root / paths.SPAN_WINDOWS)
    n, length = len(tensors["window_class"]), loaded.windows.window
    shapes = {name: tensor.shape for name, tensor in tensors.items()}
    assert shapes == {
        "features": (n, length, 12),
        "membership": (n, length),
        "countdown": (n, length),
        "window_class": (n,),
        "start": (n,),
        "end": (n,),
    }
    assert tensors["features"].dtype == np.float32 and tensors["window_class"].dtype == np.int64
    assert np.isfinite(tensors["features"]).all()
    assert set(np.unique(tensors["membership"])) == {0.0, 1.0}
    assert np.isnan(tensors["countdown"][tensors["start"] == -1]).all()
    assert not np.isnan(tensors["countdown"][tensors["start"] >= 0]).any()
    assert 2000 < n < 4000
    with safe_open(root / paths.SPAN_WINDOWS, framework="numpy") as handle:
        described = json.loads(handle.metadata()["lensforge"])
        assert described["features"] == list(features.FEATURE_NAMES)
        assert described["classes"] == ["none", "start", "inside"]


def test_the_window_index_matches_the_tensors_row_for_row(bundled):
    root, _ = bundled
    tensors = load_file(root / paths.SPAN_WINDOWS)
    index = pd.read_csv(root / paths.SPAN_WINDOW_INDEX)
    assert list(index.columns) == [
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
    assert index["window_id"].tolist() == list(range(len(tensors["start"])))
    for column in ("window_class", "start", "end"):
        np.testing.assert_array_equal(index[column], tensors[column])
    assert set(index.loc[index["instrument"] == "goog", "split"]) == {"holdout"}
    assert set(index.loc[index["instrument"] != "goog", "split"]) == {"train", "validation", "test"}
    # every trained instrument contributes windows to every split
    counts = index.groupby(["instrument", "split"]).size()
    assert counts.loc["sp500"].to_dict().keys() == {"train", "validation", "test"}


def test_train_windows_hold_every_class_and_the_metrics_add_up(bundled):
    root, loaded = bundled
    metrics = json.loads((root / paths.WINDOWS_METRICS).read_text())
    assert metrics["bars_in_two_splits"] == 0
    assert metrics["min_split_gap_bars"] >= loaded.windows.split.purge
    assert all(n > 0 for n in metrics["class_counts"]["train"].values())
    assert metrics["class_counts"]["validation"]["start"] > 0
    assert sum(metrics["windows_per_split"].values()) == metrics["n_windows"]
    assert metrics["windows"]["goog"] == {"holdout": metrics["windows_per_split"]["holdout"]}
    assert 0.05 < metrics["in_span_fraction"] < 0.5
    assert set(metrics["windows_dropped"]) == {"sp500", "nasdaq", "eurusd", "goog"}


def test_features_json_bar_tables_and_provenance(bundled):
    root, loaded = bundled
    described = json.loads((root / paths.SPAN_FEATURES).read_text())
    assert described["features"] == list(features.FEATURE_NAMES)
    assert described["baseline_feature"] == "back_vol_ratio"
    assert described["label"]["horizon"] == loaded.windows.label.horizon
    sp500 = described["instruments"]["sp500"]
    assert (sp500["n_bars"], sp500["first_time"], sp500["last_time"]) == (
        5031,
        "1999-01-04",
        "2018-12-31",
    )
    assert "arch==8.0.0" in sp500["source"]
    bars = pd.read_csv(paths.under(root, paths.SPAN_BARS_DIR) / "eurusd.csv")
    assert list(bars.columns) == [
        *sources.BAR_COLUMNS,
        *features.FEATURE_NAMES,
        "ratio",
        "expanding",
        "span_id",
        "split",
    ]
    assert len(bars) == 5000
    assert set(bars["split"]) == {"unused", "train", "purge", "validation", "test"}
    note = (root / paths.SPAN_PROVENANCE).read_text()
    for needed in (
        sources.ARCH_SHA256,
        sources.BACKTESTING_SHA256,
        "NCSA",
        "Yahoo Finance",
        "AGPL-3.0",
        "not from people",
        "k = 10",
    ):
        assert needed in note


def test_a_user_csv_runs_through_the_cli_as_the_end_to_end_test_will(project_root, tmp_path):
    write_synthetic_bars(tmp_path / "bars" / "calm.csv", seed=0)
    write_synthetic_bars(tmp_path / "bars" / "other.csv", seed=1)
    _project(project_root, tmp_path, instruments=["bars/calm.csv"], holdout="bars/other.csv")
    result = CliRunner().invoke(main, ["--root", str(tmp_path), "windows"])
    assert result.exit_code == 0, result.output
    index = pd.read_csv(tmp_path / paths.SPAN_WINDOW_INDEX)
    assert set(index["instrument"]) == {"calm", "other"}
    assert set(index.loc[index["instrument"] == "other", "split"]) == {"holdout"}
    assert (tmp_path / paths.SPAN_BARS_DIR / "calm.csv").is_file()


@pytest.mark.parametrize(
    ("edit", "line", "rule"),
    [
        (lambda f: f.drop(columns="close"), 1, "required columns"),
        (
            lambda f: f.assign(time=f["time"].where(f.index != 40, "2000-01-01")),
            42,
            "times increasing",
        ),
        (lambda f: f.assign(close=f["close"].where(f.index != 99, np.nan)), 101, "finite"),
    ],
)
def test_a_broken_csv_exits_2_naming_file_line_and_rule(project_root, tmp_path, edit, line, rule):
    path = write_synthetic_bars(tmp_path / "bad.csv", n_bars=300)
    edit(pd.read_csv(path)).to_csv(path, index=False)
    _project(project_root, tmp_path, instruments=["bad.csv"], holdout="")
    result = CliRunner().invoke(main, ["--root", str(tmp_path), "windows"])
    assert result.exit_code == 2
    assert f"file {path}" in result.output
    assert f"rule {rule}" in result.output
    assert f"row {line}" in result.output
    assert not (tmp_path / paths.SPANS_DATA_DIR).exists()  # nothing half-written
