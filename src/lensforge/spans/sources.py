"""Where price bars come from: four bundled instruments, or a user's CSV file.

Every source ends as the same bar table (``BAR_COLUMNS``: time, open, high, low, close, volume; one
row per bar, times strictly increasing), checked by ``validate_bars``.

Bundled instruments are read straight out of two wheels that ``make setup`` fetched with
``pip download --no-deps`` (the packages are never installed or imported), each checked against a
pinned sha256 first:

- ``arch==8.0.0`` (NCSA licence; the data originally from Yahoo Finance): ``sp500`` and
  ``nasdaq``, 5,031 daily bars each, 1999-2018 (Date m/d/Y, Open, High, Low, Close, Adj Close,
  Volume; Adj Close is not used).
- ``backtesting==0.6.6`` (AGPL-3.0): ``goog``, 2,148 daily bars 2004-2013, and ``eurusd``, 5,000
  hourly bars 2017-2018 (the first, unnamed column is the time).

A user CSV has a header row with the columns ``time`` (or ``date``), ``open``, ``high``, ``low``,
``close`` and optionally ``volume`` (names case-insensitive; other columns are ignored). Times are
ISO 8601 (``2020-01-31`` or ``2020-01-31 14:00``). Without a volume column every bar gets volume 0
(the ``volume_z`` feature is then 0 throughout) and the instrument records it. A broken rule is a
``DataError`` naming the file, the CSV line (the header is line 1) and the rule.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from lensforge.core import archives, paths
from lensforge.core.archives import check_archive
from lensforge.core.artifacts import file_sha256
from lensforge.core.errors import DataError

log = logging.getLogger(__name__)

BAR_COLUMNS = ["time", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
TIME_ALIASES = ("time", "date")

ARCH_WHEEL = paths.ARCH_WHEEL
ARCH_SHA256 = "975ec3bdf7926335742ac362251fafe32b448b8f194dead062f22a00beef772d"
BACKTESTING_WHEEL = paths.BACKTESTING_WHEEL
BACKTESTING_SHA256 = "d2fc29ab6e10fbf44b05570720cef144d6d0d2ec8e183977114f2be9c5089b78"


@dataclasses.dataclass(frozen=True)
class Bundled:
    """One instrument inside a pinned wheel."""

    archive: Path  # relative to the project root
    sha256: str
    package: str  # "name==version"
    licence: str
    member: str
    time_column: str
    time_format: str
    what: str


BUNDLED = {
    "sp500": Bundled(
        ARCH_WHEEL,
        ARCH_SHA256,
        "arch==8.0.0",
        "NCSA (package); data originally from Yahoo Finance",
        "arch/data/sp500/sp500.csv.gz",
        "Date",
        "%m/%d/%Y",
        "S&P 500 index, daily bars 1999-2018",
    ),
    "nasdaq": Bundled(
        ARCH_WHEEL,
        ARCH_SHA256,
        "arch==8.0.0",
        "NCSA (package); data originally from Yahoo Finance",
        "arch/data/nasdaq/nasdaq.csv.gz",
        "Date",
        "%m/%d/%Y",
        "NASDAQ Composite index, daily bars 1999-2018",
    ),
    "goog": Bundled(
        BACKTESTING_WHEEL,
        BACKTESTING_SHA256,
        "backtesting==0.6.6",
        "AGPL-3.0 (package; its test data)",
        "backtesting/test/GOOG.csv",
        "Unnamed: 0",
        "%Y-%m-%d",
        "Google (GOOG) stock, daily bars 2004-2013",
    ),
    "eurusd": Bundled(
        BACKTESTING_WHEEL,
        BACKTESTING_SHA256,
        "backtesting==0.6.6",
        "AGPL-3.0 (package; its test data)",
        "backtesting/test/EURUSD.csv",
        "Unnamed: 0",
        "%Y-%m-%d %H:%M:%S",
        "EUR/USD exchange rate, hourly bars 2017-2018",
    ),
}


@dataclasses.dataclass(frozen=True)
class Instrument:
    """One instrument's validated bars and where they came from."""

    name: str
    bars: pd.DataFrame  # BAR_COLUMNS, index 0..n-1
    source: str  # archive and member, or the CSV path as given
    sha256: str  # of the archive or the CSV file
    volume_given: bool


