"""Coupling layers: transform part of the features conditioned on the rest.

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017
    (arXiv:1605.08803), section 3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genzoo.models.flows.transforms import Transform
from genzoo.models.nn import MLP


def alternating_masks(features: int, n_layers: int) -> list[Tensor]:
    """Binary masks (1 = kept, 0 = transformed) for ``n_layers`` coupling layers.

    Consecutive layers use complementary masks, so every feature is transformed once in
    each pair of layers. The pairs alternate between an even/odd ("checkerboard") split
    and a first-half/second-half split, which mixes features that are far apart; for
    ``features == 2`` both splits coincide. Returns tensors shaped ``(features,)``.
    """
    if features < 2:
        raise ValueError(f"coupling layers need at least 2 features to split; got {features}")
    index = torch.arange(features)
    even_odd = (index % 2 == 0).float()
    halves = (index < (features + 1) // 2).float()
    masks = []
    for i in range(n_layers):
        base = even_odd if (i // 2) % 2 == 0 else halves
        masks.append(base if i % 2 == 0 else 1 - base)
    return masks


class AffineCoupling(Transform):
    """Affine coupling layer, eq. (9) of RealNVP, on ``(batch, d)`` tensors.

    With mask ``b``, ``y = b*x + (1-b)*(x*exp(s(b*x)) + t(b*x))`` and
    ``log|det dy/dx| = sum((1-b)*s(b*x))`` (eq. 6 and 8). One MLP gives ``s`` and ``t``;
    its last layer starts at zero, so the layer starts as the identity. The log-scale is
    soft-clamped, ``s = scale_bound * tanh(s_raw / scale_bound)``, so it stays within
    ``(-scale_bound, scale_bound)`` and training cannot blow up through ``exp(s)``.

    Arguments:
        mask: binary tensor shaped ``(d,)``; 1 marks the features that are kept and
            condition the others, 0 the features that are transformed.
        hidden: widths of the conditioner MLP's hidden layers.
        activation: the conditioner's activation (a name, see ``genzoo.models.nn``).
        scale_bound: bound on ``|s|``, > 0.

    Example:
        >>> layer = AffineCoupling(torch.tensor([1.0, 0.0]), hidden=(16,))
        >>> x = torch.randn(8, 2)
        >>> y, ladj = layer(x)
        >>> torch.allclose(y, x), ladj.shape
        (True, torch.Size([8]))
    """

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int] = (128, 128),
        activation: str = "relu",
        scale_bound: float = 3.0,
    ) -> None:
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.get_default_dtype())
        if mask.ndim != 1 or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must be a 1-D tensor of zeros and ones")
        if not 0 < int(mask.sum()) < len(mask):
            raise ValueError("mask must keep at least one feature and transform at least one")
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be > 0; got {scale_bound}")
        self.scale_bound = float(scale_bound)
        self.register_buffer("mask", mask)
        d = len(mask)
        self.net = MLP(d, 2 * d, hidden=hidden, activation=activation, zero_last=True)

    def _scale_shift(self, x_kept: Tensor) -> tuple[Tensor, Tensor]:
        """``s`` and ``t``, each ``(batch, d)``, zero on the kept features."""
        s, t = self.net(x_kept).chunk(2, dim=-1)
        s = self.scale_bound * torch.tanh(s / self.scale_bound)  # soft clamp of log-scale
        free = 1 - self.mask
        return s * free, t * free

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_kept = x * self.mask
        s, t = self._scale_shift(x_kept)
        y = x_kept + (1 - self.mask) * (x * torch.exp(s) + t)  # eq. (9)
        return y, s.sum(-1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        y_kept = y * self.mask  # equal to x * mask: the kept part passes through
        s, t = self._scale_shift(y_kept)
        x = y_kept + (1 - self.mask) * ((y - t) * torch.exp(-s))
        return x, -s.sum(-1)
