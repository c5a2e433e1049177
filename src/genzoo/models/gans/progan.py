"""ProGAN: progressive growing of generator and discriminator, with fade-in.

References:
    Karras, Aila, Laine & Lehtinen, "Progressive growing of GANs for improved quality,
    stability, and variation", ICLR 2018.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import DataError
from genzoo.models.gans.base import KarrasGAN
from genzoo.models.gans.layers import EqualConv2d, EqualLinear, minibatch_stddev, pixel_norm
from genzoo.models.gans.losses import generator_loss
from genzoo.models.gans.nets import OUTPUTS, check_sizes, image_pyramid
from genzoo.registry import register_model


def _act(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GrowingGenerator(nn.Module):
    """``z -> (C, h0, w0) -> ... -> (C, h_l, w_l) -> toRGB``, faded in at the newest level."""

    def __init__(
        self, latent_dim: int, channels: int, image_channels: int,
        sizes: Sequence[tuple[int, int]], output: str,
    ) -> None:  # fmt: skip
        super().__init__()
        self.base = (channels, *sizes[0])
        self.project = EqualLinear(latent_dim, channels * sizes[0][0] * sizes[0][1])
        self.first = EqualConv2d(channels, channels, 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualConv2d(channels, channels, 3), EqualConv2d(channels, channels, 3)])
            for _ in sizes[1:]
        )
        self.to_rgb = nn.ModuleList(EqualConv2d(channels, image_channels, 1) for _ in sizes)
        self.out = OUTPUTS[output]()

    def forward(self, z: Tensor, level: int, alpha: float) -> Tensor:
        """Images at resolution ``level`` ``(n, C, h_level, w_level)``."""
        h = pixel_norm(_act(self.project(pixel_norm(z)).reshape(-1, *self.base)))
        h = pixel_norm(_act(self.first(h)))
        previous = h
        for block in self.blocks[:level]:
            previous = h
            h = _up(h)
            for conv in block:
                h = pixel_norm(_act(conv(h)))
        image = self.to_rgb[level](h)
        if level > 0 and alpha < 1:  # §2 fade-in: blend with the upsampled previous output
            image = alpha * image + (1 - alpha) * _up(self.to_rgb[level - 1](previous))
        return self.out(image)


class GrowingDiscriminator(nn.Module):
    """``fromRGB -> ... -> (C, h0, w0) -> minibatch std -> score``, mirroring the generator."""

    def __init__(
        self, channels: int, image_channels: int, sizes: Sequence[tuple[int, int]]
    ) -> None:
        super().__init__()
        self.from_rgb = nn.ModuleList(EqualConv2d(image_channels, channels, 1) for _ in sizes)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualConv2d(channels, channels, 3), EqualConv2d(channels, channels, 3)])
            for _ in sizes[1:]
        )
        self.last_conv = EqualConv2d(channels + 1, channels, 3)
        self.last_dense = EqualLinear(channels * sizes[0][0] * sizes[0][1], channels)
        self.head = EqualLinear(channels, 1)

    def _block(self, index: int, h: Tensor) -> Tensor:
        for conv in self.blocks[index]:
            h = _act(conv(h))
        return F.avg_pool2d(h, 2)

    def forward(self, x: Tensor, level: int, alpha: float) -> Tensor:
        """Scores ``(n,)`` of images at resolution ``level``."""
        h = _act(self.from_rgb[level](x))
        if level > 0:
            h = self._block(level - 1, h)
            if alpha < 1:  # fade-in: blend with the previous fromRGB on the downsampled input
                h = alpha * h + (1 - alpha) * _act(self.from_rgb[level - 1](F.avg_pool2d(x, 2)))
        for index in range(level - 2, -1, -1):
            h = self._block(index, h)
        h = _act(self.last_conv(minibatch_stddev(h)))
        return self.head(_act(self.last_dense(h.flatten(1)))).squeeze(-1)


@register_model("progan", family="gan")
class ProGAN(KarrasGAN):
    """ProGAN (Karras et al. 2018): progressive growing with fade-in, images only.

    Training starts at the base resolution (4x4 for 8x8 digits; the data's size halved
    while it stays >= 4) and doubles it up to the data's: with ``P = steps_per_phase``
    generator steps per phase, phase 0 trains the base, then each new level fades in over
    ``P`` steps (``alpha`` from 0 to 1, §2, Fig. 2: ``(1 - alpha) up(toRGB_old) +
    alpha toRGB_new``; real images are blended the same way) and is trained stable for ``P``
    steps. Layers use the equalised learning rate and pixel norm (§4), the discriminator the
    minibatch standard deviation (§3). Loss: WGAN-GP with the drift term
    ``drift E D(x)^2`` (§A.1), Adam betas (0, 0.99). Samples below the full resolution (early
    in training) are upsampled to the data's size. The number of generator steps taken is
    the buffer ``steps_done``, saved with the weights.

    Arguments:
        data_shape: ``(C, H, W)`` images.
        channels: feature maps at every resolution.
        steps_per_phase: generator steps of each fade-in and each stable phase.
        drift: weight of the drift term (0.001 in the paper).
        loss, penalty: the paper's WGAN-GP (``loss`` one of ``genzoo.models.gans.LOSSES``,
            ``penalty`` as :class:`genzoo.models.gans.GAN`).
        The other arguments (``latent_dim``, ``ema_decay``, ``output``, ``penalty_weight``,
        ``n_critic``) are those of ``stylegan`` too (:class:`KarrasGAN`), as
        :class:`genzoo.models.gans.GAN`.
    """

    data_kinds = ("image",)

    def __init__(
        self,
        data_shape: Sequence[int],
        channels: int = 64,
        steps_per_phase: int = 500,
        drift: float = 0.001,
        loss: str = "wasserstein",
        penalty: str = "gp",
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, loss=loss, penalty=penalty, **kwargs)
        if len(self.data_shape) != 3:
            raise DataError(
                f"progan grows images shaped (C, H, W); got examples shaped {self.data_shape}. "
                "For vectors use gan, wgan-gp or stylegan (which has an MLP form)"
            )
        check_sizes(channels=channels, steps_per_phase=steps_per_phase)
        if drift < 0:
            raise ValueError(f"drift must be >= 0; got {drift}")
        self.steps_per_phase, self.drift = int(steps_per_phase), float(drift)
        self.sizes = image_pyramid(*self.data_shape[1:])
        c, out = self.data_shape[0], self.output_kind
        self.generator = GrowingGenerator(self.latent_dim, channels, c, self.sizes, out)
        self.discriminator = GrowingDiscriminator(channels, c, self.sizes)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.init_ema()

    # -- growth -------------------------------------------------------------------------------
    def growth(self, steps: int | None = None) -> tuple[int, float]:
        """``(level, alpha)`` after ``steps`` generator steps (default: ``steps_done``)."""
        t = int(self.steps_done) if steps is None else int(steps)
        last, p = len(self.sizes) - 1, t // self.steps_per_phase
        if p >= 2 * last:
            return last, 1.0
        if p % 2:  # fading level (p + 1) / 2 in
            return (p + 1) // 2, (t % self.steps_per_phase) / self.steps_per_phase
        return p // 2, 1.0

    def after_step(self, player: str, step: int) -> None:
        super().after_step(player, step)
        if player == "generator":
            self.steps_done.fill_(step + 1)

    def real_at_level(self, x: Tensor, level: int, alpha: float) -> Tensor:
        """Real images average-pooled to ``level``'s resolution, faded like the fakes."""
        factor = 2 ** (len(self.sizes) - 1 - level)
        if factor > 1:
            x = F.avg_pool2d(x, factor)
        if level > 0 and alpha < 1:
            x = alpha * x + (1 - alpha) * _up(F.avg_pool2d(x, 2))
        return x

    # -- generating and the loss --------------------------------------------------------------
    def generate(
        self, n: int, generator: torch.Generator | None = None, ema: bool = False
    ) -> Tensor:
        """``n`` images at the current level, upsampled to the data's size."""
        level, alpha = self.growth()
        x = self.run_generator(self.draw_latent(n, generator), level, alpha, ema=ema)
        factor = 2 ** (len(self.sizes) - 1 - level)
        return F.interpolate(x, scale_factor=factor, mode="nearest") if factor > 1 else x

    def loss(self, batch: Tensor, player: str = "generator") -> dict[str, Tensor]:
        """WGAN-GP (+ drift) at the current resolution and fade-in."""
        level, alpha = self.growth()
        real = self.real_at_level(self.check_input(batch), level, alpha)
        z = self.draw_latent(real.shape[0])

        def critic(x: Tensor) -> Tensor:
            return self.discriminator(x, level, alpha)

        if player == "discriminator":
            with torch.no_grad():
                fake = self.generator(z, level, alpha)
            terms = self.discriminator_terms(real, fake, critic)
            if self.drift > 0:
                terms["drift"] = self.drift * critic(real).square().mean()
            state = torch.tensor([level, alpha], device=self.device, dtype=self.dtype)
            return terms | {"diag/level": state[0], "diag/alpha": state[1]}
        if player == "generator":
            fake = self.generator(z, level, alpha)
            terms = {"adversarial": generator_loss(self.loss_kind, critic(fake))}
            return terms | self.grad_norm_diag(player)
        raise ValueError(f"unknown player {player!r}; GANs have players {self.players}")
