"""Lens modules (tripole and two-head), their loss, and saving / loading them with a card.

A lens maps a cached activation vector ``(d_model,)`` to log-probabilities over the three poles
(``hatcat.POLES``: negative, neutral, positive). Both kinds z-score their input with the
train-split mean and std stored as buffers, so a saved lens carries its own standardisation.

- ``tripole``: one ``Linear(d_model, 3)`` and a joint softmax (the balancing experiment's tripole classifier).
- ``mlp``: ``Linear(d_model, hidden) -> ReLU -> Dropout -> Linear(hidden, 3)`` and a joint softmax
  (HatCat's MLP lens); its orthogonality term acts on the three rows of the output layer.
- ``two_head``: a sign head (positive vs negative) and an extremeness head (extreme vs neutral),
  each one logit; ``p(neu) = 1 - p_ext``, ``p(neg) = p_ext * (1 - p_pos|ext)``,
  ``p(pos) = p_ext * p_pos|ext``. Cross-entropy on these combined probabilities equals the
  extremeness head's binary CE on every row plus the sign head's binary CE on non-neutral rows.

Loss (``lens_loss``), all terms a mean over rows weighted by the per-row ``weights`` (all 1
except under ``balance.strategy: class_weight``):

- ``ce``: cross-entropy of the pole probabilities against the row's target distribution (one-hot,
  or split over the poles of an overlap synset under ``prompts.overlap: soft``).
- ``margin``: ``margin_weight`` x hinge. A row's margin is ``p(true) - max p(other)`` in
  probability units, in [-1, 1]. The hinge is ``relu(margin_target - max(margin, margin_floor))``:
  a correct row is pushed until its margin reaches ``margin_target``; a row below
  ``margin_floor`` (wrong or undecided) adds the constant ``margin_target - margin_floor`` and no
  gradient, so the hinge is bounded per row and wrong rows are left to the cross-entropy.
  "Margins cannot shrink to cheat": HatCat's lens learns its per-pole margins (``log_margins``),
  and the hinge only ever pushes a learned margin down, which is the 0.50 -> 0.47 drift the balancing experiment reported
  (a parameter decaying, not separation). Here the target is a fixed param, not a parameter, and
  the margin is measured on probabilities: shrinking the weights drives every margin to 0, which
  is the hinge's maximum (``margin_target - margin_floor`` per row), so it never pays to shrink.
  Soft-target rows have no single true pole and take no hinge.
- ``ortho``: ``ortho_weight`` x ``||U U^T - I||_F^2`` where the rows of ``U`` are the pole
  directions (tripole: the 3 rows of the weight; two-head: the sign and extremeness weights)
  L2-normalised. Normalised, the term is the sum of squared cosines between directions: it
  rewards distinct directions and cannot be lowered by scaling weights down (the raw ``W W^T``
  version of HatCat is lowered by shrinking rows, and it pulls every row's norm to 1, fighting the
  cross-entropy's need for confident logits).
- ``total`` = ``ce + margin + ortho``: the components are the weighted contributions, so each
  one's share of the total is directly their ratio (the "one component > 80%" diagnostic).

Artifacts of one lens (``save_lens`` / ``load_lens``): ``lens.safetensors`` (the state dict:
weights plus ``feature_mean`` / ``feature_std``) and ``card.json`` with at least ``lens_kind``,
``d_model``, ``poles``, ``weights_file`` and ``weights_sha256``; the train stage adds simplex,
seed, train params, best epoch, epochs run, validation scores and the data hashes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from lensforge.core import paths
from lensforge.core.artifacts import check_sha256, file_sha256, write_json, write_safetensors
from lensforge.core.errors import ArtifactError, ParamsError
from lensforge.core.params import LossParams
from lensforge.lenses.hatcat import POLES

LENS_KINDS = ("tripole", "two_head", "mlp")
WEIGHTS_NAME = "lens.safetensors"
CARD_NAME = "card.json"
SEED_DIR = re.compile(r"seed_(\d+)")
# What evaluation needs from a lens card besides kind, width and weights hash.
CARD_KEYS = (
    "layer",
    "simplex",
    "seed",
    "best_val_macro_f1",
    "train_loss_at_best_epoch",
    "activation_manifest_sha256",
)
STD_EPS = 1e-6  # features with a smaller train std are left unscaled (constant features)


class Lens(nn.Module):
    """Base of both lens kinds: standardisation buffers and the (n, d_model) -> (n, 3) contract."""

    kind = ""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.register_buffer("feature_mean", torch.zeros(d_model))
        self.register_buffer("feature_std", torch.ones(d_model))

    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the train-split feature mean and std (std below ``STD_EPS`` becomes 1)."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.where(std > STD_EPS, std, torch.ones_like(std)))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.feature_mean) / self.feature_std  # (n, d_model)

    def directions(self) -> torch.Tensor:
        """The pole directions the orthogonality term acts on, (n_directions, width)."""
        raise NotImplementedError

    def config(self) -> dict:
        """What ``build_lens`` needs besides kind and width (recorded in the card)."""
        return {}


class TripoleLens(Lens):
    """One linear map to three pole logits and a joint softmax."""

    kind = "tripole"

    def __init__(self, d_model: int):
        super().__init__(d_model)
        self.poles = nn.Linear(d_model, len(POLES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the poles, (n, 3)."""
        return F.log_softmax(self.poles(self.standardize(x)), dim=-1)  # (n, 3)

    def directions(self) -> torch.Tensor:
        return self.poles.weight  # (3, d_model)


