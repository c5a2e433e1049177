"""PixelCNN: masked convolutions give every pixel's conditional in one pass.

Reference:
    van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel recurrent neural networks", ICML 2016
    (section 3.5 and figure 4: PixelCNN, masks A and B).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genzoo.models.autoregressive.common import RasterModel
from genzoo.registry import register_model


class MaskedConv2d(nn.Conv2d):
    """Convolution seeing only pixels above, and left on the same row, in raster order.

    Mask ``"A"`` (first layer) also hides the centre pixel; mask ``"B"`` lets it through, so a
    stack ``A, B, B, ...`` never lets output ``(i, j)`` see input ``(i, j)`` or later pixels.
    """

    def __init__(self, mask: str, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        m = torch.ones_like(self.weight)
        c = kernel // 2
        m[:, :, c, c + (mask == "B") :] = 0
        m[:, :, c + 1 :] = 0
        self.register_buffer("mask", m)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class ResidualBlock(nn.Module):
    """``h + conv1x1(relu(maskedB(relu(conv1x1(relu(h))))))`` (the paper's residual block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels // 2, 1),
            nn.ReLU(),
            MaskedConv2d("B", channels // 2, channels // 2, 3),
            nn.ReLU(),
            nn.Conv2d(channels // 2, channels, 1),
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


@register_model("pixelcnn", family="autoregressive")
class PixelCNN(RasterModel):
    """PixelCNN (van den Oord et al. 2016): ``P(x) = prod_{pixels} P(x_ij | pixels before)``.

    A mask-A convolution, residual blocks of mask-B convolutions and 1x1 convolutions give a
    softmax over ``levels`` values for each pixel (eq. 1-2); loss: cross-entropy per pixel.
    Single-channel images only; sampling takes one pass per pixel, over the window of the
    image that pixel's logits read (:meth:`reach`), not the whole image.

    Arguments:
        data_shape: ``[1, H, W]``.
        levels: grey levels (2 for binary images).
        channels: feature maps (even).
        n_layers: residual blocks.
        kernel: size of the first, mask-A convolution (odd).
        temperature: default sampling temperature (see ``RasterModel``).
    """

    data_kinds = ("image",)

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        channels: int = 64,
        n_layers: int = 4,
        kernel: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, levels, **kwargs)
        if len(self.data_shape) != 3 or self.data_shape[0] != 1:
            raise ValueError(
                f"pixelcnn takes single-channel images shaped (n, 1, H, W); got examples shaped "
                f"{self.data_shape}: use made for vectors"
            )
        if channels < 2 or channels % 2 or kernel < 3 or kernel % 2 == 0 or n_layers < 0:
            raise ValueError("channels must be even >= 2, kernel odd >= 3, n_layers >= 0")
        self.kernel, self.n_layers = kernel, n_layers
        self.net = nn.Sequential(
            MaskedConv2d("A", 1, channels, kernel),
            *(ResidualBlock(channels) for _ in range(n_layers)),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, levels, 1),
        )

    def _logits(self, x: Tensor) -> Tensor:
        """``(n, 1, H, W)`` levels -> ``(n, H * W, levels)`` logits, raster order."""
        h = self.net(self._inputs(x))  # (n, levels, H, W)
        return h.flatten(2).transpose(1, 2)

    @property
    def reach(self) -> int:
        """How far (in rows up, and in columns either way) a pixel's logits read the image:
        the mask-A convolution ``kernel // 2``, each block's masked 3x3 convolution one more;
        the 1x1 convolutions none."""
        return self.kernel // 2 + self.n_layers

    def _conditional(self, x: Tensor) -> Callable[[int], Tensor]:
        """The logits of pixel ``d`` from a pass over the window of rows ``i - reach .. i``
        and columns ``j - reach .. j + reach`` around it (clipped to the image): the same
        values as a whole pass, since nothing outside the window reaches that pixel, and
        what the window's zero padding changes lies outside what reaches it too. At 64x64
        with the defaults (reach 7) a window is 8 x 15 pixels, 34x fewer than the image."""
        width, reach = self.data_shape[2], self.reach

        def conditional(d: int) -> Tensor:
            i, j = divmod(d, width)
            top, left = max(0, i - reach), max(0, j - reach)
            window = x[:, :, top : i + 1, left : j + reach + 1]
            return self.net(self._inputs(window))[:, :, -1, j - left]  # (n, levels)

        return conditional
