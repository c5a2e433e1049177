"""Noise-conditional networks: an MLP for vectors and a small U-Net for images.

Every network here maps a noisy batch ``x`` shaped ``(batch, *data_shape)`` and one
conditioning scalar per example ``c`` shaped ``(batch,)`` (``log sigma`` or the time ``t``)
to a tensor shaped like ``x``. The models read that output as the noise prediction
``eps_hat``, so that ``score = -eps_hat / sigma`` (Song & Ermon 2020, technique 3; Ho et al.
2020, eq. 11): the network never has to produce scores of size ``1 / sigma``.

A class-conditional network (``n_classes = K > 0``) also reads a class per example,
``labels`` ``(batch,)`` in ``0..K``: a learned embedding of the class is added to the
embedding of ``c``, so it shifts every layer the noise level shifts. Class ``K`` is the
"null" class of classifier-free guidance (Ho & Salimans 2022, section 3.2): the same network
is the unconditional model when given it, and ``labels=None`` means that class. With
``n_classes = 0`` the network and its seeded initial weights are those of an unconditional
one (the class embedding is built last, so the other weights do not change with it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genzoo.models.nn import get_activation

NETWORKS = ("auto", "mlp", "unet")


class SinusoidalEmbedding(nn.Module):
    """Fixed sinusoidal features of a scalar, ``(batch,) -> (batch, dim)``.

    Frequencies are geometric from 1 to ``max_freq`` (Vaswani et al. 2017; Ho et al. 2020).
    """

    def __init__(self, dim: int = 64, max_freq: float = 50.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding dim must be an even number >= 2; got {dim}")
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c: Tensor) -> Tensor:
        angles = c[:, None] * self.freqs  # (batch, dim / 2)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ClassEmbedding(nn.Module):
    """A class's learned vector added to a noise-level embedding, ``(batch, dim), (batch,)``.

    ``n_classes = K`` classes and the null class ``K`` (``labels=None``: the null class for
    every example), one vector each, drawn ``N(0, 1)`` like the features of the sinusoidal
    embedding they are added to. ``K = 0`` holds no parameters and refuses labels: the
    network is unconditional.
    """

    def __init__(self, n_classes: int, dim: int) -> None:
        super().__init__()
        if n_classes < 0:
            raise ValueError(f"n_classes must be >= 0; got {n_classes}")
        self.n_classes = int(n_classes)
        self.table = nn.Embedding(self.n_classes + 1, dim) if self.n_classes else None

    def forward(self, e: Tensor, labels: Tensor | None) -> Tensor:
        if self.table is None:
            if labels is not None:
                raise ValueError("this network was built without classes (n_classes=0)")
            return e
        if labels is None:
            labels = torch.full((e.shape[0],), self.n_classes, device=e.device)
        return e + self.table(labels.long()).to(e.dtype)


class ConditionalMLP(nn.Module):
    """MLP on flattened examples whose every hidden layer is shifted by an embedding of ``c``.

    Arguments:
        data_shape: shape of one example (flattened to ``d`` inputs and outputs).
        hidden: width of the hidden layers.
        depth: number of hidden layers (>= 1).
        activation: activation by name (see ``genzoo.models.nn.ACTIVATIONS``).
        emb_dim: size of the sinusoidal embedding of ``c``.
        n_classes: ``K`` > 0 adds a class embedding (``K`` classes and the null class ``K``)
            to the embedding of ``c``; 0: no class.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: int = 128,
        depth: int = 3,
        activation: str = "silu",
        emb_dim: int = 64,
        n_classes: int = 0,
    ) -> None:
        super().__init__()
        if hidden < 1 or depth < 1:
            raise ValueError(f"need hidden >= 1 and depth >= 1; got {hidden=}, {depth=}")
        self.data_shape = tuple(data_shape)
        d = math.prod(self.data_shape)
        self.embed = SinusoidalEmbedding(emb_dim)
        self.inp = nn.Linear(d, hidden)
        self.conds = nn.ModuleList(nn.Linear(emb_dim, hidden) for _ in range(depth))
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.out = nn.Linear(hidden, d)
        self.act = get_activation(activation)
        self.classes = ClassEmbedding(n_classes, emb_dim)

    def forward(self, x: Tensor, c: Tensor, labels: Tensor | None = None) -> Tensor:
        e = self.classes(self.embed(c), labels)  # (batch, emb_dim)
        h = self.inp(x.flatten(1))  # (batch, hidden)
        for i, cond in enumerate(self.conds):
            h = self.act(h + cond(e))
            if i < len(self.layers):
                h = self.layers[i](h)
        return self.out(h).reshape(x.shape)


