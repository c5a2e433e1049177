"""Unnormalised 2-D target densities ``exp(-U(z))``: the four energies of Rezende & Mohamed.

References:
    Rezende & Mohamed, "Variational inference with normalizing flows", ICML 2015
    (arXiv:1505.05770), table 1 and figure 3.

``U1`` (a ring with two lobes) is normalisable as printed. ``U2``-``U4`` are bands along a
sine wave that extend forever in ``z1`` (``exp(-U)`` has infinite mass), so, as in the
paper's figure where they are shown on ``[-4, 4]^2``, they are confined to
``|z1| <= 4`` by a soft wall ``0.5 * (max(|z1| - 4, 0) / 0.2)^2`` added to the energy
(zero inside the paper's window). ``log_normalizer`` gives ``log Z = log ∫ exp(-U)`` by
quadrature, so the reverse KL of a fitted model, ``E_q[log q + U] + log Z``, is absolute.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import torch
from torch import Tensor

from genzoo.errors import unknown_name

#: The window of the paper's figure 3.
WINDOW = 4.0
_WALL_WIDTH = 0.2


def _w1(z: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _w2(z: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)


def _wall(z: Tensor) -> Tensor:
    """Zero for ``|z1| <= 4``, then a Gaussian fall-off of width 0.2."""
    return 0.5 * ((z[:, 0].abs() - WINDOW).clamp_min(0) / _WALL_WIDTH) ** 2


def _neg_logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """``-log(exp(-a) + exp(-b))`` computed stably."""
    return -torch.logaddexp(-a, -b)


def _u1(z: Tensor) -> Tensor:
    ring = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2
    lobes = _neg_logaddexp(0.5 * ((z[:, 0] - 2) / 0.6) ** 2, 0.5 * ((z[:, 0] + 2) / 0.6) ** 2)
    return ring + lobes


def _u2(z: Tensor) -> Tensor:
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2 + _wall(z)


def _u3(z: Tensor) -> Tensor:
    a = 0.5 * ((z[:, 1] - _w1(z)) / 0.35) ** 2
    b = 0.5 * ((z[:, 1] - _w1(z) + _w2(z)) / 0.35) ** 2
    return _neg_logaddexp(a, b) + _wall(z)


def _u4(z: Tensor) -> Tensor:
    a = 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2
    b = 0.5 * ((z[:, 1] - _w1(z) + _w3(z)) / 0.35) ** 2
    return _neg_logaddexp(a, b) + _wall(z)


ENERGIES: dict[str, Callable[[Tensor], Tensor]] = {"u1": _u1, "u2": _u2, "u3": _u3, "u4": _u4}
DESCRIPTIONS = {
    "u1": "ring of radius 2 with two lobes (Rezende & Mohamed 2015, U1)",
    "u2": "band along a sine wave, |z1| <= 4 (U2)",
    "u3": "two bands split by a bump (U3)",
    "u4": "two bands split by a sigmoid step (U4)",
}


def list_targets() -> list[str]:
    """The names of the target energies: ``u1`` ... ``u4``."""
    return list(ENERGIES)


def energy(name: str, z: Tensor) -> Tensor:
    """The energy ``U(z)`` of target ``name`` for ``z`` shaped ``(n, 2)``; returns ``(n,)``."""
    if name not in ENERGIES:
        raise unknown_name("target", name, ENERGIES)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"targets are 2-D: z must be shaped (n, 2); got {tuple(z.shape)}")
    return ENERGIES[name](z)


def log_unnormalized(name: str, z: Tensor) -> Tensor:
    """``-U(z)``, the unnormalised log density, shaped ``(n,)``."""
    return -energy(name, z)


@cache
def log_normalizer(name: str, half_width: float = 8.0, n: int = 2001) -> float:
    """``log Z = log ∫ exp(-U(z)) dz`` by the rectangle rule on an ``n x n`` grid.

    The grid ``[-half_width, half_width]^2`` holds all but ``exp(-30)`` of the mass of
    every target; the integrands are smooth and vanish at its edge, so the rule's error
    is far below 1e-6 (tested against the closed form of ``U2``'s).
    """
    axis = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    step = float(axis[1] - axis[0])
    logs = []
    for row in axis.split(256):
        grid = torch.cartesian_prod(row, axis)
        logs.append(torch.logsumexp(-energy(name, grid), 0))
    return float(torch.logsumexp(torch.stack(logs), 0)) + 2 * math.log(step)


def log_prob(name: str, z: Tensor) -> Tensor:
    """The normalised log density ``-U(z) - log Z`` of target ``name``, shaped ``(n,)``."""
    return log_unnormalized(name, z) - log_normalizer(name)
