"""Autoregressive transforms: MADE conditioners and the spline autoregressive layer.

References:
    Germain, Gregor, Murray & Larochelle, "MADE: Masked autoencoder for distribution
    estimation", ICML 2015 (arXiv:1502.03509).
    Papamakarios, Pavlakou & Murray, "Masked autoregressive flow for density estimation",
    NeurIPS 2017 (arXiv:1705.07057).
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019, section 3.3
    (NSF-AR: the spline of every dimension conditioned on the dimensions before it).
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
    """

    def __init__(
        self,
        features: int,
        params_per_dim: int,
        hidden: Sequence[int] = (128, 128),
        activation: str = "relu",
    ) -> None:
        if features < 2:
            raise ValueError(f"an autoregressive transform needs >= 2 features; got {features}")
        degrees = [torch.arange(1, features + 1)]
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
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (128, 128),
        settings: SplineSettings | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.settings = settings or SplineSettings()
        self.net = MADE(features, self.settings.params_per_dim, hidden, activation)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, log_grad = rational_quadratic_spline(x, self.net(x), self.settings)
        return y, log_grad.sum(-1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(y)
        for i in range(y.shape[-1]):  # dimension i needs x_<i, known after i passes
            params = self.net(x)[:, i]
            xi, _ = rational_quadratic_spline(y[:, i], params, self.settings, inverse=True)
            x = torch.cat([x[:, :i], xi[:, None], x[:, i + 1 :]], dim=1)
        _, log_grad = rational_quadratic_spline(y, self.net(x), self.settings, inverse=True)
        return x, log_grad.sum(-1)
