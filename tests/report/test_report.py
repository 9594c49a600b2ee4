"""The report stage: one self-contained HTML page holding every figure, from hand-made metrics."""

from __future__ import annotations

import base64
import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from lensforge.cli import main
from lensforge.core import paths
from lensforge.core.errors import ArtifactError
from lensforge.report import build, sections
from lensforge.stages import report as report_stage
from tests.helpers.report_data import SIMPLEXES, expected_figure_ids, write_report_inputs

PNG_PREFIX = "data:image/png;base64,"
# Elements that load or embed something from elsewhere; the report needs none of them.
LOADING_TAGS = {"script", "link", "iframe", "object", "embed", "audio", "video", "source", "base"}


class _Page(HTMLParser):
    """Collects the ids, images and every attribute value that can point somewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images: list[dict[str, str]] = []
        self.references: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "img":
            self.images.append(attributes)
        for name in ("src", "href", "srcset", "action", "data", "poster", "style"):
            if name in attributes:
                self.references.append((tag, name, attributes[name]))


def outside_references(html: str) -> list[str]:
    """Every way ``html`` could reach outside itself, in words; empty when it cannot."""
    page = _Page()
    page.feed(html)
    problems = [f"<{tag}> present" for tag in sorted(page.tags & LOADING_TAGS)]
    problems += [m.group(0) for m in re.finditer(r"(?i)(https?:|ftp:|file:)//[^\s\"'<>]*", html)]
    problems += [m.group(0) for m in re.finditer(r"(?i)@import|url\(", html)]
    for tag, name, value in page.references:
        if name == "src" and value.startswith(PNG_PREFIX):
            continue
        if name == "href" and value.startswith("#") and value[1:] in page.ids:
            continue
        problems.append(f"<{tag} {name}={value[:60]!r}>")
    return problems


def _figures(html: str) -> dict[str, dict[str, str]]:
    page = _Page()
    page.feed(html)
    return {image["id"]: image for image in page.images}


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> str:
    root = write_report_inputs(tmp_path_factory.mktemp("report"))
    report_stage.run(None, root=root)
    return paths.under(root, paths.REPORT_HTML).read_text(encoding="utf-8")


def test_report_references_nothing_outside_itself(full_report):
    assert outside_references(full_report) == []


@pytest.mark.parametrize(
    "snippet",
    [
        '<img id="x" alt="x" src="https://cdn.example/x.png">',
        '<script src="data:text/javascript,1"></script>',
        '<a href="other.html">other</a>',
        '<a href="#nowhere">dangling</a>',
        '<p style="background: url(x.png)">x</p>',
        "<style>@import 'fonts.css';</style>",
    ],
)
def test_the_reference_check_catches_each_way_out(full_report, snippet):
    spoiled = full_report.replace("</body>", f"{snippet}</body>")
    assert outside_references(spoiled) != []


def test_report_holds_every_expected_figure_as_a_decodable_png(full_report):
    found = _figures(full_report)
    assert set(found) == expected_figure_ids()
    for figure_id, image in found.items():
        assert image["alt"], f"{figure_id} has no alt text"
        png = base64.b64decode(image["src"][len(PNG_PREFIX) :], validate=True)
        with Image.open(io.BytesIO(png)) as decoded:
            assert decoded.format == "PNG"
            assert decoded.width > 100 and decoded.height > 100


def test_report_has_a_section_per_simplex_and_branch_with_contents_links(full_report):
    page = _Page()
    page.feed(full_report)
    slugs = [paths.simplex_slug(s) for s in SIMPLEXES]
    wanted = {"summary", "layer-sweep", "adjudications", "concepts", "data-quality", "spans"}
    wanted |= {f"simplex-{slug}" for slug in slugs}
    assert wanted <= page.ids
    links = {value[1:] for _, name, value in page.references if name == "href"}
    assert wanted <= links


def test_tier_summary_shows_tiers_and_catastrophic_counts(full_report):
    row = re.search(r"<tr><td>aspiration/social_mobility</td>(.*?)</tr>", full_report)
    assert row is not None
    assert [c for c in re.findall(r"<td>(.*?)</td>", row.group(1))] == [
        "B",
        "C",
        "0.600",
        "0.020",
        "1",
    ]


def test_layer_sweep_marks_the_best_validation_layer_not_the_best_test_layer(full_report):
    assert "Best validation macro-F1 at layer 4." in full_report


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"layer_sweep": False}, paths.LAYER_SWEEP_PLOT),
        ({"data_quality": False}, paths.DATA_QUALITY_METRICS),
    ],
)
def test_the_layer_sweep_and_data_quality_sections_are_required(tmp_path, changes, missing):
    root = write_report_inputs(tmp_path, **changes)
    with pytest.raises(ArtifactError) as info:
        report_stage.run(None, root=root)
    assert missing.as_posix() in str(info.value)
    assert not paths.under(root, paths.REPORT_HTML).exists()


REQUIRED = [
    paths.BALANCE_SUMMARY,
    paths.EVALUATE_METRICS,
    paths.EVALUATE_CONFUSION,
    paths.EVALUATE_F1_BY_SEED,
    paths.EVALUATE_CALIBRATION,
    paths.TRAIN_LIVE_DIR / "warmth" / "seed_1" / "plots" / "metrics" / "val" / "macro_f1.tsv",
    paths.EVALUATE_ADJUDICATIONS_METRICS,
    paths.EVALUATE_ADJUDICATIONS_CONFUSION_DIR / "stance.csv",
    paths.EVALUATE_ADJUDICATIONS_CALIBRATION,
    paths.EVALUATE_CONCEPTS_METRICS,
    paths.EVALUATE_CONCEPTS_TIERS,
    paths.EVALUATE_CONCEPTS_F1,
    paths.EVALUATE_CONCEPTS_F1_BY_SAMPLES,
]


@pytest.mark.parametrize("missing", REQUIRED, ids=lambda p: p.as_posix())
def test_a_missing_required_input_is_an_error_naming_the_file(tmp_path, missing: Path):
    root = write_report_inputs(tmp_path)
    (root / missing).unlink()
    with pytest.raises(ArtifactError, match="missing") as caught:
        report_stage.run(None, root=root)
    assert str(root / missing) in str(caught.value)
    assert not paths.under(root, paths.REPORT_HTML).exists()


def test_a_dropped_column_is_an_error_naming_file_and_column(tmp_path):
    root = write_report_inputs(tmp_path)
    path = paths.under(root, paths.EVALUATE_CALIBRATION)
    pd.read_csv(path).drop(columns="count").to_csv(path, index=False)
    with pytest.raises(ArtifactError, match=r"lacks columns \['count'\]") as caught:
        build.build_report(root)
    assert str(path) in str(caught.value)


def test_a_simplex_without_rows_in_a_plot_table_is_an_error(tmp_path):
    root = write_report_inputs(tmp_path)
    path = paths.under(root, paths.EVALUATE_CALIBRATION)
    frame = pd.read_csv(path)
    frame[frame["simplex"] != "warmth"].to_csv(path, index=False)
    with pytest.raises(ArtifactError, match="no rows for simplex 'warmth'"):
        build.build_report(root)


def test_a_present_but_broken_hook_input_is_an_error_not_a_note(tmp_path):
    root = write_report_inputs(tmp_path)
    path = paths.under(root, paths.LAYER_SWEEP_PLOT)
    pd.read_csv(path).drop(columns="test_neutral_f1").to_csv(path, index=False)
    with pytest.raises(ArtifactError, match="layer sweep lacks columns"):
        build.build_report(root)


def test_cli_report_reports_a_missing_input_in_one_line(tmp_path, project_root):
    root = write_report_inputs(tmp_path)
    (root / paths.EVALUATE_CONCEPTS_TIERS).unlink()
    shutil.copy(project_root / paths.PARAMS, root / paths.PARAMS)
    result = CliRunner().invoke(main, ["--root", str(root), "report"])
    assert result.exit_code == 2
    assert "concept tiers by layer missing" in result.output
    assert "tiers_by_layer.csv" in result.output


def test_confusion_counts_keep_the_given_class_order_and_fill_zeros():
    pairs = pd.DataFrame({"actual": ["b", "a", "a"], "predicted": ["b", "a", "b"]})
    table = sections.confusion_counts(pairs, classes=["a", "b", "c"])
    assert table.index.tolist() == ["a", "b", "c"]
    assert table.to_numpy().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_fmt_keeps_integers_whole_and_rounds_floats():
    assert [sections.fmt(v) for v in (0, 3, 0.5, 2.0, "F")] == ["0", "3", "0.500", "2.000", "F"]


def test_the_same_inputs_give_the_same_bytes(tmp_path, full_report):
    root = write_report_inputs(tmp_path)
    report_stage.run(None, root=root)
    assert paths.under(root, paths.REPORT_HTML).read_text(encoding="utf-8") == full_report


def test_span_section_compares_the_model_with_its_three_baselines(full_report):
    section = full_report[full_report.index('id="spans"') :]
    for scorer in (
        "span model",
        "volatility rule (past bars)",
        "forward rule (bars in the window)",
        "logistic regression (past bars)",
    ):
        assert f"<td>{scorer}</td>" in section, scorer
    assert re.search(r"<td>span model</td><td>0\.700</td>", section)
