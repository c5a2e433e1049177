"""Latent-space tools for any model with ``encode(x) -> z`` and ``decode(z) -> x``.

``interpolate`` decodes the path between the codes of two inputs (linear, or spherical as
White 2016 recommends for Gaussian priors); ``traverse`` varies one latent dimension at a
time around a code (Higgins et al. 2017, figure 1). For a conditional VAE both take the
condition ``c`` (one for the whole path or traversal): codes are encoded and decoded given it,
so the path varies the style the latent holds while the class stays fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

PATHS = ("linear", "slerp")


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between ``a`` and ``b`` ``(d,)`` at ``t`` ``(steps,)``:
    ``(steps, d)``; linear when the two are (anti)parallel."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega.sin().abs()) < 1e-6:
        return torch.lerp(a, b, t[:, None])
    return (torch.sin((1 - t)[:, None] * omega) * a + torch.sin(t[:, None] * omega) * b) / (
        omega.sin()
    )


@torch.no_grad()
def interpolate(
    model, x_a: Tensor, x_b: Tensor, steps: int = 8, path: str = "linear", c: Any = None
) -> Tensor:
    """Decode ``steps`` points between the codes of ``x_a`` and ``x_b`` (each one example,
    shaped ``data_shape`` or ``(1, *data_shape)``): ``(steps, *data_shape)``, the first and the
    last being the reconstructions of ``x_a`` and ``x_b`` (given ``c``, a conditional
    VAE's condition for the whole path)."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}; got {path!r}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2; got {steps}")
    pair = torch.stack([x_a.reshape(model.data_shape), x_b.reshape(model.data_shape)])
    given = {} if c is None else {"c": c}
    z = model.encode(pair, **given)
    t = torch.linspace(0, 1, steps, device=z.device, dtype=z.dtype)
    codes = torch.lerp(z[0], z[1], t[:, None]) if path == "linear" else slerp(z[0], z[1], t)
    return model.decode(codes, **given)


@torch.no_grad()
def traverse(
    model,
    x: Tensor | None = None,
    dims: Sequence[int] | None = None,
    values: Sequence[float] = (-3, -2, -1, 0, 1, 2, 3),
    c: Any = None,
) -> Tensor:
    """Latent traversal: from the code of ``x`` (one example; the prior mean 0 if ``None``),
    set dimension ``j`` to each of ``values`` for each ``j`` in ``dims`` (all by default) and
    decode: ``(len(dims), len(values), *data_shape)`` (given ``c``, a conditional VAE's
    condition for every code)."""
    given = {} if c is None else {"c": c}
    d = model.latent_dim
    dims = list(range(d)) if dims is None else [int(j) for j in dims]
    if any(not 0 <= j < d for j in dims):
        raise ValueError(f"dims must lie in 0..{d - 1}; got {dims}")
    if x is None:
        base = torch.zeros(d, device=model.device, dtype=model.dtype)
    else:
        base = model.encode(x.reshape(1, *model.data_shape), **given)[0]
    vals = torch.as_tensor(list(values), device=base.device, dtype=base.dtype)
    codes = base.repeat(len(dims), len(vals), 1)  # (dims, values, d)
    for row, j in enumerate(dims):
        codes[row, :, j] = vals
    out = model.decode(codes.reshape(-1, d), **given)
    return out.reshape(len(dims), len(vals), *out.shape[1:])
