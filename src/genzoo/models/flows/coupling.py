"""Coupling layers: transform part of the features conditioned on the rest.

A conditional flow's couplings also read a context (its condition as a vector): the
conditioner network sees it beside the kept features, concatenated to its input (for images,
as constant extra channels), so ``s`` and ``t`` depend on the condition while the Jacobian
stays triangular: the conditional coupling of Winkler et al. 2019.

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017
    (arXiv:1605.08803), section 3.
    Kingma & Dhariwal, "Glow: Generative flow with invertible 1x1 convolutions",
    NeurIPS 2018 (arXiv:1807.03039), section 3.3.
    Winkler, Worrall, Hoogeboom & Welling, "Learning likelihoods with conditional
    normalizing flows", arXiv:1912.00042, 2019 (conditional couplings).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genzoo.models.flows.transforms import Transform
from genzoo.models.nn import MLP, get_activation


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
        scale_bound: bound on ``|s|``, > 0 (for ``scale="tanh"``).
        scale: ``"tanh"`` (the soft clamp above) or ``"sigmoid"``, Glow's
            ``exp(s) = sigmoid(s_raw + 2)`` (Kingma & Dhariwal 2018, official code).
        context_features: size of the context a conditional flow passes (0: none); the
            conditioner reads ``[b*x, context]``.

    Example:
        >>> layer = AffineCoupling(torch.tensor([1.0, 0.0]), hidden=(16,))
        >>> x = torch.randn(8, 2)
        >>> y, ladj = layer(x)
        >>> torch.allclose(y, x), ladj.shape
        (True, torch.Size([8]))
    """

    takes_context = True

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int] = (128, 128),
        activation: str = "relu",
        scale_bound: float = 3.0,
        scale: str = "tanh",
        context_features: int = 0,
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
        self.scale = check_scale(scale)
        self.register_buffer("mask", mask)
        d = len(mask)
        self.context_features = int(context_features)
        self.net = MLP(
            d + self.context_features, 2 * d, hidden=hidden, activation=activation, zero_last=True
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _couple(self, x, inverse=False, context=context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _couple(self, y, inverse=True, context=context)


def with_context(kept: Tensor, context: Tensor | None, expected: int) -> Tensor:
    """The conditioner's input: ``kept`` features ``(batch, d)`` or ``(batch, c, h, w)``, and
    the context ``(batch, expected)`` beside them (as constant channels for images)."""
    if not expected:
        return kept
    if context is None or context.shape != (kept.shape[0], expected):
        got = None if context is None else tuple(context.shape)
        raise ValueError(f"this coupling reads a context of {expected} features; got {got}")
    if kept.ndim == 4:
        context = context[:, :, None, None].expand(-1, -1, *kept.shape[2:])
    return torch.cat([kept, context.to(kept.dtype)], dim=1)


SCALES = ("tanh", "sigmoid")


def check_scale(scale: str) -> str:
    """Refuse an unknown way of bounding the coupling log-scale."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}; got {scale!r}")
    return scale


def log_scale(raw: Tensor, scale: str, bound: float) -> Tensor:
    """The coupling log-scale from the network's raw output, bounded as ``scale`` says."""
    if scale == "sigmoid":
        return torch.nn.functional.logsigmoid(raw + 2.0)  # Glow: exp(s) = sigmoid(raw + 2)
    return bound * torch.tanh(raw / bound)  # soft clamp to (-bound, bound)


def _couple(layer, v: Tensor, inverse: bool, context: Tensor | None) -> tuple[Tensor, Tensor]:
    """Masked affine coupling (eq. 9 of RealNVP) of ``layer`` in either direction.

    The channel (or feature) dimension is 1; the network's output stacks ``s`` and ``t``
    along it. The kept part ``v * mask`` is the same before and after the layer; the
    network reads it with the context, if the layer takes one. ``s`` and ``t`` are zero on the
    kept part (masked), where ``v * exp(s) + t`` is then ``v`` itself, exactly: eq. (9)
    without its separate ``b * x`` term.
    """
    net_input = with_context(v * layer.mask, context, layer.context_features)
    raw_s, t = layer.net(net_input).chunk(2, dim=1)
    free = 1 - layer.mask
    s = log_scale(raw_s, layer.scale, layer.scale_bound) * free
    t = t * free
    if inverse:
        return (v - t) * torch.exp(-s), -s.flatten(1).sum(1)
    return v * torch.exp(s) + t, s.flatten(1).sum(1)  # eq. (9)


def checkerboard_mask(shape: Sequence[int], parity: int) -> Tensor:
    """Spatial checkerboard mask (RealNVP fig. 3, left) shaped ``(c, h, w)``."""
    c, h, w = shape
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    board = ((i + j + parity) % 2 == 0).to(torch.get_default_dtype())
    return board.expand(c, h, w).clone()


def channel_mask(shape: Sequence[int], parity: int) -> Tensor:
    """Channel-wise mask (RealNVP fig. 3, right) shaped ``(c, h, w)``: one half of channels."""
    c, h, w = shape
    first = (torch.arange(c) < c // 2).to(torch.get_default_dtype())
    keep = first if parity % 2 == 0 else 1 - first
    return keep[:, None, None].expand(c, h, w).clone()


class ConvNet(torch.nn.Sequential):
    """The conditioner of image couplings: 3x3 conv, 1x1 conv, 3x3 conv (zero-initialised).

    As in Glow's ``NN()`` (Kingma & Dhariwal 2018, section 3.3): it starts at the constant 0,
    so the coupling starts at (almost) the identity.
    ``(batch, c_in, h, w) -> (batch, c_out, h, w)``.
    """

    def __init__(self, c_in: int, c_out: int, hidden: int, activation: str = "relu") -> None:
        last = torch.nn.Conv2d(hidden, c_out, 3, padding=1)
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        super().__init__(
            torch.nn.Conv2d(c_in, hidden, 3, padding=1),
            get_activation(activation),
            torch.nn.Conv2d(hidden, hidden, 1),
            get_activation(activation),
            last,
        )


class ConvAffineCoupling(Transform):
    """Affine coupling on images ``(batch, c, h, w)`` with a checkerboard or channel mask.

    RealNVP section 3.4-3.5 (Dinh et al. 2017) and Glow's affine coupling (table 1):
    ``y = mask*x + (1-mask)*(x*exp(s) + t)`` with ``(s, t) = NN(mask*x)``,
    ``log|det| = sum((1-mask)*s)``.

    Arguments:
        mask: binary tensor shaped ``(c, h, w)``, see ``checkerboard_mask``/``channel_mask``.
        hidden: channels of the conditioner's hidden layers.
        activation: the conditioner's activation, by name.
        scale_bound: bound on ``|s|`` for ``scale="tanh"``.
        scale: ``"tanh"`` or ``"sigmoid"`` (Glow).
        context_features: size of a conditional flow's context (0: none), read by the
            conditioner as that many constant extra input channels.
    """

    takes_context = True

    def __init__(
        self,
        mask: Tensor,
        hidden: int = 64,
        activation: str = "relu",
        scale_bound: float = 3.0,
        scale: str = "tanh",
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if mask.ndim != 3:
            raise ValueError(
                f"image coupling needs a (c, h, w) mask; got shape {tuple(mask.shape)}"
            )
        self.scale_bound = float(scale_bound)
        self.scale = check_scale(scale)
        self.register_buffer("mask", mask.to(torch.get_default_dtype()))
        c = mask.shape[0]
        self.context_features = int(context_features)
        self.net = ConvNet(c + self.context_features, 2 * c, int(hidden), activation)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _couple(self, x, inverse=False, context=context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _couple(self, y, inverse=True, context=context)
