"""Flat summaries of the concept branch for metrics files (``dvc metrics diff``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd


def graduation_summary(
    records: pd.DataFrame, *, progress: Sequence[Mapping[str, object]], seconds: float
) -> dict:
    """Flat summary keys of a graduation run for ``dvc metrics diff``: lenses, share graduated,
    count and share per tier, mean / median validation F1 of the trained lenses, the reasons
    of the failures, and per sample count how many trained and graduated (``progress``)."""
    n = len(records)
    tiers = records["tier"].value_counts().to_dict()
    trained = pd.to_numeric(records["val_f1"], errors="coerce").dropna()
    summary: dict[str, object] = {
        "n_lenses": n,
        "share_graduated": float(records["graduated"].astype(bool).mean()) if n else 0.0,
        "tier_counts": {name: int(count) for name, count in sorted(tiers.items())},
        "val_f1_mean": float(trained.mean()) if len(trained) else None,
        "val_f1_median": float(trained.median()) if len(trained) else None,
        "seconds": round(seconds, 2),
    }
    for name, count in sorted(tiers.items()):
        summary[f"share_tier_{name}"] = count / n
    reasons = records["fail_reason"].replace("", None).dropna().value_counts().to_dict()
    summary["fail_reasons"] = {reason: int(c) for reason, c in sorted(reasons.items())}
    summary["progress"] = [
        {k: (round(v, 2) if isinstance(v, float) else v) for k, v in step.items()}
        for step in progress
    ]
    return summary
