"""Amortised planar flow posterior (Rezende & Mohamed 2015, section 4.1 and eq. 10-13).

``q_K(z_K | x)``: draw ``z_0 ~ N(mu(x), diag(s(x)^2))`` and push it through ``K`` planar maps
``z_k = z_{k-1} + u_hat_k h(w_k . z_{k-1} + b_k)`` whose parameters ``u_k, w_k, b_k`` the
encoder outputs for each ``x``, so
``log q_K(z_K | x) = log q_0(z_0 | x) - sum_k log|1 + u_hat_k . psi_k(z_{k-1})|`` (eq. 13).

``genzoo.models.flows.PlanarTransform`` holds one set of parameters shared by every input; here
they differ per example (a batch dimension), so the step is written again with the same maths:
the constraint ``u_hat = u + (m(w.u) - w.u) w / |w|^2``, ``m(a) = -1 + softplus(a)``, of the
paper's appendix A keeps each map invertible.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def planar_parameter_count(latent_dim: int, n_layers: int) -> int:
    """How many numbers the encoder outputs for ``n_layers`` maps: ``u``, ``w`` and ``b``."""
    return n_layers * (2 * latent_dim + 1)


def planar_flow(z: Tensor, params: Tensor, n_layers: int) -> tuple[Tensor, Tensor]:
    """Push ``z`` ``(samples, batch, d)`` through amortised planar maps.

    ``params`` ``(batch, n_layers * (2d + 1))`` holds each map's ``u``, ``w``, ``b``. Returns
    ``z_K`` ``(samples, batch, d)`` and ``sum_k log|det dz_k/dz_{k-1}|`` ``(samples, batch)``.
    """
    d = z.shape[-1]
    params = params.reshape(params.shape[0], n_layers, 2 * d + 1)
    log_det = z.new_zeros(z.shape[:-1])
    for k in range(n_layers):
        u, w, b = params[:, k, :d], params[:, k, d : 2 * d], params[:, k, 2 * d]
        wu = (w * u).sum(-1, keepdim=True)  # (batch, 1)
        u_hat = u + (-1 + F.softplus(wu) - wu) * w / w.square().sum(-1, keepdim=True).clamp_min(
            1e-12
        )
        h = (z * w).sum(-1) + b  # (samples, batch)
        t = h.tanh()
        z = z + t.unsqueeze(-1) * u_hat  # eq. (10)
        psi_u = (1 - t.square()) * (w * u_hat).sum(-1)  # u_hat . psi(z), eq. (11)
        log_det = log_det + (1 + psi_u).abs().log()  # eq. (12)
    return z, log_det
