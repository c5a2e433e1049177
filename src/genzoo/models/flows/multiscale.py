"""The multi-scale architecture for images: squeeze, levels of steps, factor-out.

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017,
    section 3.6 (squeezing, factoring out half of the dimensions at each scale).
    Kingma & Dhariwal, "Glow", NeurIPS 2018, figure 2 (squeeze, K steps of flow, split).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from genzoo.models.flows.transforms import Compose, Transform

Shape = tuple[int, int, int]
#: ``level(index, shape_in, last) -> (transforms, shape_out)``: the steps of one scale.
LevelFactory = Callable[[int, Shape, bool], tuple[list[Transform], Shape]]


class Squeeze(Transform):
    """``(batch, c, h, w) -> (batch, 4c, h/2, w/2)``: each 2x2 patch becomes 4 channels."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        y = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        b, c4, h, w = y.shape
        x = y.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c4 // 4, 2 * h, 2 * w), y.new_zeros(b)


def squeezed(shape: Shape) -> Shape:
    """The shape after ``Squeeze``."""
    c, h, w = shape
    return (4 * c, h // 2, w // 2)


class MultiScale(Transform):
    """Images ``(batch, c, h, w)`` to flat noise ``(batch, c*h*w)`` over several scales.

    Level ``i`` transforms the current tensor ``h_i`` (its couplings read the context of a
    conditional flow, if any); after every level but the last, half
    of its channels are factored out (they become part of ``z`` and are Gaussianised
    directly) and the rest go on to the next level. ``z`` is the concatenation of the
    factored-out parts, flattened, and the last level's output.

    Arguments:
        shape: ``(c, h, w)`` of one example.
        n_levels: number of scales (>= 1); ``h`` and ``w`` are halved ``n_levels`` times by
            the squeezes the levels contain, so they must be divisible by ``2**n_levels``.
        level: builds the transforms of one level from its index, its input shape and
            whether it is the last; returns them with the output shape.
    """

    takes_context = True

    def __init__(self, shape: Sequence[int], n_levels: int, level: LevelFactory) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        if n_levels < 1:
            raise ValueError(f"n_levels must be >= 1; got {n_levels}")
        levels, shapes = [], []
        for i in range(n_levels):
            last = i == n_levels - 1
            transforms, shape = level(i, shape, last)
            levels.append(Compose(transforms))
            shapes.append(shape)
            if not last:
                if shape[0] % 2:
                    raise ValueError(f"cannot factor out half of {shape[0]} channels")
                shape = (shape[0] // 2, *shape[1:])
        self.levels = nn.ModuleList(levels)
        self.shapes = shapes  # output shape of each level, before its split

    def _sizes(self) -> list[int]:
        parts = [math.prod(s) // 2 for s in self.shapes[:-1]]
        return [*parts, math.prod(self.shapes[-1])]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        zs, ladj, h = [], x.new_zeros(x.shape[0]), x
        for i, level in enumerate(self.levels):
            h, step = level(h, context)
            ladj = ladj + step
            if i < len(self.levels) - 1:
                z, h = h.chunk(2, dim=1)  # factor out half the channels
                zs.append(z.flatten(1))
        zs.append(h.flatten(1))
        return torch.cat(zs, dim=1), ladj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        parts = z.split(self._sizes(), dim=1)
        ladj = z.new_zeros(z.shape[0])
        h = parts[-1].reshape(-1, *self.shapes[-1])
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                c, hh, ww = self.shapes[i]
                h = torch.cat([parts[i].reshape(-1, c // 2, hh, ww), h], dim=1)
            h, step = self.levels[i].inverse(h, context)
            ladj = ladj + step
        return h, ladj


def check_multiscale_shape(shape: Sequence[int], n_levels: int) -> str | None:
    """Why ``shape`` cannot go through ``n_levels`` squeezes, or ``None`` if it can."""
    if len(shape) != 3:
        return f"the multi-scale architecture needs images shaped (c, h, w); got {tuple(shape)}"
    _, h, w = shape
    if h % 2**n_levels or w % 2**n_levels:
        return (
            f"height and width ({h}, {w}) must be divisible by 2**n_levels = {2**n_levels}; "
            "lower n_levels"
        )
    return None
