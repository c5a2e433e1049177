"""Posterior-collapse diagnostics: KL per latent dimension and active units.

A latent dimension the decoder ignores has ``q(z_j | x) = p(z_j)`` for every ``x``: its KL is
zero and its posterior mean does not vary with ``x``. Burda et al. (2016, section 5.2) count a
unit as active when ``A_j = Cov_x(E_q[z_j | x]) > 0.01``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genzoo.models.vae.likelihoods import gaussian_kl


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Number of latent dimensions whose posterior mean ``mu`` ``(n, d)`` varies over the
    examples by more than ``threshold`` (variance across ``n``)."""
    if mu.shape[0] < 2:
        return 0
    return int((mu.var(dim=0) > threshold).sum())


@torch.no_grad()
def collapse_report(
    model, x: Tensor, threshold: float | None = None, c: object = None
) -> dict[str, object]:
    """KL per latent dimension (nats, averaged over ``x``), ``A_j`` and the active units of a
    VAE's Gaussian posterior ``q_0(z | x)`` on ``x`` ``(n, *data_shape)`` (``q_0(z | x, c)``
    given the conditions ``c`` of a conditional VAE)."""
    given = () if c is None else (c,)
    mu, logvar, _ = model.posterior_parameters(model.check_input(x), *given)
    threshold = model.active_threshold if threshold is None else threshold
    return {
        "kl_per_dim": gaussian_kl(mu, logvar).mean(0).cpu().tolist(),
        "activity": mu.var(dim=0).cpu().tolist(),
        "active_units": active_units(mu, threshold),
        "latent_dim": int(mu.shape[1]),
    }
