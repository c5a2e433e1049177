"""Invertible transforms of vectors, the parts every flow is built from.

A transform maps a batch ``x`` shaped ``(batch, d)`` to ``y`` of the same shape and
returns, per example, ``log|det dy/dx|`` shaped ``(batch,)``. ``inverse`` goes back and
returns ``log|det dx/dy|`` (the negative of the forward one at the matching point).
By convention a flow's ``forward`` goes from data to noise.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


class Transform(nn.Module):
    """Base class of invertible transforms on ``(batch, d)`` tensors."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``x`` ``(batch, d)`` to ``(y, log|det dy/dx|)`` shaped ``(batch, d), (batch,)``."""
        raise NotImplementedError

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``y`` ``(batch, d)`` back to ``(x, log|det dx/dy|)``."""
        raise NotImplementedError


class Compose(Transform):
    """The transforms applied in order (``forward``) or in reverse order (``inverse``).

    Example:
        >>> t = Compose([Reverse(), Reverse()])
        >>> x = torch.randn(4, 3)
        >>> torch.equal(t(x)[0], x)
        True
    """

    def __init__(self, transforms: Iterable[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ladj = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, step = t(x)
            ladj = ladj + step
        return x, ladj

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        ladj = y.new_zeros(y.shape[0])
        for t in reversed(self.transforms):
            y, step = t.inverse(y)
            ladj = ladj + step
        return y, ladj


class Permutation(Transform):
    """A fixed permutation of the features: ``y[:, i] = x[:, perm[i]]``; volume-preserving."""

    def __init__(self, perm: Tensor) -> None:
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        if not torch.equal(perm.sort().values, torch.arange(len(perm))):
            raise ValueError(f"not a permutation of 0..{len(perm) - 1}: {perm.tolist()}")
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", perm.argsort())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y[:, self.inv_perm], y.new_zeros(y.shape[0])


class Reverse(Transform):
    """Reverse the order of the features (a permutation needing no size); volume-preserving."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flip(-1), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y.flip(-1), y.new_zeros(y.shape[0])


class Standardize(Transform):
    """A fixed elementwise affine ``y = (x - loc) * exp(-log_scale)``, set from data.

    Not trained: ``loc`` and ``log_scale`` are buffers (saved with the model), the
    identity until ``fit`` sets them to the data's mean and log standard deviation.
    ``log|det dy/dx| = -sum(log_scale)`` for every example.

    Arguments:
        features: the size ``d`` of the vectors.
        eps: floor on the standard deviation, so constant features stay invertible.
    """

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("loc", torch.zeros(features))
        self.register_buffer("log_scale", torch.zeros(features))

    @torch.no_grad()
    def fit(self, data: Tensor) -> None:
        """Set ``loc`` and ``log_scale`` from ``data`` shaped ``(n, d)``."""
        data = data.to(self.loc)
        self.loc.copy_(data.mean(0))
        std = data.std(0) if data.shape[0] > 1 else torch.ones_like(self.loc)
        self.log_scale.copy_(std.clamp_min(self.eps).log())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = (x - self.loc) * torch.exp(-self.log_scale)
        return y, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = y * torch.exp(self.log_scale) + self.loc
        return x, self.log_scale.sum().expand(y.shape[0])
