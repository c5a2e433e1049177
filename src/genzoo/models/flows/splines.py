"""Rational-quadratic splines with linear tails, and the coupling layer built on them.

References:
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019
    (arXiv:1906.04032), section 3; the rational-quadratic form of Gregory & Delbourgo (1982).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from genzoo.models.flows.coupling import with_context
from genzoo.models.flows.transforms import Transform
from genzoo.models.nn import MLP


@dataclass(frozen=True)
class SplineSettings:
    """The spline hyper-parameters of Durkan et al. 2019 (section 3.1).

    Arguments:
        bins: number of bins ``K`` in ``[-tail_bound, tail_bound]``.
        tail_bound: ``B``; outside ``[-B, B]`` the transform is the identity (linear tails).
        min_bin_width: floor on each bin's width, as a fraction of ``2B``.
        min_bin_height: floor on each bin's height, as a fraction of ``2B``.
        min_derivative: floor on the derivative at the inner knots.
    """

    bins: int = 8
    tail_bound: float = 3.0
    min_bin_width: float = 1e-3
    min_bin_height: float = 1e-3
    min_derivative: float = 1e-3

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1; got {self.bins}")
        if not self.tail_bound > 0:
            raise ValueError(f"tail_bound must be > 0; got {self.tail_bound}")
        for name in ("min_bin_width", "min_bin_height"):
            value = getattr(self, name)
            if not 0 <= value * self.bins < 1:
                raise ValueError(
                    f"{name} must be in [0, 1/bins); got {value} with {self.bins} bins"
                )
        if not self.min_derivative > 0:
            raise ValueError(f"min_derivative must be > 0; got {self.min_derivative}")

    @property
    def params_per_dim(self) -> int:
        """Widths (K), heights (K) and inner derivatives (K-1): ``3K - 1`` numbers."""
        return 3 * self.bins - 1


def _knots(raw: Tensor, minimum: float | Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """Bin sizes and knot positions in ``[-B, B]`` from unnormalised ``(..., K)`` values.

    ``minimum`` (a number, or a tensor broadcasting against ``raw``'s leading dimensions)
    floors each bin's size. The end knots are exactly ``-B`` and ``B``, and the sizes are the
    differences of the knots (so they add up to ``2B`` exactly).
    """
    k = raw.shape[-1]
    # softmax over the bins with the bins as the leading dimension: the same numbers, but
    # torch's CPU kernel is many times faster there than over a short last dimension
    softmax = torch.softmax(raw.movedim(-1, 0), dim=0).movedim(0, -1)
    sizes = minimum + (1 - minimum * k) * softmax
    inner = 2 * bound * torch.cumsum(sizes[..., :-1], dim=-1) - bound  # (..., K-1)
    knots = F.pad(inner, (1, 1), value=bound)  # (..., K+1); the first is set to -B below
    knots[..., 0] = -bound
    return knots[..., 1:] - knots[..., :-1], knots


def rational_quadratic_spline(
    x: Tensor, params: Tensor, settings: SplineSettings, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """The monotone rational-quadratic spline of Durkan et al. 2019 with linear tails.

    ``x`` is shaped ``(...,)`` and ``params`` ``(..., 3K - 1)`` (unnormalised widths, heights
    and inner derivatives). Inside ``[-B, B]`` the map is eq. (4) and its derivative eq. (5);
    the inverse solves the quadratic of section 3.2 (appendix A); outside it is the identity.
    Returns ``(y, log|dy/dx|)`` elementwise, both shaped like ``x`` (for ``inverse=True``,
    ``log|dx/dy|``).

    The widths and heights are normalised together (one softmax, one cumulative sum), the bin
    is found by counting the inner knots at or below the point (``searchsorted`` with
    ``right=True``), and the six per-bin numbers are read with one ``gather``: the same
    arithmetic as the paper's, in fewer, larger operations.
    """
    s = settings
    k, bound = s.bins, s.tail_bound
    raw_wh = params[..., : 2 * k].unflatten(-1, (2, k))  # (..., 2, K): widths, heights
    minimum: float | Tensor = s.min_bin_width
    if s.min_bin_height != s.min_bin_width:
        minimum = params.new_tensor([[s.min_bin_width], [s.min_bin_height]])
    sizes, knots = _knots(raw_wh, minimum, bound)  # (..., 2, K), (..., 2, K+1)
    # derivatives at the K+1 knots: softplus inside (shifted so raw 0 gives 1), 1 at the ends
    shift = math.log(math.expm1(1 - s.min_derivative))
    derivs = F.pad(s.min_derivative + F.softplus(params[..., 2 * k :] + shift), (1, 1), value=1.0)

    v = x.clamp(-bound, bound)
    inside = v == x  # within [-B, B]; outside, the identity
    row = 1 if inverse else 0  # the knots that locate the point: heights' for the inverse
    index = (v[..., None] >= knots[..., row, 1:-1]).sum(-1, keepdim=True)  # bin, (..., 1)
    table = torch.cat([knots[..., :-1], sizes, derivs[..., None, :-1], derivs[..., None, 1:]], -2)
    picked = table.gather(-1, index[..., None, :].expand(*index.shape[:-1], 6, 1))[..., 0]
    x_k, y_k, w_k, h_k, d_k, d_k1 = picked.unbind(-1)
    slope = h_k / w_k  # s_k of the paper
    curvature = d_k1 + d_k - 2 * slope
    if inverse:  # solve a xi^2 + b xi + c = 0 for xi in [0, 1]
        dy = v - y_k
        a = h_k * (slope - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -slope * dy
        xi = (2 * c) / (-b - torch.sqrt((b.square() - 4 * a * c).clamp_min(0)))
        out = x_k + xi * w_k
    else:
        xi = (v - x_k) / w_k
    xi_1m = xi * (1 - xi)
    denom = slope + curvature * xi_1m
    if not inverse:
        out = y_k + h_k * (slope * xi.square() + d_k * xi_1m) / denom  # eq. (4)
    grad = slope.square() * (d_k1 * xi.square() + 2 * slope * xi_1m + d_k * (1 - xi).square())
    log_grad = grad.log() - 2 * denom.log()  # eq. (5)
    if inverse:
        log_grad = -log_grad
    return torch.where(inside, out, x), torch.where(inside, log_grad, 0.0)


class SplineCoupling(Transform):
    """Rational-quadratic spline coupling (NSF-C, Durkan et al. 2019, section 3.3).

    With mask ``b``, the transformed features ``(1-b)`` each pass through a spline whose
    ``3K - 1`` parameters an MLP computes from the kept features ``b*x``; the kept ones pass
    through unchanged. ``(batch, d)`` tensors; the MLP's last layer starts at zero, which
    makes every spline (and the layer) the identity at initialisation.

    Arguments:
        mask: binary ``(d,)`` tensor, 1 = kept (conditioning), 0 = transformed.
        hidden: widths of the conditioner MLP's hidden layers.
        settings: the spline hyper-parameters.
        activation: the conditioner's activation, by name.
        context_features: size of a conditional flow's context (0: none); the conditioner
            reads ``[b*x, context]`` (Winkler et al. 2019).
    """

    takes_context = True

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int] = (128, 128),
        settings: SplineSettings | None = None,
        activation: str = "relu",
        context_features: int = 0,
    ) -> None:
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.get_default_dtype())
        if mask.ndim != 1 or not 0 < int(mask.sum()) < len(mask):
            raise ValueError("mask must be 1-D, keep at least one feature and transform one")
        self.settings = settings or SplineSettings()
        self.register_buffer("mask", mask)
        # the transformed features' positions (derived from the mask, so not saved)
        self.register_buffer("free_index", (mask == 0).nonzero()[:, 0], persistent=False)
        d, p = len(mask), self.settings.params_per_dim
        self.context_features = int(context_features)
        self.net = MLP(
            d + self.context_features, d * p, hidden=hidden, activation=activation, zero_last=True
        )

    def _spline(self, v: Tensor, inverse: bool, context: Tensor | None) -> tuple[Tensor, Tensor]:
        net_input = with_context(v * self.mask, context, self.context_features)
        params = self.net(net_input).unflatten(-1, (v.shape[-1], -1))  # (batch, d, 3K-1)
        free = self.free_index  # only the transformed features go through the splines
        out, log_grad = rational_quadratic_spline(
            v.index_select(1, free), params.index_select(1, free), self.settings, inverse=inverse
        )
        return v.index_copy(1, free, out), log_grad.sum(-1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(x, inverse=False, context=context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(y, inverse=True, context=context)
