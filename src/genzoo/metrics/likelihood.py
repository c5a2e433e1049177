"""Held-out likelihood in nats, bits/dim on the discrete scale, and the KL gap to the truth.

For discrete data (digits: 17 grey levels) seen by a continuous model through uniform
dequantisation, ``-log p_model((x + u) / L) + D log L`` averaged over ``u`` is an upper bound
on the discrete negative log-likelihood of ``x`` (Theis, van den Oord & Bethge 2016), so the
bits/dim it gives compare directly with those of discrete models.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genzoo.models.base import GenerativeModel

#: What a model's log-density really is, as the report names it.
DENSITY_LABELS = {
    "exact": "NLL",
    "bound": "-ELBO (upper bound on NLL)",
    "estimate": "estimated NLL",
    "unnormalized": "energy (unnormalised)",
    "none": "no density",
}


@torch.no_grad()
def per_example_log_prob(model: GenerativeModel, x: Tensor, batch_size: int = 4096) -> Tensor:
    """``model.log_prob`` over ``x`` in batches, on the model's device; returns CPU float64."""
    parts = [
        model.log_prob(x[i : i + batch_size].to(model.device)).double().cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(parts)


def negative_log_likelihood(
    model: GenerativeModel,
    x: Tensor,
    levels: int | None = None,
    n_dequantizations: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Mean test NLL in nats per example (and bits/dim when ``levels`` makes ``x`` discrete).

    ``x`` holds the data as loaded: for image datasets, integer levels ``0..levels-1``.
    A continuous model scores it through uniform dequantisation with ``n_dequantizations``
    noise draws; a discrete model scores the levels themselves.
    """
    dim = math.prod(x.shape[1:])
    if levels is not None and model.data_kind == "continuous":
        generator = torch.Generator().manual_seed(seed)
        draws = []
        for _ in range(n_dequantizations):
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)
            draws.append(per_example_log_prob(model, (x + noise) / levels) - dim * math.log(levels))
        log_p = torch.stack(draws).mean(0)
    else:
        log_p = per_example_log_prob(model, x)
    nll = float(-log_p.mean())
    result = {
        "nll": nll,
        "nll_stderr": float(log_p.std() / math.sqrt(len(log_p))) if len(log_p) > 1 else 0.0,
    }
    if levels is not None:
        result["bits_per_dim"] = nll / (dim * math.log(2))
    return result


def kl_gap(model: GenerativeModel, x: Tensor, true_log_prob: Tensor) -> float:
    """Monte-Carlo ``KL(p || q) = E_p[log p - log q]`` in nats, from samples ``x ~ p``."""
    return float((true_log_prob.double().cpu() - per_example_log_prob(model, x)).mean())
