"""Invertible transforms, the parts every flow is built from.

A transform maps a batch ``x`` shaped ``(batch, d)`` (or ``(batch, channels, height, width)``
for the image parts) to ``y`` and
returns, per example, ``log|det dy/dx|`` shaped ``(batch,)``. ``inverse`` goes back and
returns ``log|det dx/dy|`` (the negative of the forward one at the matching point).
By convention a flow's ``forward`` goes from data to noise.

A transform whose class sets ``takes_context`` also takes a context, ``forward(x, context)``
and ``inverse(y, context)``: the condition of a conditional flow as a vector ``(batch,
features)`` (``genzoo.models.conditioning.Context``), or ``None``. ``Compose`` passes it on to
the parts that take one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import ClassVar

import torch
from torch import Tensor, nn


class Transform(nn.Module):
    """Base class of invertible transforms on ``(batch, d)`` tensors."""

    #: ``forward(x, context)`` and ``inverse(y, context)`` take a context (or ``None``).
    takes_context: ClassVar[bool] = False

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``x`` ``(batch, d)`` to ``(y, log|det dy/dx|)`` shaped ``(batch, d), (batch,)``."""
        raise NotImplementedError

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``y`` ``(batch, d)`` back to ``(x, log|det dx/dy|)``."""
        raise NotImplementedError

    def fusable(self) -> bool:
        """Whether ``Compose`` may run this transform and its neighbours of the same class
        that are fusable too as one operation, ``type(self).fused_forward(layers, x,
        context)`` (the affine couplings' fused node): the same maths, less overhead."""
        return False


class Compose(Transform):
    """The transforms applied in order (``forward``) or in reverse order (``inverse``).

    Example:
        >>> t = Compose([Reverse(), Reverse()])
        >>> x = torch.randn(4, 3)
        >>> torch.equal(t(x)[0], x)
        True
    """

    takes_context = True

    def __init__(self, transforms: Iterable[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        groups: list[list[Transform]] = []  # runs of fusable transforms of one class
        previous_fusable = False
        for t in self.transforms:
            fusable = t.fusable()
            if fusable and previous_fusable and type(groups[-1][0]) is type(t):
                groups[-1].append(t)
            else:
                groups.append([t])
            previous_fusable = fusable
        ladj = None  # the first log-det starts the sum: no zeros to make and add
        for group in groups:
            t = group[0]
            if len(group) > 1:
                x, step = type(t).fused_forward(group, x, context)
            else:
                x, step = t(x, context) if t.takes_context else t(x)
            ladj = step if ladj is None else ladj + step
        return x, x.new_zeros(x.shape[0]) if ladj is None else ladj

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ladj = None
        for t in reversed(self.transforms):
            y, step = t.inverse(y, context) if t.takes_context else t.inverse(y)
            ladj = step if ladj is None else ladj + step
        return y, y.new_zeros(y.shape[0]) if ladj is None else ladj


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
        self.armed = False

    def arm(self) -> None:
        """Make the next forward pass ``fit`` the standardisation to its input."""
        self.armed = True

    @torch.no_grad()
    def fit(self, data: Tensor) -> None:
        """Set ``loc`` and ``log_scale`` from ``data`` shaped ``(n, d)``."""
        data = data.to(self.loc)
        self.loc.copy_(data.mean(0))
        std = data.std(0) if data.shape[0] > 1 else torch.ones_like(self.loc)
        self.log_scale.copy_(std.clamp_min(self.eps).log())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.armed:
            self.fit(x)
            self.armed = False
        y = (x - self.loc) * torch.exp(-self.log_scale)
        return y, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = y * torch.exp(self.log_scale) + self.loc
        return x, self.log_scale.sum().expand(y.shape[0])


class Flatten(Transform):
    """``(batch, *shape)`` to ``(batch, prod(shape))`` and back; volume-preserving."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flatten(1), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y.reshape(-1, *self.shape), y.new_zeros(y.shape[0])


def _spatial_size(x: Tensor) -> int:
    """Number of positions sharing one channel's parameters: ``prod(x.shape[2:])``."""
    return math.prod(x.shape[2:])


class ActNorm(Transform):
    """Activation normalisation, Glow (Kingma & Dhariwal 2018) section 3.1.

    A per-channel affine ``y = x * exp(log_scale) + bias`` on tensors shaped
    ``(batch, channels, *spatial)`` (vectors are ``(batch, channels)``), with
    ``log|det| = prod(spatial) * sum(log_scale)`` (table 1). Data-dependent initialisation:
    after ``arm()``, the next forward pass sets the parameters so that its outputs have zero
    mean and unit variance per channel.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = float(eps)
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.armed = False

    def arm(self) -> None:
        """Make the next forward pass initialise the parameters from its input."""
        self.armed = True

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        values = x.transpose(0, 1).flatten(1)  # (channels, batch * spatial)
        mean = values.mean(1)
        std = values.std(1) if values.shape[1] > 1 else torch.ones_like(mean)
        self.log_scale.copy_(-std.clamp_min(self.eps).log())
        self.bias.copy_(-mean * self.log_scale.exp())
        self.armed = False

    def _view(self, p: Tensor, x: Tensor) -> Tensor:
        return p.reshape(1, -1, *([1] * (x.ndim - 2)))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.armed:
            self._initialize(x)
        y = x * self._view(self.log_scale.exp(), x) + self._view(self.bias, x)
        return y, (self.log_scale.sum() * _spatial_size(x)).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = (y - self._view(self.bias, y)) * self._view((-self.log_scale).exp(), y)
        return x, (-self.log_scale.sum() * _spatial_size(y)).expand(y.shape[0])


class InvertibleLinear(Transform):
    """Invertible 1x1 convolution in LU form, Glow (Kingma & Dhariwal 2018) section 3.2.

    ``W = P L (U + diag(sign * exp(log_s)))`` with ``P`` a fixed permutation, ``L`` unit lower
    triangular and ``U`` strictly upper triangular (eq. 10), so ``log|det W| = sum(log_s)``
    costs O(c) instead of O(c^3). ``W`` mixes dimension 1 of ``(batch, channels, *spatial)``
    at every position (a 1x1 convolution; for vectors, a full linear map), and
    ``log|det| = prod(spatial) * sum(log_s)``. Starts at a random rotation.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        perm, lower, upper = torch.linalg.lu(w)
        s = upper.diagonal()
        self.register_buffer("perm", perm)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(upper * self.lower_mask.T)
        self.log_s = nn.Parameter(s.abs().log())

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(len(self.log_s), device=self.log_s.device, dtype=self.log_s.dtype)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return lower, upper

    def weight(self) -> Tensor:
        """The matrix ``W`` shaped ``(channels, channels)``."""
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def inverse_weight(self) -> Tensor:
        """``W^-1 = U^-1 L^-1 P^T`` by two triangular solves."""
        lower, upper = self._factors()
        inv = torch.linalg.solve_triangular(lower, self.perm.T, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, inv, upper=True)

    @staticmethod
    def _mix(w: Tensor, x: Tensor) -> Tensor:
        return torch.einsum("ij,bj...->bi...", w, x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._mix(self.weight(), x), (self.log_s.sum() * _spatial_size(x)).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = self._mix(self.inverse_weight(), y)
        return x, (-self.log_s.sum() * _spatial_size(y)).expand(y.shape[0])


class Logit(Transform):
    """Data in ``[0, 1]`` to the real line: ``y = logit(alpha + (1 - 2 alpha) x)``.

    The pre-processing of RealNVP (Dinh et al. 2017, section 4.1) for dequantised images;
    ``log|det| = sum(log(1 - 2 alpha) - log p - log(1 - p))`` with ``p = alpha + (1-2 alpha) x``,
    so a density on the logit scale becomes one on ``[0, 1]^D``. Examples with a value
    outside ``[0, 1]`` have zero density there: their log-det is ``-inf``. With
    ``alpha = 0`` the map is onto the real line and the density on ``[0, 1]^D`` integrates
    to exactly 1; with ``alpha > 0`` (the paper's 0.05) the mass the base puts beyond
    ``logit(alpha)`` is lost, so ``log p`` is a lower bound. ``p`` is kept within machine
    epsilon of ``(0, 1)`` so the values 0 and 1 themselves stay finite.
    """

    def __init__(self, alpha: float = 0.0) -> None:
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5); got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        outside = ((x < 0) | (x > 1)).flatten(1).any(1)
        eps = torch.finfo(x.dtype).eps
        p = (self.alpha + (1 - 2 * self.alpha) * x.clamp(0, 1)).clamp(eps, 1 - eps)
        y = p.log() - (-p).log1p()
        ladj = (math.log1p(-2 * self.alpha) - p.log() - (-p).log1p()).flatten(1).sum(1)
        return y, torch.where(outside, torch.full_like(ladj, -math.inf), ladj)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        p = torch.sigmoid(y)
        x = (p - self.alpha) / (1 - 2 * self.alpha)
        ladj = (p.log() + (-p).log1p() - math.log1p(-2 * self.alpha)).flatten(1).sum(1)
        return x, ladj
