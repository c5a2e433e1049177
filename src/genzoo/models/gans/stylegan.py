"""StyleGAN, small: mapping network, style-modulated convolutions, noise inputs, mixing.

References:
    Karras, Laine & Aila, "A style-based generator architecture for generative adversarial
    networks", CVPR 2019.
    Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, "Analyzing and improving the image
    quality of StyleGAN", CVPR 2020 (weight demodulation, used here in place of AdaIN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.models.gans.base import KarrasGAN
from genzoo.models.gans.layers import EqualLinear, ModulatedConv2d, NoiseInput, pixel_norm
from genzoo.models.gans.nets import (
    OUTPUTS,
    Discriminator,
    check_gan_shape,
    check_sizes,
    image_pyramid,
    is_image,
    make_features,
)
from genzoo.registry import register_model


class MappingNetwork(nn.Module):
    """``f: z -> w``, an MLP on the pixel-normalised latent (StyleGAN §2, 8 layers there)."""

    def __init__(self, latent_dim: int, w_dim: int, depth: int) -> None:
        super().__init__()
        widths = [latent_dim] + [w_dim] * depth
        pairs = zip(widths[:-1], widths[1:], strict=True)
        self.layers = nn.ModuleList(EqualLinear(a, b) for a, b in pairs)

    def forward(self, z: Tensor) -> Tensor:
        h = pixel_norm(z)
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
        return h


class StyledConv(nn.Module):
    """[upsample x2] -> modulated conv (style from w) -> noise input -> bias -> leaky ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, upsample: bool
    ) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, w_dim)
        self.noise = NoiseInput(out_channels)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor, w: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return F.leaky_relu(self.noise(self.conv(x, w), generator) + self.bias, 0.2)


