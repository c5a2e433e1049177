"""Fixed-step RK4, adaptive Dormand-Prince RK45, and the divergence of a vector field.

The integrators work on one tensor ``y`` shaped ``(batch, k)`` and a field
``f(t, y) -> (batch, k)`` with ``t`` a float; ``t1 < t0`` integrates backwards. Each returns
``y(t1)`` and the number of evaluations of ``f``.

References:
    Dormand & Prince, "A family of embedded Runge-Kutta formulae", J. Comp. Appl. Math. 1980.
    Hutchinson, "A stochastic estimator of the trace of the influence matrix", 1989.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Field = Callable[[float, Tensor], Tensor]

# Dormand-Prince 5(4) tableau.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def rk4(f: Field, y: Tensor, t0: float, t1: float, n_steps: int) -> tuple[Tensor, int]:
    """Classical 4th-order Runge-Kutta with ``n_steps`` equal steps from ``t0`` to ``t1``."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1; got {n_steps}")
    h = (t1 - t0) / n_steps
    t = t0
    for _ in range(n_steps):
        k1 = f(t, y)
        k2 = f(t + h / 2, y + h / 2 * k1)
        k3 = f(t + h / 2, y + h / 2 * k2)
        k4 = f(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t += h
    return y, 4 * n_steps


def rk45(
    f: Field,
    y: Tensor,
    t0: float,
    t1: float,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
) -> tuple[Tensor, int]:
    """Adaptive Dormand-Prince 5(4) with local extrapolation and first-same-as-last.

    The error is the RMS over the whole batch of ``err / (atol + rtol max(|y|, |y_new|))``;
    one step size serves the batch (as in torchdiffeq's ``dopri5``).
    """
    direction = 1.0 if t1 >= t0 else -1.0
    span = abs(t1 - t0)
    t, h = t0, 0.01 * span
    k1 = f(t, y)
    nfe = 1
    for _ in range(max_steps):
        if abs(t - t0) >= span * (1 - 1e-12):
            return y, nfe
        h = min(h, span - abs(t - t0))
        dt = direction * h
        ks = [k1]
        for i in range(1, 7):
            yi = y + dt * sum(a * k for a, k in zip(_A[i], ks, strict=False))
            ks.append(f(t + _C[i] * dt, yi))
        nfe += 6
        y_new = y + dt * sum(b * k for b, k in zip(_B5, ks, strict=True) if b)
        err = dt * sum((b5 - b4) * k for b5, b4, k in zip(_B5, _B4, ks, strict=True))
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        norm = float((err / scale).square().mean().sqrt())
        if norm <= 1.0:
            t, y, k1 = t + dt, y_new, ks[-1]
        factor = 5.0 if norm == 0 else min(5.0, max(0.2, 0.9 * norm**-0.2))
        h = h * factor
    raise RuntimeError(f"rk45 took more than {max_steps} steps; loosen rtol/atol")


def divergence(
    f: Callable[[Tensor], Tensor], x: Tensor, probe: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``f(x)`` and its divergence ``sum_i d f_i / d x_i``, for ``x`` shaped ``(batch, d)``.

    With ``probe`` (a ``(batch, d)`` tensor of Rademacher or Gaussian noise) the divergence is
    Hutchinson's unbiased estimate ``v^T (df/dx) v`` (one backward pass); without it, it is
    exact (``d`` backward passes). Returns ``(f(x), div)`` shaped ``(batch, d), (batch,)``.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        fx = f(x)
        if probe is not None:
            (vjp,) = torch.autograd.grad(fx, x, probe)
            div = (vjp * probe).sum(1)
        else:
            div = torch.zeros_like(fx[:, 0])
            for i in range(x.shape[1]):
                (grad,) = torch.autograd.grad(fx[:, i].sum(), x, retain_graph=True)
                div = div + grad[:, i]
    return fx.detach(), div.detach()
