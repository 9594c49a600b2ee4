"""Bad data-quality params are ``ParamsError``s naming the key; the packaged encoder resolves."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lensforge.core import packaged, params
from lensforge.core.errors import ArtifactError, ParamsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_shipped_params_parse(raw):
    parsed = params.parse(raw)
    assert parsed.quality_samples.per_quadrant == 3
    assert parsed.data_quality.judge.grade_levels == (0.25, 0.5, 0.75, 1.0)


@pytest.mark.parametrize(
    ("section", "key", "value", "row"),
    [
        ("quality_samples", "per_quadrant", 0, "quality_samples.per_quadrant"),
        ("quality_samples", "decoding", "beam", "quality_samples.decoding"),
        ("quality_samples", "temperature", 0.0, "quality_samples.temperature"),
        ("quality_samples.quadrants", "high_synsets_min", 2, "quality_samples.quadrants"),
        ("data_quality.grading", "max_repetition", 1.5, "data_quality.grading.max_repetition"),
        ("data_quality.grading", "short_chars", 5, "data_quality.grading"),
        (
            "data_quality.judge",
            "grade_levels",
            [0.5, 0.25, 0.75, 1.0],
            "data_quality.judge.grade_levels",
        ),
        ("data_quality.judge", "grade_levels", [0.1, 0.2], "data_quality.judge.grade_levels"),
        ("data_quality.judge", "source", "hf", "data_quality.judge.name_or_path"),
        ("data_quality.judge", "kind", "llm", "data_quality.judge.kind"),
        ("data_quality", "n_bootstrap", 0, "data_quality.n_bootstrap"),
        ("data_quality", "ci_level", 1.2, "data_quality.ci_level"),
    ],
)
def test_bad_values_name_their_key(raw, section, key, value, row):
    bad = copy.deepcopy(raw)
    node = bad
    for part in section.split("."):
        node = node[part]
    node[key] = value
    with pytest.raises(ParamsError) as exc:
        params.parse(bad)
    assert exc.value.row == row


def test_a_missing_key_is_refused(raw):
    bad = copy.deepcopy(raw)
    del bad["data_quality"]["judge"]["n_random_candidates"]
    with pytest.raises(ParamsError, match="missing key"):
        params.parse(bad)


def test_the_packaged_minilm_folder_resolves():
    folder = Path(packaged.encoder_location("minilm", ""))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert packaged.encoder_location("hf", "/some/folder") == "/some/folder"
    with pytest.raises(ValueError, match="unknown encoder source"):
        packaged.encoder_location("bert", "")


def test_a_missing_package_says_how_to_install_it():
    with pytest.raises(ArtifactError, match="pip install nothing-here"):
        packaged.package_dir("lensforge_no_such_package", install_hint="pip install nothing-here")
