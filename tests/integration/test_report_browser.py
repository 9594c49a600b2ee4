"""The report opens in a real headless browser (Debian's chromium, driven by Playwright) with no
console error, no uncaught exception, no failed request and every image decoded.

Playwright's own browser download cannot reach its host here, so the test drives the system
``/usr/bin/chromium`` (``make browser`` installs it; ``.ci/run`` runs that first). Network-facing
features of chromium are switched off, so the page gets no chance to reach anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lensforge.core import paths
from lensforge.stages import report as report_stage
from tests.helpers.report_data import expected_figure_ids, write_report_inputs

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_problems(pages: list[Path], user_data_dir: Path) -> dict[str, tuple[list[str], int]]:
    """Open each page once in headless chromium; per page, every console error, uncaught
    exception, failed request and image that did not decode, in words, and the number of
    images that did decode."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    results: dict[str, tuple[list[str], int]] = {}
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            for path in pages:
                problems: list[str] = []
                tab = context.new_page()
                tab.on(
                    "console",
                    lambda m, out=problems: m.type == "error" and out.append(f"console: {m.text}"),
                )
                tab.on("pageerror", lambda e, out=problems: out.append(f"uncaught: {e}"))
                tab.on("requestfailed", lambda r, out=problems: out.append(f"request: {r.url}"))
                tab.goto(path.resolve().as_uri(), wait_until="load")
                broken = tab.evaluate(
                    "[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                    ".map(i => i.id || i.alt)"
                )
                problems += [f"image not decoded: {name}" for name in broken]
                n_images = tab.evaluate("document.images.length")
                results[path.name] = (problems, n_images - len(broken))
                tab.close()
        finally:
            context.close()
    return results


def test_report_renders_in_chromium_without_console_errors(tmp_path):
    root = write_report_inputs(tmp_path / "project")
    report_stage.run(None, root=root)
    report = paths.under(root, paths.REPORT_HTML)
    # Two controls in the same browser session: the check must catch each way a page can fail.
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>x</title></head><body>"
        "<script>console.error('deliberate'); notDefinedAnywhere();</script>"
        "<img id='gone' alt='gone' src='missing.png'></body></html>",
        encoding="utf-8",
    )

    results = browser_problems([report, broken], tmp_path / "chromium-profile")

    assert results["index.html"] == ([], len(expected_figure_ids()))
    caught = "\n".join(results["broken.html"][0])
    assert "console: deliberate" in caught
    assert "uncaught: " in caught and "notDefinedAnywhere" in caught
    assert "request: " in caught and "missing.png" in caught
    assert "image not decoded: gone" in caught
