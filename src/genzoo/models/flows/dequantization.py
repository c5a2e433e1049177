"""Variational dequantisation: a learned noise distribution ``q(u | x)`` for integer levels.

A continuous density ``p`` on ``[0, 1)^D`` gives integer levels ``x`` (``0..L-1``) the
probability ``P(x) = integral over the cell of p((x + u) / L) L^-D du``. For every density
``q(u | x)`` on ``[0, 1)^D``, Jensen's inequality gives the variational dequantisation bound of
Flow++ (Ho, Chen, Srinivas, Duan & Abbeel, "Flow++", ICML 2019, section 3.1, eq. 12)

    log P(x) >= E_{u ~ q(. | x)} [ log p((x + u) / L) - D log L - log q(u | x) ],

equal to ``log P(x)`` when ``q(u | x)`` is the model's own density over the cell, and to the
uniform dequantisation bound of Theis, van den Oord & Bethge (2016) when ``q`` is uniform.
Training ``p`` and ``q`` together on this bound tightens it: the model no longer has to
spread its mass uniformly over every cell, which costs a flow sharp edges.

``q`` is itself a conditional flow (Flow++'s figure 2): standard normal noise ``e``, a few
affine couplings with checkerboard masks whose conditioners read the noise's kept half and
features of ``x`` computed by a small CNN, and an elementwise sigmoid onto ``(0, 1)``, so
``log q(u | x) = log N(e; 0, I) - log|det du/de|`` is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genzoo.models.flows.base import standard_normal_log_prob
from genzoo.models.flows.coupling import ConvNet, checkerboard_mask, log_scale
from genzoo.models.nn import get_activation


class ConditionalCoupling(nn.Module):
    """Affine coupling of ``e`` ``(batch, c, h, w)`` given a feature map of the same size.

    ``e' = e`` on the kept part (``mask``) and ``e * exp(s) + t`` elsewhere, with
    ``(s, t) = NN([mask * e, features])``; ``log|det| = sum((1 - mask) * s)`` (RealNVP's
    eq. 9 with a spatial context). The conditioner's last layer starts at zero.
    """

    def __init__(self, mask: Tensor, features: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        c = mask.shape[0]
        self.net = ConvNet(c + features, 2 * c, hidden, activation)

    def forward(self, e: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        raw_s, t = self.net(torch.cat([e * self.mask, features], dim=1)).chunk(2, dim=1)
        free = 1 - self.mask
        s = log_scale(raw_s, "tanh", 3.0) * free
        return e * torch.exp(s) + t * free, s.flatten(1).sum(1)


class VariationalDequantizer(nn.Module):
    """``q(u | x)`` on ``(0, 1)^D`` for integer-level images ``x`` ``(batch, c, h, w)``.

    A conditional flow (Ho et al. 2019, section 3.1): ``e ~ N(0, I)``, then ``n_couplings``
    checkerboard couplings conditioned on a CNN's features of ``x`` (read as
    ``2 x / (L - 1) - 1``), then ``u = sigmoid(v)``. ``forward(x)`` draws one ``u`` per example
    and returns it with ``log q(u | x)`` in nats.

    Arguments:
        shape: ``(c, h, w)`` of one image.
        levels: ``L``, the number of integer levels.
        hidden: channels of the feature CNN and of the couplings' conditioners.
        n_couplings: number of coupling layers (checkerboard parity alternates).
        activation: the networks' activation, by name.
    """

    def __init__(
        self,
        shape: Sequence[int],
        levels: int,
        hidden: int = 32,
        n_couplings: int = 4,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"variational dequantisation needs images (c, h, w); got {shape}")
        if levels < 2 or hidden < 1 or n_couplings < 0:
            raise ValueError(f"need levels >= 2, hidden >= 1, n_couplings >= 0; got "
                             f"{levels=}, {hidden=}, {n_couplings=}")  # fmt: skip
        self.shape = tuple(int(s) for s in shape)
        self.levels = int(levels)
        c = self.shape[0]
        self.features = nn.Sequential(
            nn.Conv2d(c, hidden, 3, padding=1),
            get_activation(activation),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            get_activation(activation),
        )
        self.couplings = nn.ModuleList(
            ConditionalCoupling(checkerboard_mask(self.shape, k % 2), hidden, hidden, activation)
            for k in range(n_couplings)
        )

    def transform(self, e: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """The bijection from noise ``e`` to ``u`` in ``(0, 1)^D`` given ``x`` (both shaped
        like the images), and ``log|det du/de|`` per example."""
        h = self.features(2 * x / (self.levels - 1) - 1)
        ladj = e.new_zeros(e.shape[0])
        for coupling in self.couplings:
            e, step = coupling(e, h)
            ladj = ladj + step
        # u = sigmoid(v): log du/dv = log sigmoid(v) + log sigmoid(-v)
        log_slope = nn.functional.logsigmoid(e) + nn.functional.logsigmoid(-e)
        eps = torch.finfo(e.dtype).eps
        return torch.sigmoid(e).clamp(eps, 1 - eps), ladj + log_slope.flatten(1).sum(1)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One draw ``u ~ q(. | x)`` shaped like ``x``, and ``log q(u | x)`` shaped ``(batch,)``."""
        e = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        u, ladj = self.transform(e, x)
        return u, standard_normal_log_prob(e.flatten(1)) - ladj


def variational_bound(log_p_cell, x: Tensor, dequantizer: VariationalDequantizer) -> Tensor:
    """One-draw estimate of the bound ``log p((x + u) / L) - D log L - log q(u | x)`` per
    example, ``u ~ q(. | x)``: ``log_p_cell(y)`` is the continuous model's log-density at
    ``y`` in ``[0, 1)^D``. Its expectation is at most ``log P(x)`` (Ho et al. 2019, eq. 12)."""
    u, log_q = dequantizer(x)
    dim = math.prod(x.shape[1:])
    levels = dequantizer.levels
    return log_p_cell((x + u) / levels) - dim * math.log(levels) - log_q