class ResBlock(nn.Module):
    """``GroupNorm -> act -> conv3x3`` twice, the embedding added in between; residual."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, activation: str) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = get_activation(activation)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.emb(e)[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return self.skip(x) + h


def _groups(channels: int) -> int:
    return 8 if channels % 8 == 0 else 1


class SmallUNet(nn.Module):
    """A two-resolution U-Net (``H x W`` and ``H/2 x W/2``) for small images like 8x8 digits.

    ``(batch, C, H, W), (batch,) -> (batch, C, H, W)``; ``H`` and ``W`` must be even.
    After Ho et al. (2020, appendix B), shrunk to two resolutions without attention. With
    ``n_classes`` > 0 a class embedding is added to the time embedding (after its MLP), which
    every residual block reads.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        channels: int = 32,
        activation: str = "silu",
        emb_dim: int = 64,
        n_classes: int = 0,
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        if len(self.data_shape) != 3 or self.data_shape[1] % 2 or self.data_shape[2] % 2:
            raise ValueError(
                f"SmallUNet needs images shaped (channels, H, W) with even H and W; got "
                f"{self.data_shape}. Use network='mlp' for other shapes"
            )
        c_img, ch = self.data_shape[0], int(channels)
        if ch < 1:
            raise ValueError(f"channels must be >= 1; got {channels}")
        self.embed = nn.Sequential(
            SinusoidalEmbedding(emb_dim), nn.Linear(emb_dim, emb_dim), get_activation(activation)
        )
        self.inp = nn.Conv2d(c_img, ch, 3, padding=1)
        self.down1 = ResBlock(ch, ch, emb_dim, activation)  # H x W
        self.pool = nn.Conv2d(ch, ch, 3, stride=2, padding=1)  # H/2 x W/2
        self.down2 = ResBlock(ch, 2 * ch, emb_dim, activation)
        self.mid = ResBlock(2 * ch, 2 * ch, emb_dim, activation)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2 * ch, ch, 3, padding=1))
        self.up1 = ResBlock(2 * ch, ch, emb_dim, activation)  # skip from down1 concatenated
        self.out = nn.Sequential(
            nn.GroupNorm(_groups(ch), ch), get_activation(activation), nn.Conv2d(ch, c_img, 3, 1, 1)
        )
        self.classes = ClassEmbedding(n_classes, emb_dim)

    def forward(self, x: Tensor, c: Tensor, labels: Tensor | None = None) -> Tensor:
        e = self.classes(self.embed(c), labels)  # (batch, emb_dim)
        h1 = self.down1(self.inp(x), e)  # (batch, ch, H, W)
        h = self.down2(self.pool(h1), e)  # (batch, 2ch, H/2, W/2)
        h = self.mid(h, e)
        h = self.up1(torch.cat([self.up(h), h1], dim=1), e)  # (batch, ch, H, W)
        return self.out(h)


def build_network(
    data_shape: Sequence[int],
    network: str = "auto",
    hidden: int = 128,
    depth: int = 3,
    channels: int = 32,
    activation: str = "silu",
    n_classes: int = 0,
) -> nn.Module:
    """The noise-conditional network for ``data_shape``: ``"auto"`` picks a U-Net for images;
    ``n_classes`` > 0 makes it class-conditional too (with a null class ``n_classes``)."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}; got {network!r}")
    shape = tuple(data_shape)
    if network == "auto":
        image = len(shape) == 3 and shape[1] % 2 == 0 and shape[2] % 2 == 0 and shape[1] >= 4
        network = "unet" if image else "mlp"
    if network == "unet":
        return SmallUNet(shape, channels=channels, activation=activation, n_classes=n_classes)
    return ConditionalMLP(
        shape, hidden=hidden, depth=depth, activation=activation, n_classes=n_classes
    )