def instrument_name(entry: str) -> str:
    """The name an entry of ``windows.instruments`` goes by: a bundled name, or a CSV's stem."""
    return entry if entry in BUNDLED else Path(entry).stem


def read_instrument(entry: str, *, root: Path) -> Instrument:
    """A bundled instrument by name, or a CSV path (relative to ``root`` unless absolute)."""
    if entry in BUNDLED:
        return read_bundled(entry, root=root)
    path = Path(entry) if Path(entry).is_absolute() else Path(root) / entry
    if not path.is_file():
        raise DataError(
            f"{entry!r} is neither a bundled instrument ({', '.join(BUNDLED)}) nor a CSV file",
            path=path,
            rule="instrument exists",
        )
    bars, volume_given = read_csv_bars(path)
    return Instrument(Path(entry).stem, bars, str(entry), file_sha256(path), volume_given)


def read_bundled(name: str, *, root: Path) -> Instrument:
    """One of ``BUNDLED``, read from its sha256-checked wheel without extracting anything."""
    spec = BUNDLED[name]
    archive = archives.locate(root, spec.archive)
    check_archive(archive, sha256=spec.sha256)
    with zipfile.ZipFile(archive) as wheel, wheel.open(spec.member) as handle:
        raw = pd.read_csv(
            io.BytesIO(handle.read()),
            dtype=str,
            keep_default_na=False,
            compression="gzip" if spec.member.endswith(".gz") else None,
        )
    file = f"{spec.archive.name}:{spec.member}"
    frame = raw.rename(columns={spec.time_column: "time"})
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    bars = validate_bars(frame, file=file, time_format=spec.time_format)
    return Instrument(name, bars, f"{spec.package} wheel, {spec.member}", spec.sha256, True)


def read_csv_bars(path: Path) -> tuple[pd.DataFrame, bool]:
    """A user's bar CSV (module docstring) -> (validated bars, whether it had a volume column)."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"not a readable CSV file: {exc}", path=path, rule="csv") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    time_columns = [c for c in TIME_ALIASES if c in frame.columns]
    if len(time_columns) == 2:
        raise DataError(
            "both a time and a date column: keep one", path=path, row=1, rule="one time column"
        )
    if time_columns:
        frame = frame.rename(columns={time_columns[0]: "time"})
    volume_given = "volume" in frame.columns
    if not volume_given:
        log.warning("%s has no volume column: every bar gets volume 0 (volume_z is 0)", path)
        frame = frame.assign(volume="0")
    return validate_bars(frame, file=str(path), time_format="ISO8601"), volume_given


def _missing(frame: pd.DataFrame) -> list[str]:
    return [c for c in ["time", *PRICE_COLUMNS] if c not in frame.columns]


def _fail(mask: np.ndarray, message: str, *, file: str, rule: str) -> None:
    """Raise a ``DataError`` naming the first CSV line where ``mask`` is True (if any)."""
    bad = np.flatnonzero(mask)
    if len(bad):
        more = f" ({len(bad)} rows break it)" if len(bad) > 1 else ""
        raise DataError(f"{message}{more}", path=file, row=int(bad[0]) + 2, rule=rule)


def validate_bars(frame: pd.DataFrame, *, file: str, time_format: str) -> pd.DataFrame:
    """Parse and check a table of string cells with (lower-case) ``BAR_COLUMNS``.

    Rules, in this order, each a ``DataError`` at the first CSV line that breaks it: every column
    present; times parse; prices and volume are finite numbers; prices > 0; volume >= 0;
    high >= low; open and close within [low, high]; times strictly increasing (no duplicates).
    """
    missing = _missing(frame) + ([] if "volume" in frame.columns else ["volume"])
    if missing:
        raise DataError(
            f"missing column(s) {missing}; need time (or date), open, high, low, close "
            "and optionally volume",
            path=file,
            row=1,
            rule="required columns",
        )
    if frame.empty:
        raise DataError(
            "no bars: the table has a header only", path=file, row=2, rule="bars present"
        )
    cells = frame["time"].astype(str).str.strip()
    try:
        times = pd.to_datetime(cells, format=time_format, errors="coerce")
    except (ValueError, TypeError) as exc:  # e.g. ISO times with different UTC offsets
        raise DataError(f"times do not parse: {exc}", path=file, rule="time") from None
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    _fail(times.isna().to_numpy(), f"time does not parse as {time_format}", file=file, rule="time")
    bars = pd.DataFrame({"time": times.reset_index(drop=True)})
    for column in [*PRICE_COLUMNS, "volume"]:
        values = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy(np.float64)
        _fail(~np.isfinite(values), f"{column} is not a finite number", file=file, rule="finite")
        bars[column] = values
    _fail(
        (bars[PRICE_COLUMNS] <= 0).any(axis=1).to_numpy(),
        "a price is <= 0",
        file=file,
        rule="prices > 0",
    )
    _fail((bars["volume"] < 0).to_numpy(), "volume is negative", file=file, rule="volume >= 0")
    _fail((bars["high"] < bars["low"]).to_numpy(), "high < low", file=file, rule="high >= low")
    outside = np.zeros(len(bars), dtype=bool)
    for column in ("open", "close"):
        outside |= ((bars[column] < bars["low"]) | (bars[column] > bars["high"])).to_numpy()
    _fail(
        outside, "open or close outside [low, high]", file=file, rule="low <= open, close <= high"
    )
    steps = np.diff(bars["time"].to_numpy())
    _fail(
        np.concatenate([[False], steps == np.timedelta64(0)]),
        "the same time as the row before",
        file=file,
        rule="times unique",
    )
    _fail(
        np.concatenate([[False], steps < np.timedelta64(0)]),
        "earlier than the row before",
        file=file,
        rule="times increasing",
    )
    return bars[BAR_COLUMNS]


PROVENANCE = """# Span branch inputs (written by the `windows` stage)

