"""Graduate every concept lens of a cached pool with the ``train_concepts`` params: each lens's
rows from the cache index and the negatives, the train split's standardisation, per-concept
seeds, then ``graduation.graduate``. Returns the stacked weights and one record per concept."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pandas as pd
import torch

from lensforge.concepts import graduation, rows, training
from lensforge.core.params import TrainConceptsParams


def schedule(config: TrainConceptsParams) -> list[int]:
    """The sample count of every iteration, from ``config.schedule``."""
    options = {"start": config.schedule.start, "n_iterations": config.schedule.n_iterations}
    if config.schedule.kind == "linear":
        options.update(step=config.schedule.step, cap=config.schedule.cap)
    return graduation.build_schedule(config.schedule.kind, **options)


def graduate_concepts(
    x: torch.Tensor,
    index: pd.DataFrame,
    negatives: pd.DataFrame,
    concepts: pd.DataFrame,
    *,
    config: TrainConceptsParams,
    on_group: Callable[[dict], None] | None = None,
) -> tuple[training.LensStack, pd.DataFrame]:
    """``x`` (n_prompts, d_model) holds the cached vector of every ``index`` row; ``concepts``
    the concept table (one lens per row, in order). Only train and validation rows are read."""
    names = concepts["concept"].tolist()
    val = rows.labelled_rows(
        index, negatives, names, split="validation", negative_ratio=config.validation_negative_ratio
    )
    train_ids = torch.tensor((index["split"] == "train").to_numpy()).nonzero()[:, 0]
    result = graduation.graduate(
        x,
        rows.train_pool(index, negatives, names),
        val,
        schedule=schedule(config),
        tiers=[graduation.Tier(**dataclasses.asdict(t)) for t in config.tiers],
        max_train_val_gap=config.max_train_val_gap,
        positive_fraction=config.positive_fraction,
        seeds=training.mix_seeds(config.seed, rows.concept_seeds(names)),
        train_options={
            "kind": config.kind,
            "lr": config.lr,
            "weight_decay": config.weight_decay,
            "batch_size": config.batch_size,
            "max_epochs": config.max_epochs,
            "patience": config.patience,
            "feature_stats": training.standardization(x, train_ids) if config.standardize else None,
            "max_lenses": config.max_lenses_per_program,
            "progress": True,
        },
        on_group=on_group,
    )
    records = pd.DataFrame(result.records)
    records.insert(0, "pack_layer", concepts["pack_layer"].to_numpy())
    records.insert(0, "concept", names)
    return result.weights, records