class StyleGenerator(nn.Module):
    """Mapping network + synthesis network from a learned constant.

    Images: 3x3 styled convolutions from a constant at the base grid, two per doubling.
    Vectors: the same network at 1x1 "pixels" (1x1 convolutions = per-example modulated
    linear layers), ``n_layers`` deep. One style per convolution, one for toRGB.
    """

    def __init__(
        self, latent_dim: int, w_dim: int, mapping_depth: int, channels: int,
        data_shape: Sequence[int], n_layers: int, output: str,
    ) -> None:  # fmt: skip
        super().__init__()
        self.data_shape = tuple(data_shape)
        if is_image(data_shape):
            sizes, k, out_channels = image_pyramid(*data_shape[1:]), 3, data_shape[0]
            plan = [False] + [True, False] * (len(sizes) - 1)
        else:
            sizes, k, out_channels = [(1, 1)], 1, data_shape[0]
            plan = [False] * n_layers
        self.mapping = MappingNetwork(latent_dim, w_dim, mapping_depth)
        self.const = nn.Parameter(torch.randn(1, channels, *sizes[0]))
        self.convs = nn.ModuleList(StyledConv(channels, channels, k, w_dim, up) for up in plan)
        self.to_rgb = ModulatedConv2d(channels, out_channels, 1, w_dim, demodulate=False)
        self.rgb_bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.out = OUTPUTS[output]()
        self.n_styles = len(plan) + 1

    def synthesize(self, ws: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Examples ``(n, *data_shape)`` from per-layer styles ``ws`` ``(n, n_styles, w_dim)``."""
        x = self.const.expand(ws.shape[0], *self.const.shape[1:])
        for i, conv in enumerate(self.convs):
            x = conv(x, ws[:, i], generator)
        x = self.out(self.to_rgb(x, ws[:, -1]) + self.rgb_bias)
        return x.reshape(-1, *self.data_shape)

    def forward(
        self,
        z: Tensor,
        generator: torch.Generator | None = None,
        z_mix: Tensor | None = None,
        crossover: Tensor | None = None,
    ) -> Tensor:
        """``G(z)``; with ``z_mix``, layers ``>= crossover`` (per example, ``(n,)``) take
        their style from ``z_mix`` (style mixing, StyleGAN §3.1)."""
        w = self.mapping(z)
        ws = w[:, None].expand(-1, self.n_styles, -1)
        if z_mix is not None:
            layer = torch.arange(self.n_styles, device=z.device)
            mixed = layer[None, :] >= crossover[:, None]  # (n, n_styles)
            ws = torch.where(mixed[..., None], self.mapping(z_mix)[:, None], ws)
        return self.synthesize(ws, generator)


@register_model("stylegan", family="gan")
class StyleGAN(KarrasGAN):
    """StyleGAN (Karras et al. 2019), small: mapping network, modulated convs, noise, mixing.

    A mapping network sends ``z`` to an intermediate latent ``w``; each layer of the
    synthesis network, which starts from a learned constant, receives its style through an
    affine map of ``w``. Styles modulate the convolution weights, which are then
    demodulated (StyleGAN2 eq. 1-3, the successor of the AdaIN of the 2019 paper, which
    works for 1x1 maps too); per-pixel noise with learned strengths adds stochastic detail.
    During training, with probability ``mixing_prob`` an example takes its styles from
    two latents switched at a random layer (style mixing regularisation, §3.1). Loss: the
    non-saturating GAN with R1 (gamma = ``penalty_weight``) as in the paper, Adam betas
    (0, 0.99), generator EMA.

    The discriminator is the DCGAN/MLP network of :mod:`.nets` (not the paper's ResNet).

    Arguments:
        data_shape: ``(C, H, W)`` images or ``(d,)`` vectors.
        w_dim: size of ``w``.
        mapping_depth: layers of the mapping network (8 in the paper).
        channels: feature maps of the synthesis network.
        n_layers: synthesis layers for vectors (images: one at the base grid + two per doubling).
        hidden, depth: the discriminator's width and (vectors) depth.
        mixing_prob: share of training fakes made by style mixing.
        penalty: R1, the paper's (as :class:`genzoo.models.gans.GAN`).
        The other arguments (``latent_dim``, the size of ``z``, ``loss``, one of
        ``genzoo.models.gans.LOSSES``, ``ema_decay``, ``output``, ``penalty_weight``,
        ``n_critic``) are those of ``progan`` too (:class:`KarrasGAN`), as
        :class:`genzoo.models.gans.GAN`.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        w_dim: int = 32,
        mapping_depth: int = 4,
        channels: int = 32,
        n_layers: int = 3,
        hidden: int = 64,
        depth: int = 2,
        mixing_prob: float = 0.9,
        penalty: str = "r1",
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, penalty=penalty, **kwargs)
        check_gan_shape(self.data_shape)
        check_sizes(w_dim=w_dim, mapping_depth=mapping_depth, channels=channels,
                    n_layers=n_layers, hidden=hidden, depth=depth)  # fmt: skip
        if not 0.0 <= mixing_prob <= 1.0:
            raise ValueError(f"mixing_prob must lie in [0, 1]; got {mixing_prob}")
        self.mixing_prob = float(mixing_prob)
        self.generator = StyleGenerator(self.latent_dim, w_dim, mapping_depth, channels,
                                        self.data_shape, n_layers, self.output_kind)  # fmt: skip
        self.discriminator = Discriminator(
            make_features(self.data_shape, hidden, depth, "leaky_relu"),
            bias=self.loss_kind != "wasserstein",
        )
        self.init_ema()

    @property
    def n_styles(self) -> int:
        """Number of per-layer styles (synthesis convolutions + toRGB)."""
        return self.generator.n_styles

    def generate(
        self, n: int, generator: torch.Generator | None = None, ema: bool = False
    ) -> Tensor:
        """``n`` examples, one latent each; noise inputs drawn from ``generator``."""
        return self.run_generator(self.draw_latent(n, generator), generator, ema=ema)

    def training_fakes(self, n: int) -> Tensor:
        """Fakes with style mixing: a share ``mixing_prob`` switch latents at a random layer."""
        z, z_mix = self.draw_latent(n), self.draw_latent(n)
        crossover = torch.randint(1, self.n_styles, (n,), device=self.device)
        keep = torch.rand(n, device=self.device) >= self.mixing_prob
        crossover = torch.where(keep, torch.full_like(crossover, self.n_styles), crossover)
        return self.generator(z, None, z_mix, crossover)

    @torch.no_grad()
    def mix_styles(
        self, z: Tensor, z_mix: Tensor, crossover: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Examples with styles of layers ``< crossover`` from ``z`` and the rest from ``z_mix``.

        ``z``, ``z_mix``: ``(n, latent_dim)``; uses the EMA weights when enabled.
        """
        if not 0 <= crossover <= self.n_styles:
            raise ValueError(f"crossover must lie in 0..{self.n_styles}; got {crossover}")
        z = z.to(device=self.device, dtype=self.dtype)
        z_mix = z_mix.to(device=self.device, dtype=self.dtype)
        cut = torch.full((z.shape[0],), crossover, device=self.device, dtype=torch.long)
        return self.run_generator(z, generator, z_mix, cut, ema=self.ema_decay > 0)
