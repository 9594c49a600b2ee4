"""Plain-words diagnostics of a trained classifier, shared by every branch: an imbalanced
minority class, one loss component dominating the total, probability collapse. Each returns a
message (or messages) a user can act on, or nothing when the pattern is absent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lensforge.core.metrics import check_probabilities


def imbalance_diagnostic(
    f1_by_class: Mapping[str, float], *, minority: str, minority_f1: float, majority_f1: float
) -> str | None:
    """The imbalance warning sign: the minority class's F1 below ``minority_f1`` while every other
    class is above ``majority_f1``. Returns the message, or ``None`` when the pattern is absent."""
    others = {name: f1 for name, f1 in f1_by_class.items() if name != minority}
    if f1_by_class[minority] < minority_f1 and all(f1 > majority_f1 for f1 in others.values()):
        rest = ", ".join(f"{name} {f1:.3f}" for name, f1 in others.items())
        return (
            f"imbalance suspected: {minority} F1 {f1_by_class[minority]:.3f} < {minority_f1} "
            f"while {rest} > {majority_f1}; check the class balance of the training rows"
        )
    return None


def dominant_loss_diagnostic(components: Mapping[str, float], *, fraction: float) -> str | None:
    """One loss component above ``fraction`` of the total (the sum of the weighted components).

    ``components`` are the weighted contributions to the total loss (e.g. the last epoch's
    ``ce``, ``margin_weight * margin``, ``ortho_weight * ortho``). With fewer than two non-zero
    components nothing can dominate another, so no message.
    """
    active = {name: float(value) for name, value in components.items() if value != 0}
    total = sum(abs(value) for value in active.values())
    if len(active) < 2 or total == 0:
        return None
    name, value = max(active.items(), key=lambda item: abs(item[1]))
    share = abs(value) / total
    if share > fraction:
        return (
            f"loss component {name!r} is {share:.0%} of the total loss (> {fraction:.0%}); "
            "the other terms barely shape training: check their weights or scales"
        )
    return None


def collapse_diagnostics(y_true, probs, *, class_names: Sequence[str], separation: float) -> list:
    """Probability collapse per class: mean p(c) on rows of class c minus mean p(c) on other rows
    below ``separation`` means the lens barely tells c apart (the collapse seen when a multi-task model's loss scales mismatch). One message per class."""
    y, probs = check_probabilities(y_true, probs)
    if len(class_names) != probs.shape[1]:
        raise ValueError(f"{len(class_names)} class names for {probs.shape[1]} probability columns")
    messages = []
    for label, name in enumerate(class_names):
        inside, outside = y == label, y != label
        if not inside.any() or not outside.any():
            continue
        p_in = float(probs[inside, label].mean())
        p_out = float(probs[outside, label].mean())
        if p_in - p_out < separation:
            messages.append(
                f"probability collapse on {name}: mean p({name}) is {p_in:.3f} on {name} rows "
                f"and {p_out:.3f} on other rows (separation {p_in - p_out:.3f} < {separation})"
            )
    return messages
