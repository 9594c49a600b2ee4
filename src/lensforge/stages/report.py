"""report stage: every branch's metrics -> one self-contained ``reports/index.html``.

Reads the metrics and plot tables of evaluate (with the training curves under metrics/train),
balance, evaluate_adjudications and evaluate_concepts, plus the layer sweep and data quality
when they exist (see ``report.build``). Writes one HTML file, atomically, whose figures are
matplotlib PNGs inlined as ``data:`` URIs: it opens in any browser without a network.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lensforge.core import artifacts, paths
from lensforge.core.params import Params
from lensforge.report import build

log = logging.getLogger(__name__)


def run(params: Params, *, root: Path) -> None:
    del params  # the report has no settings: it only draws what the other stages wrote
    html = build.build_report(root)
    out_path = paths.under(root, paths.REPORT_HTML)
    artifacts.write_text(out_path, html)
    log.info("report: wrote %s (%.1f MB)", out_path, len(html.encode("utf-8")) / 1e6)
