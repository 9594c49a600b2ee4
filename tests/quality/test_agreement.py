"""``quality.agreement``: cosines, the prompt-match rank and lens firing on planted vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lensforge.quality import agreement


def test_prompt_match_is_1_when_each_generation_sits_on_its_own_prompt():
    prompts = torch.randn(6, 8)
    got = agreement.prompt_match(prompts, prompts + 0.01 * torch.randn(6, 8))
    assert np.allclose(got, 1.0)


def test_prompt_match_is_about_half_for_unrelated_generations():
    torch.manual_seed(0)
    got = agreement.prompt_match(torch.randn(400, 16), torch.randn(400, 16))
    assert abs(np.nanmean(got) - 0.5) < 0.03


def test_rows_without_generated_tokens_get_nan_and_never_fire():
    prompts = torch.randn(3, 4)
    generated = prompts.clone()
    generated[1] = float("nan")
    frame = agreement.agreement_columns(
        prompts,
        generated,
        prompt_probability=np.array([0.9, 0.9, 0.2]),
        generated_probability=np.array([0.8, 0.99, 0.7]),
        threshold=0.5,
    )
    assert frame["cosine"].round(6).tolist()[0] == 1.0 and np.isnan(frame.loc[1, "cosine"])
    assert np.isnan(frame.loc[1, "prompt_match"]) and np.isnan(frame.loc[1, "lens_generated"])
    assert frame["fires_prompt"].tolist() == [True, True, False]
    assert frame["fires_generated"].tolist() == [True, False, True]


def test_centering_removes_the_shared_direction():
    shared = torch.full((1, 8), 50.0)
    torch.manual_seed(1)
    prompts, generated = shared + torch.randn(200, 8), shared + torch.randn(200, 8)
    raw = agreement.cosines(prompts, generated)
    centred = agreement.cosines(agreement.centered(prompts), agreement.centered(generated))
    assert raw.mean() > 0.95 and abs(centred.mean()) < 0.1


def test_agreement_by_grade_splits_degenerate_from_good():
    samples = pd.DataFrame(
        {
            "side": ["positive"] * 3,
            "grade": ["good", "repetitive", "empty"],
            "cosine": [0.9, 0.5, np.nan],
            "centered_cosine": [0.4, 0.2, np.nan],
            "prompt_match": [1.0, 0.5, np.nan],
            "fires_prompt": [True, True, True],
            "fires_generated": [True, True, False],
        }
    )
    table = agreement.agreement_by_grade(samples).set_index(["side", "grade"])
    degenerate = table.loc[("positive", "degenerate")]
    assert degenerate["n"] == 2 and degenerate["n_with_tokens"] == 1
    assert degenerate["fires_generated"] == pytest.approx(0.5)
    assert table.loc[("positive", "good"), "prompt_match"] == 1.0
