"""The prompts stage on copies of HatCat's real files: pool and metrics, with the leakage counts."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from lensforge.core import params as params_module
from lensforge.core import paths
from lensforge.lenses.prompts import POOL_COLUMNS
from lensforge.stages import prompts as prompts_stage


def test_prompts_stage_writes_the_pool_and_zero_leakage_counts(tmp_path, project_root):
    shutil.copytree(project_root / paths.RAW_DIR, tmp_path / paths.RAW_DIR)
    params = params_module.load(project_root / paths.PARAMS)

    prompts_stage.run(params, root=tmp_path)

    pool = pd.read_csv(tmp_path / paths.PROMPT_POOL)
    assert list(pool.columns) == POOL_COLUMNS
    assert set(pool["simplex"]) == set(params.data.simplexes)
    summary = json.loads((tmp_path / paths.PROMPTS_METRICS).read_text(encoding="utf-8"))
    assert summary["cross_split_shared_lemmas"] == 0
    assert summary["cross_split_identical_texts"] == 0
    assert summary["n_prompts"] == len(pool)
    per_pole = sum(
        value
        for key, value in summary.items()
        if key.endswith("/n_prompts") and key.count("/") == 3
    )
    assert per_pole == len(pool)
