"""Langevin dynamics on an energy, and the normaliser of a 2-D energy by grid quadrature.

Small functions, no network inside: ``energy(x) -> (batch,)`` is any callable.

References:
    Welling & Teh, "Bayesian learning via stochastic gradient Langevin dynamics", ICML 2011.
    Du & Mordatch, "Implicit generation and modeling with energy-based models",
    NeurIPS 2019 (eq. 3: ``x_k = x_{k-1} - lambda/2 grad E(x_{k-1}) + omega``,
    ``omega ~ N(0, lambda)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Energy = Callable[[Tensor], Tensor]


def energy_gradient(energy: Energy, x: Tensor, create_graph: bool = False) -> Tensor:
    """``dE/dx`` shaped like ``x`` (the energy summed over the batch)."""
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x, create_graph=create_graph)
    return grad


def langevin(
    energy: Energy,
    x: Tensor,
    n_steps: int,
    step_size: float,
    noise_scale: float = 1.0,
    temperatures: Sequence[float] | None = None,
    bounds: tuple[Tensor, Tensor] | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    """Langevin dynamics towards ``p(x) ~ exp(-E(x) / T)``, ``(batch, ...) -> (batch, ...)``.

    Each step ``x <- x - step_size / (2 T) grad E(x) + noise_scale sqrt(step_size) z``
    (Du & Mordatch 2019, eq. 3); ``noise_scale = 1`` is exact Langevin dynamics, smaller values
    the "decoupled" noise often used in practice. ``temperatures`` (one per step) anneal ``T``
    (1 by default); ``bounds = (low, high)`` clamps the states to a box after each step;
    ``callback(i, x)`` sees every state. Gradients do not flow to the energy's parameters.
    """
    if n_steps < 0 or step_size <= 0:
        raise ValueError(f"need n_steps >= 0 and step_size > 0; got {n_steps}, {step_size}")
    if temperatures is not None and len(temperatures) != n_steps:
        raise ValueError(f"give one temperature per step: {len(temperatures)} != {n_steps}")
    x = x.detach()
    noise_std = noise_scale * math.sqrt(step_size)
    for i in range(n_steps):
        t = 1.0 if temperatures is None else float(temperatures[i])
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = (x - step_size / (2 * t) * energy_gradient(energy, x) + noise_std * z).detach()
        if bounds is not None:
            x = torch.maximum(torch.minimum(x, bounds[1]), bounds[0])
        if callback is not None:
            callback(i, x)
    return x


def grid(low: Tensor, high: Tensor, n: int) -> tuple[Tensor, float]:
    """Midpoints of an ``n^d`` grid over the box ``[low, high]`` (``d <= 2``) and the cell volume.

    Returns ``(points (n^d, d), log cell volume)``; rows vary the first coordinate slowest.
    """
    d = low.numel()
    if d > 2:
        raise ValueError(f"grid quadrature is for 1-D or 2-D data; got dimension {d}")
    width = (high - low) / n
    axes = [low[i] + width[i] * (torch.arange(n, device=low.device, dtype=low.dtype) + 0.5)
            for i in range(d)]  # fmt: skip
    points = torch.cartesian_prod(*axes).reshape(-1, d)
    return points, float(width.log().sum())


@torch.no_grad()
def grid_log_normalizer(
    energy: Energy, low: Tensor, high: Tensor, n: int, chunk: int = 65536
) -> Tensor:
    """``log int_box exp(-E(x)) dx`` by the midpoint rule on an ``n^d`` grid (``d <= 2``).

    The error is the midpoint rule's, ``O(h^2)`` in the cell width ``h`` for a smooth energy.
    """
    points, log_cell = grid(low, high, n)
    neg = torch.cat([-energy(points[i : i + chunk]) for i in range(0, len(points), chunk)])
    return torch.logsumexp(neg.double(), 0) + log_cell
