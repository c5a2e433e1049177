"""Encoder and decoder networks of the VAEs, chosen by the shape of the data.

Vectors ``(d,)`` get MLPs; images ``(C, H, W)`` with sides of at least 16 and divisible by 4
get small convolutional networks (two stride-2 convolutions down, two transposed ones up).
Smaller images (8x8 digits) get MLPs on the flattened pixels by default: on a CPU they train
about 4x faster for about the same ELBO; ``network="conv"`` still asks for convolutions.
The decoder returns ``(batch, n_params, D)``: ``n_params`` numbers per data scalar (a logit,
a mean and a std, or ``levels`` logits), which the likelihood reads.

A conditional VAE's networks also read a context (its condition as a vector, ``(batch, K)``:
a one-hot class or a standardised vector; :class:`genzoo.models.conditioning.Context`), as in
the CVAE of Sohn, Lee & Yan (2015): the MLPs take it concatenated to their input (the
flattened ``x``, or ``z``), the convolutional encoder as ``K`` constant extra input channels,
the convolutional decoder concatenated to ``z`` before its first linear layer. With no
context (``context_features=0``) the networks are built exactly as before, the same weights
from the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genzoo.models.nn import MLP, get_activation

#: Network kinds a config may name.
NETWORKS = ("auto", "mlp", "conv")


def resolve_network(network: str, data_shape: Sequence[int]) -> str:
    """``"mlp"`` or ``"conv"``: ``"auto"`` picks conv for images with sides >= 16 that divide
    by 4 (``"conv"`` accepts any sides divisible by 4)."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}; got {network!r}")
    image = len(data_shape) == 3 and data_shape[1] % 4 == 0 and data_shape[2] % 4 == 0
    if network == "conv" and not image:
        raise ValueError(
            "network='conv' needs images shaped (C, H, W) with H and W divisible by 4; "
            f"got data_shape {tuple(data_shape)}: use network='mlp'"
        )
    if network == "auto":
        return "conv" if image and min(data_shape[1:]) >= 16 else "mlp"
    return network


def _check_context(context: Tensor | None, batch: int, expected: int) -> None:
    if expected and (context is None or context.shape != (batch, expected)):
        got = None if context is None else tuple(context.shape)
        raise ValueError(f"this network reads a context of {expected} features; got {got}")


class Encoder(nn.Module):
    """``x (batch, *data_shape)`` (and a context ``(batch, context_features)``) ``->
    (batch, out_features)``: the amortised posterior's inputs."""

    def __init__(
        self,
        data_shape: Sequence[int],
        out_features: int,
        network: str,
        hidden: int,
        depth: int,
        channels: int,
        activation: str,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        self.context_features, self.conv = int(context_features), network == "conv"
        k = self.context_features
        if network == "mlp":
            self.net = nn.Sequential(
                nn.Flatten(),
                MLP(math.prod(data_shape) + k, out_features, [hidden] * depth, activation),
            )
            return
        c, h, w = data_shape
        self.net = nn.Sequential(
            nn.Conv2d(c + k, channels, 3, padding=1),
            get_activation(activation),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),  # (2ch, H/2, W/2)
            get_activation(activation),
            nn.Conv2d(2 * channels, 2 * channels, 4, stride=2, padding=1),  # (2ch, H/4, W/4)
            get_activation(activation),
            nn.Flatten(),
            nn.Linear(2 * channels * (h // 4) * (w // 4), out_features),
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        k = self.context_features
        if not k:
            return self.net(x)
        _check_context(context, x.shape[0], k)
        context = context.to(x.dtype)
        if self.conv:  # constant extra channels
            context = context[:, :, None, None].expand(-1, -1, *x.shape[2:])
        else:
            x = x.flatten(1)
        return self.net(torch.cat([x, context], dim=1))


class Decoder(nn.Module):
    """``z (batch, latent_dim)`` (and a context ``(batch, context_features)``) ``->
    (batch, n_params, D)``: parameters of ``p(x | z)`` (``p(x | z, c)``)."""

    def __init__(
        self,
        latent_dim: int,
        data_shape: Sequence[int],
        n_params: int,
        network: str,
        hidden: int,
        depth: int,
        channels: int,
        activation: str,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        self.n_params, self.dim = n_params, math.prod(data_shape)
        self.context_features = k = int(context_features)
        if network == "mlp":
            self.net = MLP(latent_dim + k, n_params * self.dim, [hidden] * depth, activation)
            return
        c, h, w = data_shape
        self.net = nn.Sequential(
            nn.Linear(latent_dim + k, 2 * channels * (h // 4) * (w // 4)),
            get_activation(activation),
            nn.Unflatten(1, (2 * channels, h // 4, w // 4)),
            nn.ConvTranspose2d(2 * channels, 2 * channels, 4, stride=2, padding=1),  # H/2
            get_activation(activation),
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),  # H
            get_activation(activation),
            nn.Conv2d(channels, n_params * c, 3, padding=1),  # (n_params * C, H, W)
        )

    def forward(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        if self.context_features:
            _check_context(context, z.shape[0], self.context_features)
            out = self.net(torch.cat([z, context.to(z.dtype)], dim=1))
        else:
            out = self.net(z)
        # (batch, n_params * C, H, W) or (batch, n_params * D) -> (batch, n_params, D)
        return out.reshape(z.shape[0], self.n_params, self.dim)
