"""The trained concept lenses on disk: stacked weights (safetensors), one record per lens (CSV)
and a card with the settings, the hashes of the activations and of the weights.

``load_lenses`` rebuilds the stack from the folder alone and refuses weights whose sha256
differs from the card, or lenses trained on other activations: nothing untrained is scored.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from safetensors.torch import load_file

from lensforge.concepts import training
from lensforge.core import artifacts, paths
from lensforge.core.errors import ArtifactError

PARAM_NAMES = {"linear": ("weight", "bias"), "mlp": ("w1", "b1", "w2", "b2")}


def save_lenses(
    out_dir: Path, weights: training.LensStack, records: pd.DataFrame, *, card: dict
) -> dict:
    """Write weights, records and card into ``out_dir`` (a folder being built atomically)."""
    weights_path = out_dir / paths.CONCEPT_WEIGHTS_NAME
    artifacts.write_safetensors(weights_path, weights.state_dict())
    artifacts.write_csv(out_dir / paths.CONCEPT_RECORDS_NAME, records)
    full = {
        **card,
        "kind": weights.kind,
        "n_lenses": len(weights),
        "d_model": weights.d_model,
        "concepts": records["concept"].tolist(),
        "weights_sha256": artifacts.file_sha256(weights_path),
    }
    artifacts.write_json(out_dir / paths.CONCEPT_CARD_NAME, full)
    return full


def load_lenses(
    lens_dir: Path, *, manifest_sha256: str | None = None
) -> tuple[training.LensStack, pd.DataFrame, dict]:
    """(weights, records, card) of a saved folder; ``ArtifactError`` when anything is missing,
    the weights' hash differs from the card's, or (given ``manifest_sha256``) the lenses were
    trained on other activations."""
    card_path = lens_dir / paths.CONCEPT_CARD_NAME
    card = artifacts.read_json(card_path, what="concept lens card (run train_concepts)")
    weights_path = lens_dir / paths.CONCEPT_WEIGHTS_NAME
    if not weights_path.is_file():
        raise ArtifactError("concept lens weights missing", path=weights_path, rule="weights exist")
    artifacts.check_sha256(
        weights_path,
        card["weights_sha256"],
        what="concept lens weights",
        source="the card's",
        rule="weights hash matches card",
    )
    if manifest_sha256 is not None and card["activation_manifest_sha256"] != manifest_sha256:
        raise ArtifactError(
            "concept lenses were trained on other activations: rerun train_concepts",
            path=card_path,
            rule="lenses trained on these activations",
        )
    tensors = load_file(str(weights_path))
    kind = card["kind"]
    if kind not in PARAM_NAMES or any(name not in tensors for name in PARAM_NAMES[kind]):
        raise ArtifactError(f"weights do not hold a {kind!r} stack", path=weights_path)
    weights = training.LensStack(
        kind=kind,
        params={name: tensors[name] for name in PARAM_NAMES[kind]},
        feature_mean=tensors["feature_mean"],
        feature_std=tensors["feature_std"],
    )
    records = pd.read_csv(lens_dir / paths.CONCEPT_RECORDS_NAME, keep_default_na=False)
    if records["concept"].tolist() != card["concepts"] or len(records) != len(weights):
        raise ArtifactError("records and card disagree on the concepts", path=lens_dir)
    return weights, records, card