| instrument | source | sha256 | licence | bars | first | last |
| --- | --- | --- | --- | --- | --- | --- |
{rows}

Bundled instruments are read straight out of wheels that `make setup` fetched with
`pip download --no-deps`; the packages are never installed or imported, and each wheel is checked
against the sha256 pinned in `lensforge.spans.sources` before it is read:

- `arch==8.0.0` (Kevin Sheppard; NCSA licence for the package): `arch/data/sp500/sp500.csv.gz`
  and `arch/data/nasdaq/nasdaq.csv.gz`, daily OHLCV bars 1999-2018, data originally from Yahoo
  Finance. `Adj Close` is not used.
- `backtesting==0.6.6` (AGPL-3.0 package): its test data `backtesting/test/GOOG.csv` (daily) and
  `backtesting/test/EURUSD.csv` (hourly).

**Labels come from a rule, not from people.** With r_t = ln(C_t / C_(t-1)),
back_vol_t = std(r over bars t-k+1..t), fwd_vol_t = std(r over bars t+1..t+k) (ddof 0),
med_t = median(back_vol over bars t-T+1..t) and ratio_t = mean(fwd_vol / med over bars t-s+1..t),
a bar is expanding when ratio_t > m; a span is a maximal run of expanding bars at least
min_length long. Here k = {horizon}, m = {multiple}, T = {trailing}, s = {smoothing},
min_length = {min_length} (`windows.label` in params.yaml; code: `lensforge.spans.labels`).
"""


def provenance_note(instruments: list[Instrument], *, label: dict) -> str:
    """PROVENANCE.md: each instrument's source, digest and licence, and the label rule."""
    rows = []
    for instrument in instruments:
        bundled = BUNDLED.get(instrument.name)
        licence = bundled.licence if bundled else "yours (a CSV file)"
        if not instrument.volume_given:
            licence += "; no volume column: volume 0"
        times = instrument.bars["time"].astype(str)
        rows.append(
            f"| {instrument.name} | {instrument.source} | `{instrument.sha256}` | {licence} | "
            f"{len(instrument.bars)} | {times.iloc[0]} | {times.iloc[-1]} |"
        )
    return PROVENANCE.format(rows="\n".join(rows), **label)
