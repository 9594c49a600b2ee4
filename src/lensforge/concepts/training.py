"""Concept lenses trained together: every lens of a concept pack in one tensor program.

Data. ``X`` (n_rows, d_model) float32 holds one cached activation per prompt and is shared by
every lens: the label of a prompt for a lens is membership (1 for the lens's own prompts, 0 for
its negatives), so each lens is a set of rows of ``X``. ``LensRows`` holds them for all lenses at
once: a padded index (n_lenses, width), 0/1 labels and each lens's row count (its rows first,
padding after). Lenses differ in their rows and in how many they have.

Standardisation. Optional, with ONE mean and std for every lens (``standardization``: the
statistics of the train split's rows, computed by the caller and passed as ``feature_stats``).
A lens's own rows are too few for statistics of their own (10 rows against 640 features at the
first step of the graduation schedule), and shared statistics standardise ``X`` once instead of
every gathered batch. The statistics travel with the weights (``LensStack``).

Lenses. ``linear``: one logit ``w . z + b``. ``mlp``: HatCat's lens, Linear(d_model, 128) -> ReLU
-> Dropout(0.1) -> Linear(128, 1). Weights are stacked along a leading lens axis (``w1`` is
(n_lenses, d_model, hidden)) and one step runs every lens through ``torch.bmm`` / einsum: no
Python loop over lenses inside a step. Initialisation is ``nn.Linear``'s: uniform in
+-1/sqrt(fan_in) for weights and biases.

Training. BCE with logits, Adam, minibatches of each lens's own rows. A lens takes as many steps
per epoch as its rows need (ceil(n_rows / batch_size)); a lens with fewer rows sits the later
steps of an epoch out. Adam is elementwise, so stacked parameters give per-lens Adam, except for
what ``torch.optim.Adam`` gets wrong for a lens that sits a step out: it shares one step count
(bias correction) across the stack, and a zero gradient still moves the lens (its moments decay
and ``m / sqrt(v)`` is not zero). ``adam_step`` keeps one step count per lens and updates only
the lenses of an ``active`` mask; a lens outside it keeps its parameters, moments and step count
bit for bit. Early stopping is per lens, on validation F1, with the rule of
``core.early_stopping.EarlyStopping`` (a strictly higher score is a new best; stop after
``patience`` epochs without one). A stopped lens sits out every later step, its best weights
kept, while the others go on.

Memory. Stacked tensors are large (an MLP stack of 300 lenses is ~100 MB per tensor) and a fresh
tensor that size costs more in page faults than the arithmetic on it, so gradients and Adam work
in reused buffers and per-lens masks are coefficients, not gathers. A program holds up to about
11 copies of its parameters (weights, best, two moments, gradient, two work buffers, and while
stopped lenses are dropped, new weights, moments and gradient): ``max_lenses`` bounds it (an MLP
lens at d_model 640 is 330 kB per copy, so 1,000 lenses peak near 3.6 GB; linear lenses are
1/128 of that).

Determinism. A lens's initial weights and its batch order in each epoch come from its own seed
(``torch.Generator`` for the weights, a counter-based integer hash of seed, epoch and row
position for the order), never from the lenses trained beside it. With dropout 0, a lens
trained with any companions therefore equals the lens trained alone, which ``fit_one_lens`` (a
plain ``nn.Module`` + ``torch.optim.Adam`` loop, the reference of the tests and the benchmark)
reproduces. Dropout masks come from one generator seeded from the lenses' seeds: with dropout > 0,
a lens's result also depends on its companions (and on ``max_lenses``), still the same for the
same call.

Predictions: a row is positive when ``sigmoid(logit) >= THRESHOLD``. F1 is the positive class's,
0 when there is no true positive (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lensforge.core import metrics
from lensforge.core.early_stopping import EarlyStopping
from lensforge.core.errors import DataError, ParamsError

log = logging.getLogger(__name__)

LENS_KINDS = ("linear", "mlp")
MLP_HIDDEN = 128  # HatCat's MLP lens
MLP_DROPOUT = 0.1  # HatCat's MLP lens
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
ADAM_EPS = 1e-8
THRESHOLD = 0.5  # probability at and above which a row is predicted positive
STD_EPS = 1e-6  # features with a smaller train std are left unscaled (constant features)
# Elements of float32 a chunked no-grad forward may hold at once (lenses x rows x width), ~256 MB.
CHUNK_ELEMENTS = 1 << 26
CACHE_ELEMENTS = 1 << 26  # the most each program's gathered train / validation features may hold
MASK32 = 0xFFFFFFFF
PAD_KEY = 1 << 40  # sorts padding after every hashed (32-bit) key


# ----------------------------------------------------------------------------- containers


@dataclasses.dataclass(frozen=True)
class LensRows:
    """The rows of ``X`` each lens trains or is scored on.

    ``index`` (n_lenses, width) long rows of ``X``, ``label`` (n_lenses, width) float32 0/1,
    ``n_rows`` (n_lenses,) long: lens ``l``'s rows are ``index[l, :n_rows[l]]``; the rest is
    padding (index 0, label 0) that no loss or score reads.
    """

    index: torch.Tensor
    label: torch.Tensor
    n_rows: torch.Tensor

    @classmethod
    def from_lists(
        cls, indices: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]
    ) -> LensRows:
        """Pad one 1-D index tensor and one 1-D 0/1 label tensor per lens into a ``LensRows``."""
        if len(indices) != len(labels):
            raise ValueError(f"{len(indices)} index tensors for {len(labels)} label tensors")
        n_rows = torch.tensor([len(i) for i in indices], dtype=torch.long)
        width = max(1, int(n_rows.max())) if len(indices) else 1
        index = torch.zeros(len(indices), width, dtype=torch.long)
        label = torch.zeros(len(indices), width, dtype=torch.float32)
        for lens, (rows, ys) in enumerate(zip(indices, labels, strict=True)):
            if len(rows) != len(ys):
                raise ValueError(f"lens {lens}: {len(rows)} rows but {len(ys)} labels")
            index[lens, : len(rows)] = torch.as_tensor(rows, dtype=torch.long)
            label[lens, : len(rows)] = torch.as_tensor(ys, dtype=torch.float32)
        return cls(index=index, label=label, n_rows=n_rows)

    def __len__(self) -> int:
        return len(self.n_rows)

    @property
    def mask(self) -> torch.Tensor:
        """(n_lenses, width) bool, True on each lens's real rows."""
        return torch.arange(self.index.shape[1]) < self.n_rows[:, None]

    def rows_of(self, lens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Lens ``lens``'s row ids and labels, without padding."""
        n = int(self.n_rows[lens])
        return self.index[lens, :n], self.label[lens, :n]

    def subset(self, lenses: torch.Tensor) -> LensRows:
        """The rows of the lenses ``lenses`` (long ids), padded to their own widest lens."""
        n_rows = self.n_rows[lenses]
        width = max(1, int(n_rows.max())) if len(lenses) else 1
        return LensRows(
            index=self.index[lenses, :width], label=self.label[lenses, :width], n_rows=n_rows
        )


@dataclasses.dataclass
class LensStack:
    """Stacked weights of ``n_lenses`` lenses of one kind and the standardisation they share.

    ``params``: linear ``weight`` (n, d_model), ``bias`` (n,); mlp ``w1`` (n, d_model, hidden),
    ``b1`` (n, hidden), ``w2`` (n, hidden), ``b2`` (n,). ``feature_mean`` / ``feature_std``
    (d_model,): the statistics every lens standardises with (0 and 1 without standardisation).
    ``state_dict`` is what a safetensors file stores.
    """

    kind: str
    params: dict[str, torch.Tensor]
    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __len__(self) -> int:
        return len(next(iter(self.params.values())))

    @property
    def d_model(self) -> int:
        return len(self.feature_mean)

    @classmethod
    def zeros(
        cls,
        kind: str,
        *,
        n_lenses: int,
        d_model: int,
        hidden: int,
        feature_stats: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> LensStack:
        """All-zero weights (probability 0.5 everywhere): a stack to fill with ``assign``."""
        shapes = _param_shapes(kind, d_model=d_model, hidden=hidden)
        mean, std = _stats(feature_stats, d_model=d_model)
        return cls(
            kind=kind,
            params={name: torch.zeros(n_lenses, *shape) for name, shape in shapes.items()},
            feature_mean=mean,
            feature_std=std,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        tensors = {
            **self.params,
            "feature_mean": self.feature_mean,
            "feature_std": self.feature_std,
        }
        return {name: t.detach().contiguous() for name, t in tensors.items()}

    def subset(self, lenses: torch.Tensor) -> LensStack:
        return LensStack(
            kind=self.kind,
            params={name: p[lenses].clone() for name, p in self.params.items()},
            feature_mean=self.feature_mean.clone(),
            feature_std=self.feature_std.clone(),
        )

    def assign(self, lenses: torch.Tensor, other: LensStack) -> None:
        """Copy ``other``'s lenses into positions ``lenses`` (long ids) of this stack; both must
        share kind, shapes and standardisation."""
        same_stats = torch.equal(other.feature_mean, self.feature_mean) and torch.equal(
            other.feature_std, self.feature_std
        )
        if other.kind != self.kind or len(other) != len(lenses) or not same_stats:
            raise ValueError(
                f"cannot assign {len(other)} {other.kind} lenses to {len(lenses)} {self.kind} "
                f"positions (standardisation equal: {same_stats})"
            )
        for name, p in self.params.items():
            p[lenses] = other.params[name]


@dataclasses.dataclass
class TrainResult:
    """Best weights of each lens and how it got there, all (n_lenses,) tensors in lens order.

    ``best_epoch`` / ``epochs_run`` are 1-based counts; ``val_f1`` is the best epoch's validation
    F1, ``train_f1`` the best weights' F1 on the lens's train rows (dropout off).
    """

    weights: LensStack
    best_epoch: torch.Tensor
    epochs_run: torch.Tensor
    val_f1: torch.Tensor
    train_f1: torch.Tensor
    threshold: float = THRESHOLD

    def records(self) -> list[dict]:
        """One plain dict per lens: best_epoch, epochs_run, val_f1, train_f1, threshold."""
        return [
            {
                "best_epoch": int(best),
                "epochs_run": int(run),
                "val_f1": float(val),
                "train_f1": float(train),
                "threshold": self.threshold,
            }
            for best, run, val, train in zip(
                self.best_epoch, self.epochs_run, self.val_f1, self.train_f1, strict=True
            )
        ]


@dataclasses.dataclass
class AdamState:
    """Per-lens Adam state: ``step`` (n_lenses,) long and the moments, shaped like the params,
    plus two reused work buffers per parameter (``buffers``)."""

    step: torch.Tensor
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]
    scratch: dict[str, tuple[torch.Tensor, torch.Tensor]] = dataclasses.field(default_factory=dict)

    @classmethod
    def zeros_like(cls, params: dict[str, torch.Tensor]) -> AdamState:
        n_lenses = len(next(iter(params.values())))
        return cls(
            step=torch.zeros(n_lenses, dtype=torch.long),
            exp_avg={name: torch.zeros_like(p) for name, p in params.items()},
            exp_avg_sq={name: torch.zeros_like(p) for name, p in params.items()},
        )

    def buffers(self, name: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two work tensors shaped like ``like``, kept for the next call of the same shape."""
        held = self.scratch.get(name)
        if held is None or held[0].shape != like.shape:
            held = (torch.empty_like(like), torch.empty_like(like))
            self.scratch[name] = held
        return held

    def subset(self, lenses: torch.Tensor) -> AdamState:
        return AdamState(
            step=self.step[lenses],
            exp_avg={name: m[lenses] for name, m in self.exp_avg.items()},
            exp_avg_sq={name: v[lenses] for name, v in self.exp_avg_sq.items()},
        )


# ----------------------------------------------------------------------------- seeds and order


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix of int64 values (products stay below 2^63: no overflow)."""
    x = x & MASK32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & MASK32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & MASK32
    return (x >> 16) ^ x


def _as_int64(value: int | torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.long() & MASK32
    return torch.tensor(int(value) % (MASK32 + 1), dtype=torch.long)


def mix_seeds(a: int | torch.Tensor, b: int | torch.Tensor) -> torch.Tensor:
    """A 32-bit seed from two seeds (ints or int64 tensors, broadcast), the same everywhere."""
    a, b = _hash32(_as_int64(a)), _hash32(_as_int64(b))
    return _hash32(a ^ (b + 0x9E3779B9 + ((a << 6) & MASK32) + (a >> 2)))


def lens_seeds(seed: int, n_lenses: int) -> torch.Tensor:
    """(n_lenses,) per-lens seeds from one run seed and each lens's position."""
    return mix_seeds(seed, torch.arange(n_lenses))


def epoch_order(
    seeds: torch.Tensor, epoch: int, *, n_rows: torch.Tensor, width: int
) -> torch.Tensor:
    """(n_lenses, width) positions: a permutation of each lens's ``n_rows`` row positions, padding
    positions after them. A lens's order depends only on its seed, the epoch and its row count."""
    positions = torch.arange(width)
    keys = mix_seeds(mix_seeds(seeds, epoch)[:, None], positions[None, :])  # (n_lenses, width)
    keys = keys.masked_fill(positions[None, :] >= n_rows[:, None], PAD_KEY)
    return keys.argsort(dim=1, stable=True)


# ----------------------------------------------------------------------------- lens maths


def _param_shapes(kind: str, *, d_model: int, hidden: int) -> dict[str, tuple[int, ...]]:
    if kind == "linear":
        return {"weight": (d_model,), "bias": ()}
    if kind == "mlp":
        return {"w1": (d_model, hidden), "b1": (hidden,), "w2": (hidden,), "b2": ()}
    raise ParamsError(f"unknown lens kind {kind!r}; expected one of {LENS_KINDS}", rule="kind")


def init_params(
    kind: str, *, seeds: torch.Tensor, d_model: int, hidden: int
) -> dict[str, torch.Tensor]:
    """Stacked initial weights, ``nn.Linear``'s uniform(+-1/sqrt(fan_in)), each lens drawn from a
    generator seeded with its own seed (a loop over lenses, once per training, not per step)."""
    shapes = _param_shapes(kind, d_model=d_model, hidden=hidden)
    # fan_in of the layer each tensor belongs to: the input for the first layer, hidden for w2/b2
    fan_in = {"weight": d_model, "bias": d_model, "w1": d_model, "b1": d_model}
    fan_in.update({"w2": hidden, "b2": hidden})
    sizes = [math.prod(shape) for shape in shapes.values()]
    bounds = torch.cat(
        [
            torch.full((size,), fan_in[name] ** -0.5)
            for name, size in zip(shapes, sizes, strict=True)
        ]
    )  # (n_params_per_lens,)
    flat = torch.empty(len(seeds), sum(sizes))  # (n_lenses, n_params_per_lens)
    generator = torch.Generator()
    for lens, seed in enumerate(seeds.tolist()):
        generator.manual_seed(int(seed))
        flat[lens] = (torch.rand(sum(sizes), generator=generator) * 2 - 1) * bounds
    parts = flat.split(sizes, dim=1)
    return {
        name: part.reshape(len(seeds), *shape).clone()
        for (name, shape), part in zip(shapes.items(), parts, strict=True)
    }


def forward(kind: str, params: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """Logits (n_lenses, n) of standardised rows ``z`` (n_lenses, n, d_model), lens ``l`` on its
    own rows ``z[l]``, dropout off."""
    if kind == "linear":
        return _readout(z, params["weight"]) + params["bias"][:, None]
    hidden = torch.baddbmm(params["b1"][:, None, :], z, params["w1"]).relu_()  # (l, n, hidden)
    return _readout(hidden, params["w2"]) + params["b2"][:, None]


def _readout(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``features`` (l, n, k) times each lens's ``weight`` (l, k): (l, n). As a row vector times
    a matrix per lens: the (n, k) x (k, 1) form of the same product is ~5x slower in torch.bmm."""
    return torch.bmm(weight[:, None, :], features.transpose(1, 2)).squeeze(1)


def _batch_grads(
    kind: str,
    params: dict[str, torch.Tensor],
    z: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    *,
    dropout: float,
    generator: torch.Generator,
    out: dict[str, torch.Tensor],
) -> None:
    """Gradients of each lens's mean BCE over its valid rows, written into ``out``.

    ``z`` (n_lenses, b, d_model), ``labels`` / ``valid`` (n_lenses, b). Each lens's loss holds
    only its own parameters, so the gradient of their sum is every lens's own gradient. Written
    by hand (d loss / d logit = (sigmoid - y) / n_valid) rather than by autograd, so that the
    (n_lenses, d_model, hidden) weight gradient lands in a reused buffer (module docstring).
    """
    count = valid.sum(1, keepdim=True).clamp(min=1)  # (l, 1)
    if kind == "linear":
        logits = _readout(z, params["weight"]) + params["bias"][:, None]  # (l, b)
        dlogit = (torch.sigmoid(logits) - labels) * valid / count  # (l, b)
        torch.bmm(dlogit[:, None, :], z, out=out["weight"][:, None, :])  # (l, 1, d_model)
        torch.sum(dlogit, 1, out=out["bias"])
        return
    pre = torch.baddbmm(params["b1"][:, None, :], z, params["w1"])  # (l, b, hidden)
    gate = (pre > 0).float()  # (l, b, hidden): relu's derivative, times the dropout scale below
    if dropout > 0:
        gate.mul_(torch.rand(pre.shape, generator=generator) >= dropout).div_(1 - dropout)
    hidden = pre.mul_(gate)  # (l, b, hidden): relu(pre) * dropout mask / (1 - p)
    logits = _readout(hidden, params["w2"]) + params["b2"][:, None]  # (l, b)
    dlogit = (torch.sigmoid(logits) - labels) * valid / count  # (l, b)
    torch.bmm(dlogit[:, None, :], hidden, out=out["w2"][:, None, :])  # (l, 1, hidden)
    torch.sum(dlogit, 1, out=out["b2"])
    dpre = gate.mul_(dlogit[:, :, None]).mul_(params["w2"][:, None, :])  # (l, b, hidden)
    torch.sum(dpre, 1, out=out["b1"])
    torch.bmm(z.transpose(1, 2), dpre, out=out["w1"])  # (l, d_model, hidden)


def _lens_chunks(n_lenses: int, *, per_lens: int) -> list[slice]:
    """Slices of lenses holding at most ``CHUNK_ELEMENTS`` elements of ``per_lens`` each."""
    size = max(1, CHUNK_ELEMENTS // max(1, per_lens))
    return [slice(start, start + size) for start in range(0, n_lenses, size)]


@torch.no_grad()
def _row_logits(
    kind: str, params: dict[str, torch.Tensor], z: torch.Tensor, rows: LensRows
) -> torch.Tensor:
    """Logits (n_lenses, width) of each lens on its own rows of ``z`` (standardised), dropout
    off, in chunks of lenses."""
    out = torch.empty(rows.index.shape)
    per_lens = rows.index.shape[1] * z.shape[1]
    for part in _lens_chunks(len(rows), per_lens=per_lens):
        out[part] = forward(
            kind, {name: p[part] for name, p in params.items()}, z[rows.index[part]]
        )
    return out


def f1_scores(
    logits: torch.Tensor, rows: LensRows, *, threshold: float = THRESHOLD
) -> torch.Tensor:
    """(n_lenses,) float64 positive-class F1 of each lens on its rows (padding ignored)."""
    mask = rows.mask
    predicted = (torch.sigmoid(logits) >= threshold) & mask
    actual = (rows.label > 0.5) & mask
    tp = (predicted & actual).sum(1).double()
    wrong = (predicted ^ actual).sum(1).double()  # false positives + false negatives
    denom = 2 * tp + wrong
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(denom))


@torch.no_grad()
def adam_step(
    params: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor],
    state: AdamState,
    *,
    active: torch.Tensor,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = ADAM_BETAS,
    eps: float = ADAM_EPS,
) -> None:
    """One Adam update of the lenses where ``active`` (n_lenses,) bool is True, in place.

    ``torch.optim.Adam``'s formula and order of operations (one lens matches it bit for bit),
    L2 ``weight_decay`` added to the gradient. The mask enters as per-lens coefficients (moment
    weights 0, decay 1, step size 0 for a lens that sits out), so every tensor is updated in one
    in-place pass and a lens outside ``active`` keeps its parameters, moments and step count bit
    for bit, whatever its gradient (a finite one).
    """
    beta1, beta2 = betas
    state.step += active.long()
    step = state.step.double().clamp(min=1)  # (n_lenses,) a lens that never ran: any value
    on = active.float()  # (n_lenses,)
    step_size = (lr / (1 - beta1**step)).float() * on  # (n_lenses,) 0: no move
    bias2_sqrt = (1 - beta2**step).sqrt().float()  # (n_lenses,)
    weight_m = on * (1 - beta1)  # (n_lenses,) m += weight_m * (g - m)
    decay_v = torch.where(active, beta2, 1.0)  # (n_lenses,) v = decay_v * v + weight_v * g * g
    weight_v = on * (1 - beta2)
    for name, p in params.items():
        shape = (-1,) + (1,) * (p.ndim - 1)
        g, m, v = grads[name], state.exp_avg[name], state.exp_avg_sq[name]
        denom, update = state.buffers(name, p)
        if weight_decay:
            g = torch.add(g, p, alpha=weight_decay, out=update)
        m.lerp_(g, weight_m.view(shape))
        v.mul_(decay_v.view(shape)).addcmul_(g, torch.mul(g, weight_v.view(shape), out=denom))
        # denom = sqrt(v) / sqrt(1 - beta2^t) + eps; p -= (lr / (1 - beta1^t)) * m / denom
        torch.sqrt(v, out=denom).div_(bias2_sqrt.view(shape)).add_(eps)
        torch.mul(m, step_size.view(shape), out=update).div_(denom)
        p.sub_(update)


# ----------------------------------------------------------------------------- the trainer


@dataclasses.dataclass
class _Running:
    """The lenses in the program: their ids, their slices of every tensor, and ``alive``
    (n_running,) bool, False once a lens has stopped. A stopped lens sits every step out
    (``adam_step``'s mask) until the program drops it: dropping copies every stacked tensor, so
    it happens once half the lenses have stopped, not at each stop (about 2 copies overall).
    """

    ids: torch.Tensor
    seeds: torch.Tensor
    params: dict[str, torch.Tensor]
    adam: AdamState
    train: LensRows
    val: LensRows
    alive: torch.Tensor
    train_z: torch.Tensor | None = None  # (n_running, width, d_model) see _feature_caches
    val_z: torch.Tensor | None = None
    grads: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.grads = {name: torch.empty_like(p) for name, p in self.params.items()}

    def subset(self, keep: torch.Tensor) -> _Running:
        train, val = self.train.subset(keep), self.val.subset(keep)
        return _Running(
            ids=self.ids[keep],
            seeds=self.seeds[keep],
            params={name: p[keep] for name, p in self.params.items()},
            adam=self.adam.subset(keep),
            train=train,
            val=val,
            alive=self.alive[keep],
            train_z=None if self.train_z is None else self.train_z[keep, : train.index.shape[1]],
            val_z=None if self.val_z is None else self.val_z[keep, : val.index.shape[1]],
        )


def _feature_caches(
    z: torch.Tensor, train: LensRows, val: LensRows, *, batch_size: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Each lens's rows gathered once for the whole program, when they fit ``CACHE_ELEMENTS``:
    the validation rows (scored every epoch), and the train rows when every lens's rows fit one
    batch (an epoch is then one step on all of a lens's rows, whose mean loss does not depend
    on their order). Gathering rows is most of a linear lens's cost."""
    train_z = val_z = None
    if val.index.numel() * z.shape[1] <= CACHE_ELEMENTS:
        val_z = z[val.index]  # (n_lenses, width, d_model)
    if int(train.n_rows.max()) <= batch_size and train.index.numel() * z.shape[1] <= CACHE_ELEMENTS:
        train_z = z[train.index]  # (n_lenses, width, d_model)
    return train_z, val_z


def _train_epoch(
    z: torch.Tensor,
    run: _Running,
    *,
    epoch: int,
    kind: str,
    batch_size: int,
    lr: float,
    weight_decay: float,
    dropout: float,
    generator: torch.Generator,
) -> None:
    """One epoch of every running lens: step ``s`` takes positions ``s*B..(s+1)*B`` of each
    lens's order; a lens whose rows ran out, or that stopped, sits the step out. With the train
    rows cached (every lens's rows fit one batch) the epoch is that one step."""
    if run.train_z is not None:  # one full batch per lens: no order, no gather
        valid = run.train.mask & run.alive[:, None]  # (n_running, width)
        _batch_grads(
            kind,
            run.params,
            run.train_z,
            run.train.label,
            valid,
            dropout=dropout,
            generator=generator,
            out=run.grads,
        )
        adam_step(
            run.params, run.grads, run.adam, active=run.alive, lr=lr, weight_decay=weight_decay
        )
        return
    n_rows = run.train.n_rows
    order = epoch_order(run.seeds, epoch, n_rows=n_rows, width=run.train.index.shape[1])
    for start in range(0, int(n_rows[run.alive].max()), batch_size):
        positions = order[:, start : start + batch_size]  # (n_running, b)
        valid = (positions < n_rows[:, None]) & run.alive[:, None]  # (n_running, b)
        rows = run.train.index.gather(1, positions)  # (n_running, b)
        labels = run.train.label.gather(1, positions)  # (n_running, b)
        _batch_grads(
            kind,
            run.params,
            z[rows],  # (n_running, b, d_model)
            labels,
            valid,
            dropout=dropout,
            generator=generator,
            out=run.grads,
        )
        active = valid.any(1)  # (n_running,)
        adam_step(run.params, run.grads, run.adam, active=active, lr=lr, weight_decay=weight_decay)


def _keep_best(best: dict[str, torch.Tensor], run: _Running, improved: torch.Tensor) -> None:
    """Copy the ``improved`` running lenses' params into ``best`` (program order), staged in the
    Adam work buffers rather than a fresh (n_improved, ...) tensor."""
    rows = improved.nonzero().squeeze(1)
    if len(rows) == 0:
        return
    for name, p in run.params.items():
        staged = run.adam.buffers(name, p)[0][: len(rows)]
        torch.index_select(p, 0, rows, out=staged)
        best[name].index_copy_(0, run.ids[rows], staged)


def _train_program(
    z: torch.Tensor,
    train: LensRows,
    val: LensRows,
    *,
    kind: str,
    seeds: torch.Tensor,
    lr: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    hidden: int,
    dropout: float,
    weight_decay: float,
    progress: bool,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train one group of lenses together; returns best params, best validation F1, best epoch
    and epochs run, in the group's lens order."""
    n_lenses = len(train)
    params = init_params(kind, seeds=seeds, d_model=z.shape[1], hidden=hidden)
    best = {name: p.clone() for name, p in params.items()}
    best_f1 = torch.full((n_lenses,), -math.inf, dtype=torch.float64)
    best_epoch = torch.zeros(n_lenses, dtype=torch.long)
    epochs_run = torch.zeros(n_lenses, dtype=torch.long)
    generator = torch.Generator().manual_seed(int(_hash32(seeds.sum() & MASK32)))
    train_z, val_z = _feature_caches(z, train, val, batch_size=batch_size)
    run = _Running(
        ids=torch.arange(n_lenses),
        seeds=seeds,
        params=params,
        adam=AdamState.zeros_like(params),
        train=train,
        val=val,
        alive=torch.ones(n_lenses, dtype=torch.bool),
        train_z=train_z,
        val_z=val_z,
    )
    bar = tqdm(range(1, max_epochs + 1), desc="concept lenses", unit="epoch", disable=not progress)
    for epoch in bar:
        _train_epoch(
            z,
            run,
            epoch=epoch,
            kind=kind,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            dropout=dropout,
            generator=generator,
        )
        epochs_run[run.ids[run.alive]] = epoch
        if run.val_z is None:
            val_logits = _row_logits(kind, run.params, z, run.val)  # (n_running, width)
        else:
            val_logits = forward(kind, run.params, run.val_z)
        f1 = f1_scores(val_logits, run.val)  # (n_running,)
        improved = run.alive & (f1 > best_f1[run.ids])  # strictly higher, as EarlyStopping
        _keep_best(best, run, improved)
        best_f1[run.ids[improved]], best_epoch[run.ids[improved]] = f1[improved], epoch
        run.alive &= epoch - best_epoch[run.ids] < patience
        n_alive = int(run.alive.sum())
        bar.set_postfix(running=n_alive)
        if n_alive == 0:
            break
        if 2 * n_alive <= len(run.ids):
            run = run.subset(run.alive.nonzero().squeeze(1))
    return best, best_f1, best_epoch, epochs_run


# ----------------------------------------------------------------------------- inputs


def _check_rows(x: torch.Tensor, rows: LensRows, *, name: str) -> None:
    if rows.index.shape != rows.label.shape or rows.n_rows.shape != (rows.index.shape[0],):
        raise ValueError(
            f"{name} rows: index {tuple(rows.index.shape)}, label "
            f"{tuple(rows.label.shape)}, n_rows {tuple(rows.n_rows.shape)} disagree"
        )
    empty = (rows.n_rows < 1).nonzero().squeeze(1)
    if len(empty):
        lens = int(empty[0])
        raise DataError(
            f"lens {lens} has no {name} rows", row=lens, rule=f"every lens has {name} rows"
        )
    mask = rows.mask
    index = rows.index[mask]
    if int(index.min()) < 0 or int(index.max()) >= len(x):
        raise DataError(f"{name} rows index outside X's {len(x)} rows", rule="rows exist")
    labels = rows.label[mask]
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise DataError(f"{name} labels must be 0 or 1", rule="binary labels")


def _check_inputs(
    x: torch.Tensor, train: LensRows, val: LensRows, *, kind: str, numbers: dict[str, float]
) -> None:
    if x.ndim != 2 or len(train) != len(val) or len(train) == 0:
        raise ValueError(
            f"need x (n_rows, d_model) and as many (> 0) val as train lenses, got "
            f"{tuple(x.shape)}, {len(train)} and {len(val)}"
        )
    _check_numbers(kind, **numbers)
    _check_rows(x, train, name="train")
    _check_rows(x, val, name="validation")


def _check_numbers(kind: str, **numbers: float) -> None:
    _param_shapes(kind, d_model=1, hidden=1)
    rules = {
        "lr": lambda v: v > 0,
        "batch_size": lambda v: v >= 1,
        "max_epochs": lambda v: v >= 1,
        "patience": lambda v: v >= 1,
        "dropout": lambda v: 0 <= v < 1,
        "hidden": lambda v: v >= 1,
        "weight_decay": lambda v: v >= 0,
    }
    for name, value in numbers.items():
        if not rules[name](value):
            raise ParamsError(f"unusable {name} {value!r}", row=name, rule="valid training number")


def _stats(
    feature_stats: tuple[torch.Tensor, torch.Tensor] | None, *, d_model: int
) -> tuple[torch.Tensor, torch.Tensor]:
    if feature_stats is None:
        return torch.zeros(d_model), torch.ones(d_model)
    mean, std = (t.float() for t in feature_stats)
    if mean.shape != (d_model,) or std.shape != (d_model,) or not bool((std > 0).all()):
        raise ValueError(
            f"feature_stats must be two (d_model,) tensors, std > 0, d_model {d_model}"
        )
    return mean, std


def standardization(x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sample std (ddof 1) over the distinct rows ``rows`` of ``x`` (the train split),
    (d_model,) each; a std below ``STD_EPS`` (or undefined) becomes 1."""
    part = x[torch.unique(rows)].double()  # (n_distinct, d_model)
    mean = part.mean(0)
    std = part.std(0) if len(part) > 1 else torch.zeros_like(mean)
    return mean.float(), torch.where(std > STD_EPS, std, torch.ones_like(std)).float()


def _compact(
    train: LensRows, val: LensRows, *, n_rows: int
) -> tuple[LensRows, LensRows, torch.Tensor]:
    """The rows of ``x`` the lenses use (sorted ids) and ``train`` / ``val`` re-indexed into
    them: training gathers from (and standardises) only those rows."""
    used = torch.unique(torch.cat([train.index[train.mask], val.index[val.mask]]))
    lookup = torch.zeros(n_rows, dtype=torch.long)
    lookup[used] = torch.arange(len(used))
    train, val = (
        LensRows(index=lookup[r.index] * r.mask, label=r.label, n_rows=r.n_rows)
        for r in (train, val)
    )
    return train, val, used


def _standardized(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x.float() - mean) / std  # (n_rows, d_model)


# ----------------------------------------------------------------------------- the entry points


def train_lenses(
    x: torch.Tensor,
    train: LensRows,
    val: LensRows,
    *,
    kind: str,
    seeds: int | torch.Tensor,
    lr: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    feature_stats: tuple[torch.Tensor, torch.Tensor] | None,
    hidden: int = MLP_HIDDEN,
    dropout: float = MLP_DROPOUT,
    weight_decay: float = 0.0,
    max_lenses: int | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train one binary lens per entry of ``train`` on rows of ``x``, all at once.

    ``x`` (n_rows, d_model) features; ``train`` / ``val`` the rows and labels of each lens (same
    lens order; validation rows decide early stopping and the best epoch). ``seeds``: a run seed
    (int; per-lens seeds via ``lens_seeds``) or (n_lenses,) per-lens seeds. ``feature_stats``:
    (mean, std) to standardise every row with (``standardization`` of the train split), or None.
    ``max_lenses`` bounds memory: lenses train in programs of at most that many (the same result
    with dropout 0). Returns the best epoch's weights of every lens and per-lens records.
    Raises ``DataError`` for a lens without rows, an index outside ``x`` or labels not 0/1,
    ``ParamsError`` for an unknown kind or unusable numbers.
    """
    numbers = {
        "lr": lr,
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "patience": patience,
        "hidden": hidden,
        "dropout": dropout,
        "weight_decay": weight_decay,
    }
    _check_inputs(x, train, val, kind=kind, numbers=numbers)
    n_lenses = len(train)
    seeds = lens_seeds(seeds, n_lenses) if isinstance(seeds, int) else _as_int64(seeds)
    mean, std = _stats(feature_stats, d_model=x.shape[1])
    train, val, used = _compact(train, val, n_rows=len(x))
    z = _standardized(x[used], mean, std)  # (n_used, d_model): no other row of x is read
    size = max_lenses or n_lenses
    programs = [
        torch.arange(start, min(start + size, n_lenses)) for start in range(0, n_lenses, size)
    ]
    parts = [
        _train_program(
            z,
            train.subset(ids),
            val.subset(ids),
            kind=kind,
            seeds=seeds[ids],
            progress=progress,
            **numbers,
        )
        for ids in programs
    ]
    params = {name: torch.cat([part[0][name] for part in parts]) for name in parts[0][0]}
    result = TrainResult(
        weights=LensStack(kind=kind, params=params, feature_mean=mean, feature_std=std),
        val_f1=torch.cat([part[1] for part in parts]),
        best_epoch=torch.cat([part[2] for part in parts]),
        epochs_run=torch.cat([part[3] for part in parts]),
        train_f1=f1_scores(_row_logits(kind, params, z, train), train),
    )
    log.info(
        "trained %d %s lenses: mean validation F1 %.3f, mean epochs %.1f",
        n_lenses,
        kind,
        float(result.val_f1.mean()),
        float(result.epochs_run.float().mean()),
    )
    return result


@torch.no_grad()
def score(weights: LensStack, x: torch.Tensor) -> torch.Tensor:
    """Probabilities (n_rows, n_lenses): every lens of ``weights`` on every row of ``x``."""
    z = _standardized(x, weights.feature_mean, weights.feature_std)  # (n_rows, d_model)
    if weights.kind == "linear":
        return torch.sigmoid(z @ weights.params["weight"].T + weights.params["bias"])
    out = torch.empty(len(z), len(weights))
    hidden = weights.params["b1"].shape[1]
    for part in _lens_chunks(len(weights), per_lens=len(z) * hidden):
        w1, b1 = weights.params["w1"][part], weights.params["b1"][part]  # (c, d, h), (c, h)
        h = (torch.einsum("nd,ldh->lnh", z, w1) + b1[:, None, :]).relu_()  # (c, n_rows, h)
        logits = torch.einsum("lnh,lh->nl", h, weights.params["w2"][part])  # (n_rows, c)
        out[:, part] = torch.sigmoid(logits + weights.params["b2"][part])
    return out


def score_rows(weights: LensStack, x: torch.Tensor, rows: LensRows) -> torch.Tensor:
    """Probabilities (n_lenses, width): each lens on its own rows (padding columns meaningless)."""
    z = _standardized(x, weights.feature_mean, weights.feature_std)  # (n_rows, d_model)
    return torch.sigmoid(_row_logits(weights.kind, weights.params, z, rows))


# ----------------------------------------------------------------------------- one-lens reference


def _module(kind: str, *, d_model: int, hidden: int, dropout: float) -> nn.Module:
    if kind == "linear":
        return nn.Linear(d_model, 1)
    return nn.Sequential(
        nn.Linear(d_model, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
    )


def _load_stacked(module: nn.Module, kind: str, params: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        if kind == "linear":
            module.weight.copy_(params["weight"])
            module.bias.copy_(params["bias"])
            return
        module[0].weight.copy_(params["w1"][0].T)
        module[0].bias.copy_(params["b1"][0])
        module[3].weight.copy_(params["w2"])
        module[3].bias.copy_(params["b2"])


def _stacked(module: nn.Module, kind: str) -> dict[str, torch.Tensor]:
    if kind == "linear":
        return {"weight": module.weight.detach().clone(), "bias": module.bias.detach().clone()}
    return {
        "w1": module[0].weight.detach().T[None].clone(),
        "b1": module[0].bias.detach()[None].clone(),
        "w2": module[3].weight.detach().clone(),
        "b2": module[3].bias.detach().clone(),
    }


def fit_one_lens(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    *,
    kind: str,
    seed: int,
    lr: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    feature_stats: tuple[torch.Tensor, torch.Tensor] | None,
    hidden: int = MLP_HIDDEN,
    dropout: float = MLP_DROPOUT,
    weight_decay: float = 0.0,
) -> TrainResult:
    """One lens the plain way: an ``nn.Module``, ``torch.optim.Adam`` and ``EarlyStopping``.

    The reference ``train_lenses`` is tested against (the same initial weights and batch order
    for lens seed ``seed``, so the same result with dropout 0) and the one-at-a-time loop of the
    benchmark. ``train_x`` (n, d_model), ``train_y`` (n,) 0/1; returns a one-lens result.
    """
    _check_numbers(
        kind,
        lr=lr,
        batch_size=batch_size,
        max_epochs=max_epochs,
        patience=patience,
        dropout=dropout,
        hidden=hidden,
        weight_decay=weight_decay,
    )
    d_model = train_x.shape[1]
    seeds = _as_int64(seed).reshape(1)
    module = _module(kind, d_model=d_model, hidden=hidden, dropout=dropout)
    _load_stacked(module, kind, init_params(kind, seeds=seeds, d_model=d_model, hidden=hidden))
    mean, std = _stats(feature_stats, d_model=d_model)
    z_train, z_val = _standardized(train_x, mean, std), _standardized(val_x, mean, std)
    train_y = train_y.float()
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    stopper = EarlyStopping(patience)
    best = _stacked(module, kind)

    def f1_on(z: torch.Tensor, y: torch.Tensor) -> float:
        module.eval()
        with torch.no_grad():
            predicted = (torch.sigmoid(module(z).squeeze(-1)) >= THRESHOLD).long().numpy()
        return metrics.per_class_scores(y.long().numpy(), predicted, n_classes=2)["f1"][1]

    n = len(train_x)
    for epoch in range(1, max_epochs + 1):
        order = epoch_order(seeds, epoch, n_rows=torch.tensor([n]), width=n)[0]  # (n,)
        module.train()
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            logits = module(z_train[batch]).squeeze(-1)
            loss = F.binary_cross_entropy_with_logits(logits, train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if stopper.update(epoch, f1_on(z_val, val_y)):
            best = _stacked(module, kind)
        if stopper.should_stop:
            break
    _load_stacked(module, kind, best)
    return TrainResult(
        weights=LensStack(kind=kind, params=best, feature_mean=mean, feature_std=std),
        best_epoch=torch.tensor([stopper.best_epoch]),
        epochs_run=torch.tensor([epoch]),
        val_f1=torch.tensor([stopper.best_score], dtype=torch.float64),
        train_f1=torch.tensor([f1_on(z_train, train_y)], dtype=torch.float64),
    )
