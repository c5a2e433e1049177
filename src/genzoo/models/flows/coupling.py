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
        self.register_buffer("free", 1 - mask, persistent=False)  # made once, not per call
        d = len(mask)
        self.context_features = int(context_features)
        self.net = MLP(
            d + self.context_features, 2 * d, hidden=hidden, activation=activation, zero_last=True
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _couple(self, x, inverse=False, context=context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _couple(self, y, inverse=True, context=context)

    def fusable(self) -> bool:
        """Whether ``forward`` runs as one fused node (``fused_couplings``, the same maths):
        a ReLU MLP conditioner, the tanh log-scale, and not while ``torch.compile`` traces
        (the compiler fuses the plain ops itself) nor under autocast (mixed precision casts
        each operation; the fused backward computes in the weights' dtype)."""
        return (self.scale == "tanh" and not torch.compiler.is_compiling()
                and not _autocasting() and _relu_mlp(self.net))  # fmt: skip

    @staticmethod
    def fused_forward(layers: Sequence[Transform], x: Tensor, context: Tensor | None):
        """Consecutive fusable couplings of a ``Compose`` in one node: ``fused_couplings``."""
        return fused_couplings(layers, x, context)


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


def _autocasting() -> bool:
    """Whether mixed precision (``torch.autocast``) is on for the CPU or CUDA."""
    return torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")


def _relu_mlp(net: torch.nn.Module) -> bool:
    """Whether ``net`` is an ``MLP`` of ``Linear`` layers with ReLUs between them (the vector
    couplings' default conditioner), which ``fused_couplings`` computes by hand."""
    layers = list(net) if isinstance(net, MLP) else []
    return bool(layers) and all(
        isinstance(m, torch.nn.Linear) if i % 2 == 0 else type(m) is torch.nn.ReLU
        for i, m in enumerate(layers)
    )


def relu_mlp_forward(h: Tensor, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """``Linear -> ReLU -> ... -> Linear`` on ``h`` with ``params = [W_1, c_1, ..., W, c]``,
    without autograd: the output and the inputs of the linear layers (for the backward)."""
    hs = [h]
    for w, c in zip(params[0:-2:2], params[1:-2:2], strict=True):
        h = torch.addmm(c, h, w.t()).relu_()
        hs.append(h)
    return torch.nn.functional.linear(h, params[-2], params[-1]), hs


def relu_mlp_backward(
    g: Tensor, hs: Sequence[Tensor], params: Sequence[Tensor], need_input: bool
) -> tuple[Tensor | None, list[Tensor]]:
    """The closed-form backward of ``relu_mlp_forward``: from ``g = dL/d(output)``, the
    gradient of its input (``None`` unless ``need_input``) and ``[dW_1, dc_1, ..., dW, dc]``.

    Each product is ordered so that its output is not a matrix of a few columns: on a CPU such
    a skinny product (``(64, 512) @ (512, 2)``) costs as much as a 64x64 one, its transpose
    (``(2, 512) @ (512, 64)``) a fifth of that."""
    grads: list[Tensor] = []
    for i in reversed(range(len(hs))):
        h, w = hs[i], params[2 * i]
        wide = w.shape[1] >= w.shape[0]  # weight (out, in): which product is not skinny
        grads += [g.sum(0), g.t() @ h if wide else (h.t() @ g).t()]  # bias, weight
        if i == 0 and not need_input:
            return None, grads[::-1]
        g = g @ (w if wide else w.t().contiguous().t())  # a column-major narrow weight
        if i > 0:  # through the ReLU whose output h is
            g = torch.ops.aten.threshold_backward(g, h, 0)
    return g, grads[::-1]


def _reference_couplings(v: Tensor, context: Tensor | None, layers: tuple, tensors) -> tuple:
    """The fused couplings' maths op by op (autograd's own backward), for a second derivative."""
    ladj = None
    at = 0
    for _, bound, size in layers:
        mask, free, params = tensors[at], tensors[at + 1], tensors[at + 2 : at + size]
        at += size
        h = v * mask if context is None else torch.cat([v * mask, context], dim=1)
        for w, c in zip(params[0:-2:2], params[1:-2:2], strict=True):
            h = torch.relu(torch.nn.functional.linear(h, w, c))
        raw, t = torch.nn.functional.linear(h, params[-2], params[-1]).chunk(2, dim=1)
        s = bound * torch.tanh(raw / bound) * free
        v = v * torch.exp(s) + t * free
        ladj = s.sum(1) if ladj is None else ladj + s.sum(1)
    return v, ladj


class _FusedCouplings(torch.autograd.Function):
    """Consecutive affine couplings (eq. 9) with ReLU MLP conditioners and the tanh-clamped
    log-scale, as one autograd node with its closed-form backward (issue 19).

    Forward, for each layer with mask ``b``, ``free = 1 - b`` and bound ``B``: ``h_0 = [b*v,
    context]``, ``h_i = relu(h_{i-1} W_i^T + c_i)``, ``(r, t) = h_L W^T + c``, ``s = B tanh(r /
    B) * free``, ``y = v * exp(s) + t * free``, ``ladj += sum(s)``: the module-by-module path's
    values. Backward, layer by layer from the last, with ``g_y`` and ``g_l``: ``dL/dr = (g_y v
    exp(s) + g_l) free (1 - tanh^2)``, ``dL/dt = g_y free``, the MLP's backward to ``g_h0``,
    then ``dL/dv = g_y exp(s) + b g_h0`` (and the context's share of ``g_h0``), each matrix
    product ordered so that its output is not a 2- or 4-column matrix (such skinny products
    cost as much as the 64x64 ones on a CPU). A small flow's training step is mostly the
    per-operator and per-node overhead this removes. Under ``create_graph`` (a second
    derivative) the backward differentiates the op-by-op maths instead.

    ``layers`` holds ``(features, bound, size)`` per coupling, ``size`` counting its tensors
    in ``tensors``: ``mask, free, W_1, c_1, ..., W, c``.
    """

    @staticmethod
    def forward(ctx, v: Tensor, context: Tensor | None, layers: tuple, *tensors: Tensor):  # type: ignore[override]
        ladj, saved, at = None, [], 0
        for _, bound, size in layers:
            mask, free, params = tensors[at], tensors[at + 1], tensors[at + 2 : at + size]
            at += size
            h = v * mask if context is None else torch.cat([v * mask, context], dim=1)
            out, hs = relu_mlp_forward(h, params)
            saved += hs
            raw, t = out.chunk(2, dim=1)
            th = torch.tanh(raw / bound)
            s = th.mul(free).mul_(bound)
            es = s.exp()
            saved += [v, th, es]
            v = torch.addcmul(t * free, v, es)
            ladj = s.sum(1) if ladj is None else ladj.add_(s.sum(1))
        ctx.layers, ctx.has_context = layers, context is not None
        ctx.save_for_backward(*saved, *tensors, *([context] if context is not None else []))
        return v, ladj

    @staticmethod
    def backward(ctx, g_y: Tensor, g_l: Tensor):  # type: ignore[override]
        layers = ctx.layers
        saved = list(ctx.saved_tensors)
        context = saved.pop() if ctx.has_context else None
        tensors = saved[len(saved) - sum(size for *_, size in layers) :]
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            v = saved[(layers[0][2] - 2) // 2]  # the first layer's input, after its h's
            return _differentiable_backward(ctx, v, context, layers, tensors, g_y, g_l)
        need_input = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        g_context = None
        grads: list[Tensor | None] = []
        at_saved, at = len(saved) - len(tensors), len(tensors)
        g_l = g_l[:, None]
        for k in reversed(range(len(layers))):
            features, _, size = layers[k]
            at -= size
            mask, free, params = tensors[at], tensors[at + 1], tensors[at + 2 : at + size]
            n = len(params) // 2
            at_saved -= n + 3
            hs = saved[at_saved : at_saved + n]
            v, th, es = saved[at_saved + n : at_saved + n + 3]
            g_v = g_y * es
            g_r = torch.addcmul(g_l, g_v, v).mul_(free).mul_(1.0 - th.square())
            g = torch.cat([g_r, g_y * free], dim=1)  # dL/d(raw, t), the last layer's output
            g, layer_grads = relu_mlp_backward(g, hs, params, k > 0 or need_input)
            grads = [None, None, *layer_grads, *grads]  # mask, free: none
            if g is None:
                g_y = None
                break
            if context is not None:
                share = g[:, features:]
                g_context = share if g_context is None else g_context + share
                g = g[:, :features]
            g_y = g_v.addcmul_(g, mask)  # dL/dv: through y and through b*v
        return g_y, g_context, None, *grads


def _differentiable_backward(ctx, v, context, layers, tensors, g_y, g_l) -> tuple:
    """The fused couplings' input gradients as a graph (``create_graph=True``), from their
    maths recomputed op by op on the saved inputs."""
    with torch.enable_grad():  # views: each input's own paths only
        inputs = [t.view_as(t) for t in (v, *([context] if context is not None else []), *tensors)]
        wanted = [ctx.needs_input_grad[0]] + (
            [ctx.needs_input_grad[1]] if context is not None else []
        )
        wanted += list(ctx.needs_input_grad[3:])
        ctx_in = inputs[1] if context is not None else None
        outputs = _reference_couplings(
            inputs[0], ctx_in, layers, inputs[len(inputs) - len(tensors) :]
        )
        needed = [t for t, want in zip(inputs, wanted, strict=True) if want]
        found = iter(torch.autograd.grad(outputs, needed, (g_y, g_l), create_graph=True,
                                         allow_unused=True))  # fmt: skip
    grads = [next(found) if want else None for want in wanted]
    g_context = grads.pop(1) if context is not None else None
    return grads[0], g_context, None, *grads[1:]


def fused_couplings(couplings: Sequence[AffineCoupling], x: Tensor, context: Tensor | None):
    """Apply consecutive ``AffineCoupling`` layers that are ``fusable`` as one autograd node
    (``_FusedCouplings``); returns ``(y, log|det dy/dx|)`` like their ``forward`` in turn."""
    expected = couplings[0].context_features
    if any(layer.context_features != expected for layer in couplings):  # one at a time
        ladj = None
        for layer in couplings:
            x, step = fused_couplings([layer], x, context)
            ladj = step if ladj is None else ladj + step
        return x, ladj
    if expected and (context is None or context.shape != (x.shape[0], expected)):
        with_context(x, context, expected)  # raises its one-line error
    layers, tensors = [], []
    for layer in couplings:
        params = [p for m in list(layer.net)[::2] for p in (m.weight, m.bias)]
        layers.append((len(layer.mask), layer.scale_bound, 2 + len(params)))
        tensors += [layer.mask, layer.free, *params]
    context = context.to(x.dtype) if expected else None
    return _FusedCouplings.apply(x, context, tuple(layers), *tensors)


def _couple(layer, v: Tensor, inverse: bool, context: Tensor | None) -> tuple[Tensor, Tensor]:
    """Masked affine coupling (eq. 9 of RealNVP) of ``layer`` in either direction.

    The channel (or feature) dimension is 1; the network's output stacks ``s`` and ``t``
    along it. The kept part ``v * mask`` is the same before and after the layer; the
    network reads it with the context, if the layer takes one. ``s`` and ``t`` are zero on the
    kept part (masked), where ``v * exp(s) + t`` is then ``v`` itself, exactly: eq. (9)
    without its separate ``b * x`` term.
    """
    if not inverse and layer.fusable():  # one node, closed-form backward
        return fused_couplings([layer], v, context)
    net_input = with_context(v * layer.mask, context, layer.context_features)
    free = layer.free
    raw_s, t = layer.net(net_input).chunk(2, dim=1)
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
        self.register_buffer("free", 1 - self.mask, persistent=False)  # made once, not per call
        c = mask.shape[0]
        self.context_features = int(context_features)
        self.net = ConvNet(c + self.context_features, 2 * c, int(hidden), activation)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _couple(self, x, inverse=False, context=context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _couple(self, y, inverse=True, context=context)
