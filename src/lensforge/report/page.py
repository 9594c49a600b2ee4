"""Blocks of the report and their HTML: one page, inline CSS, images as base64 ``data:`` URIs.

Nothing on the page points outside it: no scripts, no fonts, no stylesheets, and the only links
are in-page anchors of the table of contents. Every text goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One PNG; ``figure_id`` is its HTML id (tests look figures up by it), ``alt`` its alt text."""

    figure_id: str
    alt: str
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Note:
    """A sentence shown as a highlighted box (a missing optional input, a diagnostic)."""

    text: str


Block = Figure | Table | Note


@dataclass(frozen=True)
class Section:
    section_id: str
    title: str
    intro: str = ""
    blocks: tuple[Block, ...] = field(default_factory=tuple)


STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #444; }
h2 { border-bottom: 1px solid #aaa; margin-top: 2em; }
nav ul { columns: 2; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; max-width: 520px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: bold; padding-bottom: 0.3em; }
.note { background: #fff6d6; border-left: 4px solid #e0b000; padding: 0.5em 1em; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render(sections: Sequence[Section], *, title: str, subtitle: str) -> str:
    """The whole HTML document for ``sections``, in order, after a table of contents."""
    esc = html.escape
    toc = "\n".join(f'<li><a href="#{esc(s.section_id)}">{esc(s.title)}</a></li>' for s in sections)
    body = "\n".join(_section(section) for section in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n<p>{esc(subtitle)}</p>\n"
        f"<nav><h2>Contents</h2>\n<ul>\n{toc}\n</ul></nav>\n{body}\n</body>\n</html>\n"
    )


def _section(section: Section) -> str:
    esc = html.escape
    intro = f"<p>{esc(section.intro)}</p>\n" if section.intro else ""
    blocks = "\n".join(_block(block) for block in section.blocks)
    return (
        f'<section id="{esc(section.section_id)}">\n<h2>{esc(section.title)}</h2>\n'
        f"{intro}{blocks}\n</section>"
    )


def _block(block: Block) -> str:
    esc = html.escape
    if isinstance(block, Figure):
        caption = f"<figcaption>{esc(block.caption)}</figcaption>" if block.caption else ""
        return (
            f'<figure><img id="{esc(block.figure_id)}" alt="{esc(block.alt)}" '
            f'src="{data_uri(block.png)}">{caption}</figure>'
        )
    if isinstance(block, Table):
        caption = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
        head = "".join(f"<th>{esc(cell)}</th>" for cell in block.header)
        rows = "\n".join(
            "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>"
            for row in block.rows
        )
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>"
    if isinstance(block, Note):
        return f'<p class="note">{esc(block.text)}</p>'
    raise TypeError(f"unknown report block {block!r}")
