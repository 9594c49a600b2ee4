"""The lens pack: every concept lens in one safetensors file plus a manifest a monitoring tool
loads in one read (concept, pack layer, model layer, kind, tier, validation and test F1,
threshold, samples used, synsets, and the hashes of the activations and of the weights)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

MANIFEST_FIELDS = (
    "concept",
    "pack_layer",
    "tier",
    "graduated",
    "val_f1",
    "test_f1",
    "test_auroc",
    "threshold",
    "samples",
    "synsets",
)


def manifest(
    records: pd.DataFrame,
    concepts: pd.DataFrame,
    tested: pd.DataFrame,
    *,
    card: Mapping[str, object],
    weights_sha256: str,
    evaluate_sha256: str,
) -> dict:
    """The manifest of a pack: one entry per lens in weight order, plus what produced it."""
    table = records.merge(concepts[["concept", "synsets"]], on="concept", how="left")
    table = table.merge(
        tested[["concept", "f1", "auroc"]].rename(columns={"f1": "test_f1", "auroc": "test_auroc"}),
        on="concept",
        how="left",
    )
    if table["concept"].tolist() != records["concept"].tolist():
        raise ValueError("manifest rows must follow the weights' lens order")
    lenses = []
    for row in table.to_dict("records"):
        entry = {field: row[field] for field in MANIFEST_FIELDS}
        entry["synsets"] = [s for s in str(entry["synsets"]).split("|") if s]
        entry["graduated"] = bool(entry["graduated"])
        for key in ("val_f1", "test_f1", "test_auroc"):
            entry[key] = None if pd.isna(entry[key]) or entry[key] == "" else float(entry[key])
        lenses.append(entry)
    return {
        "kind": card["kind"],
        "model_layer": card["layer"],
        "d_model": card["d_model"],
        "n_lenses": len(lenses),
        "activation_manifest_sha256": card["activation_manifest_sha256"],
        "weights_sha256": weights_sha256,
        "evaluation_sha256": evaluate_sha256,
        "tensors": "one row per lens, in the order of `lenses`; feature_mean / feature_std shared",
        "lenses": lenses,
    }
