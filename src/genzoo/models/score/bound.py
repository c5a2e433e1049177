"""The variational bound of DDPM (Ho et al. 2020, eq. 5), as a pure function of a noise predictor.

``L = L_T + sum_{t>1} L_{t-1} + L_0`` with

- ``L_T = KL(q(x_T | x_0) || N(0, I))``;
- ``L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))`` for the reverse step
  ``p(x_{t-1} | x_t) = N(mu_theta(x_t, t), beta_t I)`` (``sigma_t^2 = beta_t``, as the ancestral
  sampler uses), which is eq. 12's weighted noise error plus the variance mismatch
  ``d/2 (r - 1 - log r)`` with ``r = beta_tilde_t / beta_t`` (eq. 7);
- ``L_0 = -log N(x_0; mu_theta(x_1, 1), beta_1 I)``, a Gaussian decoder for continuous data
  (Ho et al. use a discretised decoder for 8-bit images instead).

``-L`` is a lower bound on ``log p_theta(x_0)`` of the discrete chain with that decoder, in
nats. Each term is estimated with one draw of ``x_t ~ q(x_t | x_0)`` per example and step, so
the returned value is an unbiased estimate of the bound; it costs ``N`` network evaluations
per example.

Reference:
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020
    (arXiv:2006.11239), eqs. 5, 7, 10, 12.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

NoiseFn = Callable[[Tensor, Tensor], Tensor]


def ddpm_bound_terms(
    eps: NoiseFn,
    x: Tensor,
    alphas_bar: Tensor,
    generator: torch.Generator | None = None,
    max_batch: int = 16_384,
) -> dict[str, Tensor]:
    """The terms of eq. 5 per example: ``{"L_T": (b,), "L_t": (N - 1, b), "L_0": (b,)}``.

    ``eps(x_t, c)`` predicts the noise of ``x_t`` ``(m, ...)`` at ``c = t / N`` ``(m,)``;
    ``x`` ``(b, ...)`` is the clean data ``x_0``; ``alphas_bar`` ``(N,)`` is
    ``prod_{s<=t} (1 - beta_s)``. ``L_t[t - 2]`` holds ``L_{t-1}`` for ``t = 2..N``. ``eps``
    sees ``max(b, max_batch // b * b)`` rows at once: pass ``x`` in batches of at most
    ``max_batch`` rows to bound the memory.
    """
    b, d, n = x.shape[0], x[0].numel(), len(alphas_bar)
    ab = alphas_bar.to(device=x.device, dtype=torch.float64)
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    beta = 1 - ab / ab_prev
    alpha = 1 - beta
    x0 = x.detach()
    # L_T: KL(N(sqrt(ab_N) x0, (1 - ab_N) I) || N(0, I)), in closed form.
    ab_n = ab[-1]
    sq = x0.flatten(1).double().square().sum(1)
    l_big_t = 0.5 * (d * (1 - ab_n) + ab_n * sq - d - d * torch.log1p(-ab_n))

    # Squared noise errors |eps - eps_hat(x_t, t / N)|^2 for every t = 1..N, shaped (N, b).
    errors = []
    per_chunk = max(1, max_batch // max(b, 1))
    for start in range(0, n, per_chunk):
        idx = torch.arange(start, min(n, start + per_chunk), device=x.device)  # i = t - 1
        k = len(idx)
        xs = x0.unsqueeze(0).expand(k, *x0.shape).reshape(k * b, *x0.shape[1:])
        a = ab[idx].repeat_interleave(b).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        z = torch.randn(xs.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_t = a.sqrt() * xs + (1 - a).sqrt() * z  # eq. 4
        c = ((idx + 1).to(x.dtype) / n).repeat_interleave(b)
        err = (eps(x_t, c) - z).flatten(1).double().square().sum(1)
        errors.append(err.reshape(k, b))
    err = torch.cat(errors)  # (N, b)

    # L_{t-1}, t = 2..N: eq. 12's weight beta_t / (2 alpha_t (1 - ab_t)) (sigma_t^2 = beta_t)
    # times the noise error, plus KL of the variances beta_tilde_t (eq. 7) against beta_t.
    r = ((1 - ab_prev) / (1 - ab))[1:]  # beta_tilde_t / beta_t (eq. 7)
    weight = (beta / (2 * alpha * (1 - ab)))[1:, None]
    l_t = weight * err[1:] + (0.5 * d * (r - 1 - r.log()))[:, None]
    # L_0: -log N(x0; mu_theta(x_1), beta_1 I), with x0 - mu_theta = -sqrt(beta_1 / alpha_1)
    # (eps - eps_hat) by eq. 10.
    l_0 = 0.5 * d * math.log(2 * math.pi) + 0.5 * d * beta[0].log() + err[0] / (2 * alpha[0])
    return {"L_T": l_big_t, "L_t": l_t, "L_0": l_0}


def ddpm_elbo(
    eps: NoiseFn,
    x: Tensor,
    alphas_bar: Tensor,
    generator: torch.Generator | None = None,
    max_batch: int = 16_384,
) -> Tensor:
    """``-(L_T + sum_t L_{t-1} + L_0)`` per example ``(b,)`` in nats (see ``ddpm_bound_terms``)."""
    terms = ddpm_bound_terms(eps, x, alphas_bar, generator, max_batch)
    total = terms["L_T"] + terms["L_t"].sum(0) + terms["L_0"]
    return (-total).to(x.dtype)
