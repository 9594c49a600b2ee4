"""Activations vs outputs: does the residual stream keep the prompt's concept when the text fails?

Per sample, two vectors at the lens layer: the prompt's last token and the mean over the
generated tokens (``generation``). Two agreements:

- ``cosine``: their raw cosine. Residual streams share a large common direction, so raw cosines
  sit near 1 for any pair; hence also ``centered_cosine``: the cosine after subtracting each
  kind's mean over all samples (prompt vectors minus the prompt mean, generated minus the
  generated mean), which is about 0 for unrelated pairs;
- ``prompt_match``: how much closer (centred cosine) the generated vector is to its own prompt's
  vector than to the other samples' prompt vectors: the share of other samples whose prompt is
  farther (0.5 = no trace of its prompt, 1 = its own prompt is the nearest of all). A last-token
  vector and a mean over generated tokens are different kinds of vectors, so their cosine is
  small even when they agree; the rank is the comparable number;
- lens firing: the sample's own concept lens (its probability at or above ``threshold``) on the
  prompt vector and on the generated vector. For a positive with a degenerate output, firing on
  the generated tokens means the concept survived in the activations although not in the text.

A sample without generated tokens has NaN cosines and does not fire on its generated vector.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lensforge.quality.grading import GRADES


def cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Row-wise cosine of (n, d) tensors; NaN where a row of either is NaN or zero."""
    norms = a.norm(dim=1) * b.norm(dim=1)
    values = (a * b).sum(dim=1) / norms
    values[~torch.isfinite(values)] = float("nan")
    return values.numpy().astype(float)


def centered(vectors: torch.Tensor) -> torch.Tensor:
    """``vectors`` minus the mean of their finite rows (NaN rows stay NaN)."""
    finite = torch.isfinite(vectors).all(dim=1)
    if not finite.any():
        return vectors.clone()
    return vectors - vectors[finite].mean(dim=0)


def prompt_match(prompt_vectors: torch.Tensor, generated_vectors: torch.Tensor) -> np.ndarray:
    """Per sample, the share of other samples' prompt vectors that are farther from its
    generated vector than its own prompt vector (centred cosines; module doc); NaN for a sample
    without generated tokens or when there is no other sample."""
    n = len(prompt_vectors)
    out = np.full(n, np.nan)
    if n < 2:
        return out
    prompts = torch.nn.functional.normalize(centered(prompt_vectors), dim=1)
    generated = torch.nn.functional.normalize(centered(generated_vectors), dim=1)
    sims = generated @ prompts.T  # (n, n): row i = generated i against every prompt
    own = sims.diagonal()
    beaten = (
        (sims < own[:, None]).float().sum(dim=1)
        + 0.5 * (sims == own[:, None]).float().sum(dim=1)
        - 0.5
    )  # the diagonal ties with itself
    values = (beaten / (n - 1)).numpy().astype(float)
    finite = torch.isfinite(generated).all(dim=1).numpy()
    out[finite] = values[finite]
    return out


def agreement_columns(
    prompt_vectors: torch.Tensor,
    generated_vectors: torch.Tensor,
    *,
    prompt_probability: np.ndarray,
    generated_probability: np.ndarray,
    threshold: float,
) -> pd.DataFrame:
    """Per sample: ``cosine``, ``centered_cosine``, ``lens_prompt``, ``lens_generated``
    (probabilities of the sample's own concept lens) and whether each fires."""
    has_tokens = torch.isfinite(generated_vectors).all(dim=1).numpy()
    generated_probability = np.where(has_tokens, generated_probability, np.nan)
    return pd.DataFrame(
        {
            "cosine": cosines(prompt_vectors, generated_vectors),
            "centered_cosine": cosines(centered(prompt_vectors), centered(generated_vectors)),
            "prompt_match": prompt_match(prompt_vectors, generated_vectors),
            "lens_prompt": prompt_probability,
            "lens_generated": generated_probability,
            "fires_prompt": prompt_probability >= threshold,
            "fires_generated": np.nan_to_num(generated_probability, nan=0.0) >= threshold,
        }
    )


def agreement_by_grade(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per (side, grade, plus ``degenerate`` = not good): samples, samples with
    generated tokens, mean cosines, and lens firing rates on prompt and generated tokens."""
    rows = []
    for side in ("positive", "negative"):
        part = samples[samples["side"] == side]
        groups = [(g, part[part["grade"] == g]) for g in GRADES]
        groups.append(("degenerate", part[part["grade"] != "good"]))
        for grade, group in groups:
            rows.append(
                {
                    "side": side,
                    "grade": grade,
                    "n": len(group),
                    "n_with_tokens": int(group["cosine"].notna().sum()),
                    "cosine": _mean(group["cosine"]),
                    "centered_cosine": _mean(group["centered_cosine"]),
                    "prompt_match": _mean(group["prompt_match"]),
                    "fires_prompt": _mean(group["fires_prompt"].astype(float)),
                    "fires_generated": _mean(group["fires_generated"].astype(float)),
                }
            )
    return pd.DataFrame(rows)


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None
