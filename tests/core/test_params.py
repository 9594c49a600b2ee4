from __future__ import annotations

import copy

import pytest
import yaml

from lensforge.core import params
from lensforge.core.errors import ParamsError


@pytest.fixture()
def raw(project_root) -> dict:
    return yaml.safe_load((project_root / "params.yaml").read_text())


def test_project_params_parse_into_frozen_sections(raw):
    parsed = params.parse(raw)
    assert parsed.balance.strategy == "median_target"
    assert parsed.train.seeds == (0, 1, 2, 3, 4)
    with pytest.raises(AttributeError):
        parsed.balance.strategy = "none"  # type: ignore[misc]


def test_unknown_key_is_rejected_with_its_name(raw):
    broken = copy.deepcopy(raw)
    broken["train"]["loss"]["margin_wieght"] = 0.5
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['margin_wieght'\] in train.loss"):
        params.parse(broken)


def test_missing_key_is_rejected_with_its_name(raw):
    broken = copy.deepcopy(raw)
    del broken["balance"]["base_prompts"]
    with pytest.raises(ParamsError, match=r"missing key\(s\) \['base_prompts'\] in balance"):
        params.parse(broken)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("balance", "strategy", "oversample_everything", "balance.strategy must be one of"),
        ("train", "max_epochs", "100", "train.max_epochs must be an integer"),
        ("train", "max_epochs", 0, "train.max_epochs must be >= 1"),
        ("prompts", "include_experiential", "yes", "must be true or false"),
        ("prompts", "behavioral_ratio", 1.5, "behavioral_ratio must be in"),
    ],
)
def test_wrong_values_name_the_key(raw, section, key, value, message):
    broken = copy.deepcopy(raw)
    broken[section][key] = value
    with pytest.raises(ParamsError, match=message):
        params.parse(broken)


@pytest.mark.parametrize("section", ["prompts", "adjudicate"])
def test_split_fractions_must_sum_to_one_and_name_their_section(raw, section):
    broken = copy.deepcopy(raw)
    broken[section]["split"]["test"] = 0.5
    with pytest.raises(ParamsError, match="sum to 1") as info:
        params.parse(broken)
    assert info.value.row == f"{section}.split"


def test_load_reports_broken_yaml_with_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML") as info:
        params.load(path)
    assert str(path) in str(info.value)


def test_validate_text_bounds_parse_from_the_project_params(raw):
    bounds = params.parse(raw).validate
    assert bounds.max_definition_chars == 2000
    assert bounds.max_name_chars == 200
    assert bounds.max_prompt_chars == 500


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_definition_chars", 0, r"validate.max_definition_chars must be >= 1, got 0"),
        ("max_prompt_chars", -5, r"validate.max_prompt_chars must be >= 1, got -5"),
        ("min_synsets_per_pole", -1, r"validate.min_synsets_per_pole must be >= 0, got -1"),
        ("max_name_chars", "200", r"validate.max_name_chars must be an integer"),
    ],
)
def test_validate_bounds_out_of_range_are_rejected_with_their_key(raw, key, value, message):
    broken = copy.deepcopy(raw)
    broken["validate"][key] = value
    with pytest.raises(ParamsError, match=message) as info:
        params.parse(broken)
    assert info.value.row == f"validate.{key}"


def test_validate_text_bound_missing_is_rejected_with_its_name(raw):
    broken = copy.deepcopy(raw)
    del broken["validate"]["max_prompt_chars"]
    with pytest.raises(ParamsError, match=r"missing key\(s\) \['max_prompt_chars'\] in validate"):
        params.parse(broken)
