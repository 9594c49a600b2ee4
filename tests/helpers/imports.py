"""The lensforge modules a module imports, transitively, read from the source (no import runs).

Every ``import``/``from ... import`` of a ``lensforge`` module counts, function-level imports
included, so a stage's DVC deps can be checked against everything its code can reach.
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_file(src_dir: Path, module: str) -> Path | None:
    """``src/lensforge/a/b.py`` or ``src/lensforge/a/b/__init__.py`` for ``lensforge.a.b``."""
    base = src_dir.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _direct_imports(src_dir: Path, path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lensforge"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "lensforge":
                continue
            found.add(node.module)
            for alias in node.names:  # ``from lensforge.core import paths`` imports a module
                if module_file(src_dir, f"{node.module}.{alias.name}"):
                    found.add(f"{node.module}.{alias.name}")
    return found


def lensforge_closure(src_dir: Path, module: str) -> set[Path]:
    """Files of ``module`` and of every lensforge module it reaches (package ``__init__`` too)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            path = module_file(src_dir, ".".join(parts[:i]))
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(_direct_imports(src_dir, path))
    return seen
