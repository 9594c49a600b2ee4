"""User-facing errors: each names the file, the row (or key) and the rule that failed.

The CLI turns a ``LensforgeError`` into a one-paragraph message and exit code 2, never a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LensforgeError(Exception):
    """A mistake in the user's input or configuration, reported without a traceback."""

    def __init__(self, message: str, *, path: object = None, row: object = None, rule: str = ""):
        self.message = message
        self.path = path
        self.row = row
        self.rule = rule
        parts = []
        if path is not None:
            parts.append(f"file {path}")
        if row is not None:
            parts.append(f"row {row}")
        if rule:
            parts.append(f"rule {rule}")
        where = f" [{', '.join(parts)}]" if parts else ""
        super().__init__(f"{message}{where}")


class ParamsError(LensforgeError):
    """params.yaml is missing a key, has an unknown key, or a value of the wrong type."""


class DataError(LensforgeError):
    """A raw or intermediate data file breaks a rule of its schema."""


class ArtifactError(LensforgeError):
    """An artifact a stage needs is missing or does not match its recorded hash."""
