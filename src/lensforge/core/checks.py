"""The one Great Expectations runner of every branch: suites -> failures naming file, row, rule.

Suites run as GX 1.x expectations in an in-memory (ephemeral) context over tidy frames that carry a
``row_id`` column; each failing row becomes a ``Failure`` and a ``Report`` gathers them with the
counts a stage writes to its metrics file. Great Expectations is imported lazily: it costs ~5 s and
``lensforge --help`` must stay fast.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence

import pandas as pd

ROW_ID = "row_id"
MAX_QUOTED_CHARS = 80  # a failing value longer than this is cut in messages (characters)

# GX logs hundreds of INFO lines about its own docs registry when it is imported.
logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclasses.dataclass(frozen=True)
class Failure:
    """One broken rule at one row of one file."""

    file: str
    row: str
    rule: str
    message: str


@dataclasses.dataclass(frozen=True)
class Report:
    """Outcome of validation: every failure plus flat per-pole counts (the metrics)."""

    failures: tuple[Failure, ...]
    counts: dict[str, int]

    @property
    def success(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        """JSON-safe form written to ``metrics/validate.json``."""
        return {
            "success": self.success,
            "n_failures": len(self.failures),
            **self.counts,
            "failures": [dataclasses.asdict(f) for f in self.failures],
        }

    def summary(self, *, n_shown: int) -> str:
        """The first ``n_shown`` failures, one a line, and how many there are in all."""
        lines = [f"validation failed: {len(self.failures)} failure(s)"]
        for f in self.failures[:n_shown]:
            row = f", row {f.row}" if f.row else ""
            lines.append(f"  file {f.file}{row}, rule {f.rule}: {f.message}")
        if len(self.failures) > n_shown:
            lines.append(f"  ... and {len(self.failures) - n_shown} more")
        return "\n".join(lines)


@functools.cache
def _batch_definition():
    """One ephemeral GX context per process, progress bars off; frames are passed per batch."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # This module sets its own logger to INFO on import ("Created temporary directory ...").
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return (
        context.data_sources.add_pandas("lensforge")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )


def run_suite(
    frame: pd.DataFrame, expectations: Sequence, *, name: str, file: str
) -> list[Failure]:
    """Validate ``frame`` against ``expectations``; one ``Failure`` per failing row.

    Each expectation carries ``meta={"rule": ..., "message": ...}`` (and ``"quote_value": False``
    where the failing value says nothing, e.g. a derived count); ``frame`` must have a
    ``row_id`` column, which names the failing rows. Value columns should be ``object`` dtype so
    type rules are checked value by value (a numeric column would fail as a whole, unnamed).
    """
    import great_expectations as gx

    batch_definition = _batch_definition()  # a suite needs a live context to be built
    suite = gx.ExpectationSuite(name=name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
    )
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        meta = outcome.expectation_config.meta or {}
        rule = meta.get("rule", outcome.expectation_config.type)
        message = meta.get("message", rule)
        info = outcome.exception_info or {}
        if info.get("raised_exception"):
            failures.append(
                Failure(file, "*", rule, f"could not be checked: {info.get('exception_message')}")
            )
            continue
        unexpected = outcome.result.get("unexpected_index_list")
        if not unexpected:
            observed = outcome.result.get("observed_value")
            failures.append(Failure(file, "*", rule, f"{message} (observed {observed!r})"))
            continue
        column = outcome.expectation_config.kwargs.get("column")
        for entry in unexpected:
            quote = meta.get("quote_value", True) and column in entry and _present(entry[column])
            got = f", got {quoted(entry[column])}" if quote else ""
            failures.append(Failure(file, str(entry[ROW_ID]), rule, f"{message}{got}"))
    return failures


def _present(value: object) -> bool:
    """False for None / NaN: "is missing, got None" says nothing more than "is missing"."""
    return not (pd.api.types.is_scalar(value) and pd.isna(value))


def _plain(value: object) -> object:
    """numpy scalars -> Python values, so messages read ``0`` rather than ``np.int64(0)``."""
    return value.item() if hasattr(value, "item") and not isinstance(value, list) else value


def quoted(value: object) -> str:
    """``repr`` of a failing value for a message, cut to ``MAX_QUOTED_CHARS`` with its full size.

    A two-million-character definition must not become a two-million-character report line.
    """
    value = _plain(value)
    if isinstance(value, str) and len(value) > MAX_QUOTED_CHARS:
        return f"{value[:MAX_QUOTED_CHARS]!r}... ({len(value)} characters)"
    text = repr(value)
    if len(text) > MAX_QUOTED_CHARS:
        return f"{text[:MAX_QUOTED_CHARS]}... ({len(text)} characters of repr)"
    return text


def non_empty_string(column: str, what: str) -> list:
    import great_expectations.expectations as gxe

    rule = f"{column} non-empty string"
    return [
        gxe.ExpectColumnValuesToNotBeNull(
            column=column, meta={"rule": rule, "message": f"{what} is missing"}
        ),
        gxe.ExpectColumnValuesToBeOfType(
            column=column, type_="str", meta={"rule": rule, "message": f"{what} must be a string"}
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column=column, regex=r"\S", meta={"rule": rule, "message": f"{what} is empty"}
        ),
    ]


def max_chars(column: str, what: str, *, limit: int, param: str) -> list:
    """Strings of ``column`` hold at most ``limit`` characters (``param`` names the setting).

    Missing values are skipped; a non-string is measured as GX does (a list's ``len``, a
    number's ``str`` length), so pair this with ``non_empty_string`` or a type rule.
    """
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValueLengthsToBeBetween(
            column=column,
            max_value=limit,
            meta={
                "rule": f"{column} length",
                "message": f"{what} is longer than {param} = {limit} characters",
            },
        )
    ]
