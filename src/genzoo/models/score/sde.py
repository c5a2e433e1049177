"""Noise processes: geometric noise levels (NCSN) and the VP and VE SDEs (Song et al. 2021).

An SDE ``dx = f(x, t) dt + g(t) dw`` on ``t in [0, 1]`` has Gaussian marginals
``p_t(x_t | x_0) = N(m(t) x_0, sigma(t)^2 I)``; ``marginal`` returns ``(m(t), sigma(t))``.
Pure maths on tensors: no parameters, so the samplers can be tested with exact scores.

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative Modeling
    through Stochastic Differential Equations", ICLR 2021 (arXiv:2011.13456).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> Tensor:
    """Noise levels ``sigma_1 > ... > sigma_L``, a geometric sequence (Song & Ermon 2019, s.4.1)."""
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max; got {sigma_min=}, {sigma_max=}")
    if n_levels < 2:
        raise ValueError(f"need n_levels >= 2; got {n_levels}")
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), int(n_levels)))


def max_pairwise_distance(x: Tensor, n_max: int = 2000) -> float:
    """Largest Euclidean distance between examples (Song & Ermon 2020, technique 1).

    ``x`` is ``(n, ...)``; at most ``n_max`` evenly spaced examples are compared.
    """
    flat = x.flatten(1)
    if flat.shape[0] > n_max:
        flat = flat[torch.linspace(0, flat.shape[0] - 1, n_max).long()]
    return float(torch.cdist(flat.double(), flat.double()).max())


def _expand(v: Tensor, x: Tensor) -> Tensor:
    """``(batch,)`` to ``(batch, 1, ..., 1)`` broadcasting against ``x``."""
    return v.reshape(-1, *([1] * (x.ndim - 1)))


@dataclass(frozen=True)
class VPSDE:
    """Variance preserving SDE, ``dx = -beta(t)/2 x dt + sqrt(beta(t)) dw`` (eq. 11).

    ``beta(t) = beta_min + t (beta_max - beta_min)``: the continuous limit of DDPM's chain
    with ``N`` steps and ``beta_i = beta(i / N) / N``. Prior ``N(0, I)``.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``m(t) = exp(-1/2 int_0^t beta)`` and ``sigma(t) = sqrt(1 - m(t)^2)`` (eq. 29)."""
        log_m = -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        return log_m.exp(), (-torch.expm1(2 * log_m)).sqrt()

    def sde(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Drift ``f(x, t)`` shaped like ``x`` and diffusion ``g(t)`` shaped ``(batch,)``."""
        beta = self.beta(t)
        return -0.5 * _expand(beta, x) * x, beta.sqrt()

    def prior_std(self) -> float:
        return 1.0

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """``log N(z; 0, I)`` per example, ``(batch, ...) -> (batch,)``."""
        return _normal_log_prob(z, 1.0)


@dataclass(frozen=True)
class VESDE:
    """Variance exploding SDE, ``dx = sqrt(d sigma^2(t) / dt) dw`` (eq. 9).

    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``: the continuous limit of NCSN's
    geometric levels. Prior ``N(0, sigma_max^2 I)``.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        sigma = self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        return torch.ones_like(t), sigma

    def sde(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        sigma = self.marginal(t)[1]
        g = sigma * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), g

    def prior_std(self) -> float:
        return self.sigma_max

    def prior_log_prob(self, z: Tensor) -> Tensor:
        return _normal_log_prob(z, self.sigma_max)


class DiscreteVPSchedule:
    """A discrete VP chain's levels ``alpha_bar_1..alpha_bar_N`` (DDPM) as a continuous-time
    schedule on ``t in [1/N, 1]``: ``log alpha(t)`` is the piecewise-linear interpolation of
    ``log sqrt(alpha_bar_i)`` at ``t_i = i / N`` and ``sigma(t) = sqrt(1 - alpha(t)^2)`` (Lu
    et al. 2022, DPM-Solver, appendix: discrete-time models), so a solver may step between
    the trained timesteps; the network reads ``t`` as DDPM's ``i / N``."""

    def __init__(self, alphas_bar: Tensor) -> None:
        n = len(alphas_bar)
        self.t = torch.arange(1, n + 1, dtype=torch.float64) / n
        self.log_alpha = 0.5 * torch.as_tensor(alphas_bar, dtype=torch.float64).log()

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(alpha(t), sigma(t))`` for ``t`` in ``[1/N, 1]``, float64."""
        t = t.double().clamp(float(self.t[0]), 1.0)
        i = torch.searchsorted(self.t, t).clamp(1, len(self.t) - 1)
        t0, t1 = self.t[i - 1], self.t[i]
        la = self.log_alpha[i - 1] + (self.log_alpha[i] - self.log_alpha[i - 1]) * (t - t0) / (
            t1 - t0
        )
        return la.exp(), (-torch.expm1(2 * la)).sqrt()


SDE = VPSDE | VESDE


def _normal_log_prob(z: Tensor, std: float) -> Tensor:
    d = z[0].numel()
    flat = z.flatten(1)
    return -0.5 * (flat / std).square().sum(1) - d * (math.log(std) + 0.5 * math.log(2 * math.pi))