class TwoHeadLens(Lens):
    """A sign head and an extremeness head, combined into three pole probabilities."""

    kind = "two_head"

    def __init__(self, d_model: int):
        super().__init__(d_model)
        self.sign = nn.Linear(d_model, 1)  # logit of positive vs negative, given extreme
        self.extremeness = nn.Linear(d_model, 1)  # logit of extreme vs neutral

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the poles, (n, 3), computed in log space for stability."""
        z = self.standardize(x)  # (n, d_model)
        sign = self.sign(z).squeeze(-1)  # (n,)
        extreme = self.extremeness(z).squeeze(-1)  # (n,)
        log_extreme = F.logsigmoid(extreme)  # (n,)
        negative = log_extreme + F.logsigmoid(-sign)  # (n,)
        neutral = F.logsigmoid(-extreme)  # (n,)
        positive = log_extreme + F.logsigmoid(sign)  # (n,)
        return torch.stack([negative, neutral, positive], dim=-1)  # (n, 3)

    def directions(self) -> torch.Tensor:
        return torch.cat([self.sign.weight, self.extremeness.weight])  # (2, d_model)


class MLPLens(Lens):
    """HatCat's MLP lens: one hidden ReLU layer with dropout, then three pole logits."""

    kind = "mlp"

    def __init__(self, d_model: int, *, hidden: int, dropout: float):
        super().__init__(d_model)
        self.hidden = hidden
        self.dropout = dropout
        self.net = nn.Sequential(
            nn.Linear(d_model, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, len(POLES)),
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities over the poles, (n, 3). ``keep`` (n, hidden), when given in
        training, is the dropout mask already scaled by ``1 / (1 - dropout)`` (``dropout_mask``):
        the trainer draws it for the global batch, so N processes drop what one would."""
        hidden = self.net[1](self.net[0](self.standardize(x)))  # (n, hidden)
        masked = keep is not None and self.training
        hidden = hidden * keep if masked else self.net[2](hidden)  # (n, hidden)
        return F.log_softmax(self.net[3](hidden), dim=-1)  # (n, 3)

    def dropout_mask(self, n_rows: int, *, generator: torch.Generator) -> torch.Tensor | None:
        """A scaled dropout mask (n_rows, hidden) drawn from ``generator``; None without dropout."""
        if self.dropout == 0.0:
            return None
        keep = torch.rand(n_rows, self.hidden, generator=generator) >= self.dropout
        return keep.float() / (1.0 - self.dropout)

    def directions(self) -> torch.Tensor:
        return self.net[-1].weight  # (3, hidden)

    def config(self) -> dict:
        return {"hidden": self.hidden, "dropout": self.dropout}


def build_lens(kind: str, *, d_model: int, hidden: int = 0, dropout: float = 0.0) -> Lens:
    """A freshly initialised lens of ``kind`` (uses the global torch RNG: seed it first);
    ``hidden`` and ``dropout`` are read by the ``mlp`` kind only."""
    if kind == "tripole":
        return TripoleLens(d_model)
    if kind == "two_head":
        return TwoHeadLens(d_model)
    if kind == "mlp":
        if hidden < 1:
            raise ValueError(f"an mlp lens needs hidden >= 1, got {hidden}")
        return MLPLens(d_model, hidden=hidden, dropout=dropout)
    raise ValueError(f"unknown lens kind {kind!r}; expected one of {LENS_KINDS}")


def check_loss_params(loss: LossParams) -> None:
    """Reject loss params the hinge cannot use: need -1 <= margin_floor < margin_target <= 1."""
    if not -1.0 <= loss.margin_floor < loss.margin_target <= 1.0:
        raise ParamsError(
            "need -1 <= train.loss.margin_floor < train.loss.margin_target <= 1 (probability "
            f"units), got floor {loss.margin_floor} and target {loss.margin_target}",
            row="train.loss",
            rule="margin range",
        )
    if loss.margin_weight < 0 or loss.ortho_weight < 0:
        raise ParamsError(
            f"loss weights must be >= 0, got margin_weight {loss.margin_weight} and "
            f"ortho_weight {loss.ortho_weight}",
            row="train.loss",
            rule="non-negative weights",
        )


def margins(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row ``p(true) - max p(other)``, (n,); negative where the row is misclassified."""
    probs = log_probs.exp()  # (n, 3)
    p_true = probs.gather(1, labels[:, None]).squeeze(1)  # (n,)
    others = probs.masked_fill(F.one_hot(labels, probs.shape[1]).bool(), float("-inf"))  # (n, 3)
    return p_true - others.max(dim=1).values  # (n,)


def margin_hinge(margin: torch.Tensor, *, target: float, floor: float) -> torch.Tensor:
    """``relu(target - max(margin, floor))`` per row: bounded by ``target - floor``."""
    return F.relu(target - margin.clamp(min=floor))  # (n,)


def ortho_penalty(directions: torch.Tensor) -> torch.Tensor:
    """``||U U^T - I||_F^2`` with ``U`` = the rows of ``directions`` L2-normalised (scale-free)."""
    unit = F.normalize(directions, dim=1)  # (k, d_model)
    gram = unit @ unit.T  # (k, k)
    return (gram - torch.eye(len(gram), device=gram.device)).pow(2).sum()


def lens_loss(
    log_probs: torch.Tensor,
    labels: torch.Tensor,
    directions: torch.Tensor,
    *,
    weights: torch.Tensor,
    loss: LossParams,
    n_rows: int | None = None,
    targets: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The loss components of a batch: ``ce``, ``margin``, ``ortho`` (weighted) and ``total``.

    ``log_probs`` (n, 3), ``labels`` (n,) in 0..2, ``directions`` (k, width), ``weights`` (n,)
    per-row loss weights. Row terms are ``sum(weight * term) / n_rows``: ``n_rows`` is the row
    count of the whole (global) batch when these rows are one process's share of it, so the
    shares' terms add up to the global batch mean (default: these rows are the whole batch).
    With weights averaging 1 over the train rows this keeps the unweighted scale. ``targets``
    (n, 3), rows summing to 1, replaces the one-hot ``labels`` in the cross-entropy; a row whose
    target is not one-hot takes no margin hinge.
    """
    if targets is None:
        nll = F.nll_loss(log_probs, labels, reduction="none")  # (n,)
        hard = torch.ones_like(nll)
    else:
        nll = -(targets * log_probs).sum(dim=1)  # (n,)
        hard = (targets.max(dim=1).values == 1.0).to(nll.dtype)  # (n,)
    hinge = hard * margin_hinge(
        margins(log_probs, labels), target=loss.margin_target, floor=loss.margin_floor
    )  # (n,)
    n_rows = len(labels) if n_rows is None else n_rows
    terms = {
        "ce": (weights * nll).sum() / n_rows,
        "margin": loss.margin_weight * (weights * hinge).sum() / n_rows,
        "ortho": loss.ortho_weight * ortho_penalty(directions),
    }
    terms["total"] = terms["ce"] + terms["margin"] + terms["ortho"]
    return terms


@torch.no_grad()
def pole_probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pole probabilities (n, 3) of raw (unstandardised) activations ``x`` (n, d_model)."""
    return model(x.float()).exp()  # (n, 3)


def save_lens(model: Lens, lens_dir: Path, *, card: dict) -> dict:
    """Write ``lens.safetensors`` and ``card.json`` (``card`` plus kind, width and weights hash).

    Returns the card as written. Both files are written atomically.
    """
    lens_dir = Path(lens_dir)
    weights_path = lens_dir / WEIGHTS_NAME
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    # No safetensors metadata: with two or more keys its header order varies from call to call,
    # so identical weights would hash differently (kind and width live in the card).
    write_safetensors(weights_path, state)
    full_card = {
        **card,
        "lens_kind": model.kind,
        "d_model": model.d_model,
        "lens_config": model.config(),
        "poles": list(POLES),
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": file_sha256(weights_path),
    }
    write_json(lens_dir / CARD_NAME, full_card)
    return full_card


def read_card(card_path: Path) -> dict:
    """A lens card, checked to name kind, width and weights hash; ``ArtifactError`` otherwise."""
    return _read_card(Path(card_path))


def _read_card(card_path: Path) -> dict:
    if not card_path.is_file():
        raise ArtifactError(
            "lens card missing: train this lens first", path=card_path, rule="card exists"
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"lens card is not valid JSON: {exc.msg}", path=card_path, rule="card is JSON"
        ) from None
    missing = [key for key in ("lens_kind", "d_model", "weights_sha256") if key not in card]
    if missing:
        raise ArtifactError(
            f"lens card lacks {missing}", path=card_path, rule="card names kind, width and hash"
        )
    return card


def load_lens(lens_dir: Path) -> tuple[nn.Module, dict]:
    """Rebuild a saved lens from its card and weights, in eval mode; returns (lens, card).

    Raises ``ArtifactError`` if the card or the weights are missing, or the weights' sha256
    differs from the card's: evaluation never scores an untrained or substituted lens.
    """
    lens_dir = Path(lens_dir)
    card = _read_card(lens_dir / CARD_NAME)
    weights_path = lens_dir / WEIGHTS_NAME
    if not weights_path.is_file():
        raise ArtifactError(
            "lens weights missing: refusing to build an untrained lens",
            path=weights_path,
            rule="weights exist",
        )
    check_sha256(
        weights_path,
        card["weights_sha256"],
        what="lens weights",
        source="the card's",
        rule="weights hash matches card",
    )
    try:
        model = build_lens(
            card["lens_kind"], d_model=int(card["d_model"]), **card.get("lens_config", {})
        )
        model.load_state_dict(load_file(str(weights_path)), strict=True)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ArtifactError(
            f"lens weights do not fit the card: {exc}", path=weights_path, rule="weights fit card"
        ) from None
    return model.eval(), card


def find_lenses(lenses_root: Path, *, simplexes: list[str]) -> dict[str, dict[int, Path]]:
    """simplex -> seed -> lens folder under ``lenses_root``, for every simplex with test rows.

    Raises ``ArtifactError`` when a simplex with test rows has no lens folder, or a lens folder
    belongs to no simplex with test rows (it could not be scored).
    """
    found: dict[str, dict[int, Path]] = {}
    for simplex in simplexes:
        simplex_dir = lenses_root / paths.simplex_slug(simplex)
        folders = simplex_dir.iterdir() if simplex_dir.is_dir() else []
        seeds = {int(m[1]): f for f in folders if (m := SEED_DIR.fullmatch(f.name)) and f.is_dir()}
        if not seeds:
            raise ArtifactError(
                f"simplex {simplex!r} has test rows but no trained lens: run the train stage",
                path=simplex_dir,
                rule="every simplex with test rows has a lens",
            )
        found[simplex] = dict(sorted(seeds.items()))
    expected = {paths.simplex_slug(s) for s in simplexes}
    if lenses_root.is_dir():
        strays = sorted(
            d.name for d in lenses_root.iterdir() if d.is_dir() and d.name not in expected
        )
        if strays:
            raise ArtifactError(
                f"lenses for simplexes without test rows: {strays}",
                path=lenses_root,
                rule="every lens has test rows",
            )
    return found


def shared_layer(seeds: dict[int, Path]) -> int:
    """The layer every seed's lens of one simplex reads (from the cards); ``ArtifactError`` when
    a card lacks it or the seeds disagree."""
    layers = {}
    for seed, lens_dir in seeds.items():
        card = _read_card(Path(lens_dir) / CARD_NAME)
        if "layer" not in card:
            raise ArtifactError(
                "lens card names no layer: retrain", path=Path(lens_dir) / CARD_NAME
            )
        layers[seed] = int(card["layer"])
    if len(set(layers.values())) != 1:
        raise ArtifactError(
            f"the seeds' lenses read different layers {layers}: retrain them together",
            path=next(iter(seeds.values())).parent,
            rule="one layer per simplex",
        )
    return next(iter(layers.values()))


def load_checked_lens(
    lens_dir: Path, *, simplex: str, seed: int, d_model: int, manifest_sha256: str
) -> tuple[nn.Module, dict]:
    """``load_lens``, and the card must also name this folder's simplex and seed, fit the
    activations' width ``d_model`` and come from the activations whose manifest hashes to
    ``manifest_sha256``; raises ``ArtifactError`` otherwise."""
    model, card = load_lens(lens_dir)
    missing = [key for key in CARD_KEYS if key not in card]
    if missing:
        raise ArtifactError(f"lens card lacks {missing}", path=lens_dir / CARD_NAME)
    if (card["simplex"], card["seed"]) != (simplex, seed):
        raise ArtifactError(
            f"card names simplex {card['simplex']!r} seed {card['seed']}, folder says "
            f"{simplex!r} seed {seed}",
            path=lens_dir / CARD_NAME,
            rule="card matches its folder",
        )
    if int(card["d_model"]) != d_model:
        raise ArtifactError(
            f"lens width {card['d_model']} differs from the activations' {d_model}",
            path=lens_dir / CARD_NAME,
            rule="lens fits the activations",
        )
    if card["activation_manifest_sha256"] != manifest_sha256:
        raise ArtifactError(
            "lens was trained on other activations (manifest sha256 "
            f"{card['activation_manifest_sha256']} != {manifest_sha256}): rerun train",
            path=lens_dir / CARD_NAME,
            rule="lens trained on these activations",
        )
    return model, card
