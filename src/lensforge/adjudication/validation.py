"""Great Expectations suites over adjudication inputs -> failures naming file, row and rule.

The same rules run on a user's CSV files (``import_adjudications`` with ``source: csv``, before
anything is written) and on the imported files (``adjudicate``), against the tasks declared in
params. Rows are named ``<item_id> (line N)`` in items and ``<item_id>#<rater>#<task> (line N)``
in ratings (``sources.LINE``; the header is line 1); per (item, task) counts are named
``<item_id>/<task>``.

- items: non-empty unique ``item_id``; non-empty text within [min_chars, max_chars] characters.
- ratings: a declared task; one rating per (item, rater, task); an item that is in items;
  ``scores`` tasks a number within the task's ``score_range``; ``labels`` tasks one of the
  task's classes; ``mapping`` tasks a source label the task's mapping table knows.
- per (item, task) with ratings: at least ``min_raters`` ratings, exactly one for ``mapping``.

After adjudication, ``check_class_minimums`` requires at least ``min_per_class`` items per class
and task (row id ``task/class``). The suites reuse ``checks.run_suite`` (ephemeral GX context)
and its ``Failure`` / ``Report`` types.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from lensforge.adjudication import sources
from lensforge.core.checks import ROW_ID, Failure, Report, run_suite
from lensforge.core.params import AdjudicationTaskParams


def _meta(rule: str, message: str, *, quote: bool = True) -> dict[str, object]:
    return {"rule": rule, "message": message, "quote_value": quote}


def _row_names(keys: pd.Series, frame: pd.DataFrame) -> pd.Series:
    if sources.LINE not in frame.columns:
        return keys
    return keys + " (line " + frame[sources.LINE].astype(str) + ")"


def check_items(items: pd.DataFrame, *, file: str, min_chars: int, max_chars: int) -> list[Failure]:
    """Rules of the items table (module doc)."""
    import great_expectations.expectations as gxe

    view = items.astype(object)
    view[ROW_ID] = _row_names(items["item_id"].astype(str), items)
    view["item_id"] = view["item_id"].where(view["item_id"] != "", None)
    view["text"] = items["text"].astype(str).str.strip()
    expectations = [
        gxe.ExpectColumnValuesToNotBeNull(
            column="item_id", meta=_meta("item_id present", "item_id is empty")
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="item_id", meta=_meta("item_id unique", "item_id appears more than once")
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="text", regex=r"\S", meta=_meta("text non-empty", "text is empty", quote=False)
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text",
            min_value=min_chars,
            max_value=max_chars,
            meta=_meta(
                "text length",
                f"text length must be in [{min_chars}, {max_chars}] characters "
                "(import_adjudications.min_chars / max_chars)",
            ),
        ),
    ]
    return run_suite(view, expectations, name="adjudication_items", file=file)


def _value_keys(ratings: pd.DataFrame) -> pd.Series:
    """``task/label`` of each categorical rating (what the allowed-values rule checks)."""
    return ratings["task"].astype(str) + "/" + ratings["label"].astype(str)


def _allowed_value_keys(tasks: Mapping[str, AdjudicationTaskParams]) -> list[str]:
    allowed = []
    for name, task in tasks.items():
        if task.label_source == "labels":
            allowed += [f"{name}/{c}" for c in task.classes]
        elif task.label_source == "mapping":
            allowed += [f"{name}/{label}" for label in task.mapping]
    return allowed


def _score_failures(
    view: pd.DataFrame, tasks: Mapping[str, AdjudicationTaskParams], *, file: str
) -> list[Failure]:
    import great_expectations.expectations as gxe

    failures = []
    for name, task in tasks.items():
        if task.label_source != "scores":
            continue
        part = view[view["task"] == name].copy()
        part["score"] = pd.to_numeric(part["score"], errors="coerce").astype(object)
        part["score"] = part["score"].where(part["score"].notna(), None)
        low, high = task.score_range
        failures += run_suite(
            part,
            [
                gxe.ExpectColumnValuesToNotBeNull(
                    column="score",
                    meta=_meta("score is a number", f"task {name} needs a numeric score"),
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="score",
                    min_value=low,
                    max_value=high,
                    meta=_meta("score range", f"task {name}: score must be in [{low:g}, {high:g}]"),
                ),
            ],
            name=f"adjudication_scores_{name}",
            file=file,
        )
    return failures


def _raters_failures(
    ratings: pd.DataFrame,
    tasks: Mapping[str, AdjudicationTaskParams],
    *,
    file: str,
    min_raters: int,
) -> list[Failure]:
    import great_expectations.expectations as gxe

    counts = ratings.groupby(["item_id", "task"]).size().rename("n_ratings").reset_index()
    counts = counts[counts["task"].isin(list(tasks))]
    if counts.empty:
        return []
    counts[ROW_ID] = counts["item_id"].astype(str) + "/" + counts["task"].astype(str)
    mapped = counts["task"].map(lambda t: tasks[t].label_source == "mapping")
    failures = []
    for selection, low, high, message in (
        (~mapped, min_raters, None, f"an item needs at least {min_raters} ratings per task"),
        (mapped, 1, 1, "a mapping task takes exactly one source label per item"),
    ):
        part = counts[selection].astype(object)
        if part.empty:
            continue
        failures += run_suite(
            part,
            [
                gxe.ExpectColumnValuesToBeBetween(
                    column="n_ratings",
                    min_value=low,
                    max_value=high,
                    meta=_meta("raters per item", message),
                )
            ],
            name="adjudication_raters",
            file=file,
        )
    return failures


def check_ratings(
    ratings: pd.DataFrame,
    items: pd.DataFrame,
    *,
    tasks: Mapping[str, AdjudicationTaskParams],
    file: str,
    min_raters: int,
) -> list[Failure]:
    """Rules of the ratings table against the items and the declared tasks (module doc)."""
    import great_expectations.expectations as gxe

    view = ratings.astype(object)
    key = (
        ratings["item_id"].astype(str)
        + "#"
        + ratings["rater"].astype(str)
        + "#"
        + ratings["task"].astype(str)
    )
    view[ROW_ID] = _row_names(key, ratings)
    view["rating_key"] = key
    categorical = (
        ratings["task"].map(lambda t: t in tasks and tasks[t].label_source != "scores").astype(bool)
    )
    view["value_key"] = _value_keys(ratings)
    failures = run_suite(
        view,
        [
            gxe.ExpectColumnValuesToBeInSet(
                column="task",
                value_set=list(tasks),
                meta=_meta("task declared", f"task must be one of adjudicate.tasks {list(tasks)}"),
            ),
            gxe.ExpectColumnValuesToBeUnique(
                column="rating_key",
                meta=_meta(
                    "one rating per item, rater and task",
                    "this (item, rater, task) is rated more than once",
                    quote=False,
                ),
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="item_id",
                value_set=items["item_id"].astype(str).tolist(),
                meta=_meta("rated item exists", "rating of an item that is not in items"),
            ),
        ],
        name="adjudication_ratings",
        file=file,
    )
    if categorical.any():
        failures += run_suite(
            view[categorical],
            [
                gxe.ExpectColumnValuesToBeInSet(
                    column="value_key",
                    value_set=_allowed_value_keys(tasks),
                    meta=_meta(
                        "class known",
                        "label is not a class of its task (or, for a mapping task, not a "
                        "source label of its mapping table)",
                    ),
                )
            ],
            name="adjudication_labels",
            file=file,
        )
    failures += _score_failures(view, tasks, file=file)
    failures += _raters_failures(ratings, tasks, file=file, min_raters=min_raters)
    return failures


def validate_raw(
    items: pd.DataFrame,
    ratings: pd.DataFrame,
    *,
    tasks: Mapping[str, AdjudicationTaskParams],
    items_file: str,
    ratings_file: str,
    min_chars: int,
    max_chars: int,
    min_raters: int,
) -> Report:
    """Every rule on both tables; counts are items per domain and ratings per task."""
    failures = check_items(items, file=items_file, min_chars=min_chars, max_chars=max_chars)
    failures += check_ratings(ratings, items, tasks=tasks, file=ratings_file, min_raters=min_raters)
    counts = {f"n_items/{d or '(none)'}": int(n) for d, n in items["domain"].value_counts().items()}
    counts.update({f"n_ratings/{t}": int(n) for t, n in ratings["task"].value_counts().items()})
    return Report(failures=tuple(dict.fromkeys(failures)), counts=dict(sorted(counts.items())))


def check_class_minimums(
    labelled: pd.DataFrame,
    *,
    classes: Mapping[str, tuple[str, ...]],
    file: str,
    min_per_class: int,
) -> list[Failure]:
    """At least ``min_per_class`` items carry each class of each task (a task's empty class cannot
    be learnt or scored: fail before fine-tuning, not after)."""
    failures = []
    for task, names in classes.items():
        for name in names:
            n = int((labelled[task] == name).sum())
            if n < min_per_class:
                failures.append(
                    Failure(
                        file,
                        f"{task}/{name}",
                        "min rows per class",
                        f"{n} items labelled {name!r} for {task}, need at least {min_per_class} "
                        "(adjudicate.min_per_class)",
                    )
                )
    return failures
