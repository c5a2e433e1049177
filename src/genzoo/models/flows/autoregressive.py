"""Autoregressive transforms: MADE conditioners and the spline autoregressive layer.

References:
    Germain, Gregor, Murray & Larochelle, "MADE: Masked autoencoder for distribution
    estimation", ICML 2015 (arXiv:1502.03509).
    Papamakarios, Pavlakou & Murray, "Masked autoregressive flow for density estimation",
    NeurIPS 2017 (arXiv:1705.07057).
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019, section 3.3
    (NSF-AR: the spline of every dimension conditioned on the dimensions before it).

A conditional flow's context enters the MADE as MAF does (Papamakarios et al. 2017,
section 3.4): extra inputs of degree 0, which every hidden unit may see, so every output
depends on the context and the network stays autoregressive in the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genzoo.models.flows.splines import SplineSettings, rational_quadratic_spline
from genzoo.models.flows.transforms import Transform
from genzoo.models.nn import get_activation


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed binary mask ``(out, in)``."""

    mask: Tensor

    def __init__(self, mask: Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Sequential):
    """Masked MLP: output ``(batch, d, p)``; row ``i`` depends only on inputs ``< i``.

    Input ``i`` has degree ``i + 1``, hidden units cycle through degrees ``1..d-1`` and
    an output of dimension ``i`` may see hidden units of degree ``<= i`` (Germain et al.
    2015, eq. 12-13), so the network is autoregressive in the input order. The last layer
    starts at zero.

    Arguments:
        features: ``d`` (at least 2).
        params_per_dim: ``p``, the numbers computed for each dimension.
        hidden: widths of the hidden layers.
        activation: by name.
        context_features: extra inputs of degree 0 (a conditional flow's context), placed
            before the data: ``forward(torch.cat([context, x], 1))``.
    """

    def __init__(
        self,
        features: int,
        params_per_dim: int,
        hidden: Sequence[int] = (128, 128),
        activation: str = "relu",
        context_features: int = 0,
    ) -> None:
        if features < 2:
            raise ValueError(f"an autoregressive transform needs >= 2 features; got {features}")
        context = torch.zeros(int(context_features), dtype=torch.long)
        degrees = [torch.cat([context, torch.arange(1, features + 1)])]
        for width in hidden:
            degrees.append(torch.arange(int(width)) % (features - 1) + 1)
        out_degrees = torch.arange(1, features + 1).repeat_interleave(params_per_dim)
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(degrees[:-1], degrees[1:], strict=True)):
            if i > 0:
                layers.append(get_activation(activation))
            layers.append(MaskedLinear(d_out[:, None] >= d_in[None, :]))
        if layers:
            layers.append(get_activation(activation))
        last = MaskedLinear(out_degrees[:, None] > degrees[-1][None, :])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)
        self.features, self.params_per_dim = features, params_per_dim

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).unflatten(-1, (self.features, self.params_per_dim))


class SplineAutoregressive(Transform):
    """NSF-AR: ``y_i = spline(x_i; theta_i(x_<i))`` with the splines of Durkan et al. 2019.

    Data-to-noise (``forward``, density evaluation) is one MADE pass, as in MAF; the inverse
    (sampling) takes ``d`` passes, one per dimension. ``(batch, d)`` tensors.

    Arguments:
        features: ``d``.
        hidden: widths of the MADE's hidden layers.
        settings: the spline hyper-parameters.
        activation: by name.
        context_features: size of a conditional flow's context (0: none), read by the MADE
            as inputs every output may depend on (MAF's context).
    """

    takes_context = True

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (128, 128),
        settings: SplineSettings | None = None,
        activation: str = "relu",
        context_features: int = 0,
    ) -> None:
        super().__init__()
        self.settings = settings or SplineSettings()
        self.context_features = int(context_features)
        self.net = MADE(
            features, self.settings.params_per_dim, hidden, activation, self.context_features
        )

    def _params(self, x: Tensor, context: Tensor | None) -> Tensor:
        if not self.context_features:
            return self.net(x)
        if context is None or context.shape != (x.shape[0], self.context_features):
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"this layer reads a context of {self.context_features} features; "
                             f"got {got}")  # fmt: skip
        return self.net(torch.cat([context.to(x.dtype), x], dim=1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, log_grad = rational_quadratic_spline(x, self._params(x, context), self.settings)
        return y, log_grad.sum(-1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(y)
        for i in range(y.shape[-1]):  # dimension i needs x_<i, known after i passes
            params = self._params(x, context)[:, i]
            xi, _ = rational_quadratic_spline(y[:, i], params, self.settings, inverse=True)
            x = torch.cat([x[:, :i], xi[:, None], x[:, i + 1 :]], dim=1)
        params = self._params(x, context)
        _, log_grad = rational_quadratic_spline(y, params, self.settings, inverse=True)
        return x, log_grad.sum(-1)
