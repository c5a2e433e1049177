"""Layers of ProGAN and StyleGAN: equalised learning rate, pixel norm, minibatch std,
noise inputs and modulated convolutions.

References:
    Karras, Aila, Laine & Lehtinen, "Progressive growing of GANs for improved quality,
    stability, and variation", ICLR 2018 (§4.1 equalised learning rate, §4.2 pixel norm,
    §3 minibatch standard deviation).
    Karras, Laine & Aila, "A style-based generator architecture for generative adversarial
    networks", CVPR 2019 (noise inputs, styles); Karras et al., "Analyzing and improving the
    image quality of StyleGAN", CVPR 2020 (weight modulation and demodulation, eq. 1-3).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: ``w ~ N(0, 1)`` scaled by ``1/sqrt(fan_in)``
    at run time (ProGAN §4.1), so Adam updates every layer at the same speed."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    """``k x k`` convolution (same padding) with equalised learning rate."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """ProGAN eq. (§4.2): each feature vector divided by its RMS over channels (axis 1)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: Tensor) -> Tensor:
    """ProGAN §3: append one channel holding the batch's mean feature standard deviation."""
    std = x.std(dim=0, unbiased=False).mean().reshape(1, 1, 1, 1)
    return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


class NoiseInput(nn.Module):
    """StyleGAN's per-pixel noise ``x + strength * N(0, 1)``, one learned strength per channel
    (initialised at zero)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n, _, h, w = x.shape
        noise = torch.randn(n, 1, h, w, generator=generator, device=x.device, dtype=x.dtype)
        return x + self.strength * noise


class ModulatedConv2d(nn.Module):
    """Style-modulated ``k x k`` convolution (StyleGAN2 eq. 1-3), one kernel per example.

    The style ``s = A(w)`` scales the input channels of the kernel (``w'_ijk = s_i w_ijk``);
    with ``demodulate`` each output channel's kernel is then rescaled to unit norm
    (``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)``), which plays AdaIN's role of
    normalising feature statistics without normalising the activations themselves.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
        demodulate: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)  # A: w -> style s
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.padding = kernel_size // 2

    def kernels(self, w: Tensor) -> Tensor:
        """Per-example kernels ``(n, out, in, k, k)`` for styles from ``w`` ``(n, w_dim)``."""
        s = self.affine(w)  # (n, in)
        weight = self.scale * self.weight[None] * s[:, None, :, None, None]  # eq. (1)
        if self.demodulate:  # eq. (3)
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        return weight

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        n, c, h, width = x.shape
        weight = self.kernels(w)
        if n == 0:  # no examples: no groups for the grouped convolution
            return x.new_zeros(0, weight.shape[1], h, width)
        out = F.conv2d(  # grouped convolution: one group per example
            x.reshape(1, n * c, h, width),
            weight.reshape(n * weight.shape[1], c, *weight.shape[3:]),
            padding=self.padding,
            groups=n,
        )
        return out.reshape(n, -1, h, width)
