"""MADE as a density model of discrete data: one masked network, exact likelihood.

Reference:
    Germain, Gregor, Murray & Larochelle, "MADE: Masked autoencoder for distribution
    estimation", ICML 2015 (arXiv:1502.03509).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from genzoo.models.autoregressive.common import RasterModel
from genzoo.models.flows import autoregressive as flow_parts
from genzoo.models.nn import ACTIVATIONS
from genzoo.registry import register_model


@register_model("made", family="autoregressive")
class MADE(RasterModel):
    """MADE (Germain et al. 2015): ``P(x) = prod_d P(x_d | x_<d)`` from one masked MLP.

    Masks on the weights make output ``d`` depend on inputs ``< d`` only (eq. 12-13), so a
    single pass gives every conditional; the loss is the cross-entropy of eq. 4 (per scalar).
    For binary data each conditional is a Bernoulli; with ``levels > 2``, a categorical.
    Examples are flattened in raster order; sampling takes ``D`` steps, each the hidden layers
    and one output row (:class:`IncrementalMADE`) rather than a whole pass.

    Arguments:
        data_shape: shape of one example, e.g. ``[1, 8, 8]``.
        levels: categories per scalar (2 for binary images).
        hidden: widths of the masked hidden layers.
        activation: by name.
        temperature: default sampling temperature (see ``RasterModel``).
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, levels, **kwargs)
        if self.data_dim < 2:
            raise ValueError("made needs examples with at least 2 scalars")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.net = flow_parts.MADE(self.data_dim, levels, [int(h) for h in hidden], activation)

    def _logits(self, x: Tensor) -> Tensor:
        """``(n, *data_shape)`` levels -> ``(n, D, levels)`` logits of each conditional."""
        return self.net(self._inputs(x.flatten(1)))

    def _conditional(self, x: Tensor) -> Callable[[int], Tensor]:
        if len(self.net) == 1:  # no hidden layer: a pass is a single product already
            return super()._conditional(x)
        return IncrementalMADE(self.net, x.view(len(x), self.data_dim), self._inputs)


class IncrementalMADE:
    """MADE's conditionals one scalar at a time, for sampling: ``d -> (n, p)`` logits.

    A whole pass per scalar costs the masked input layer (``D x H``) and output layer (``H x
    D p``) at every one of the ``D`` steps, and multiplies every weight by its mask again. Here
    the masked weights are made once; the input layer's pre-activation is kept and, when
    scalar ``d - 1`` has been drawn, moved by that input's column alone (a rank-one update,
    exact since the layer is linear); the hidden layers run as usual and the output layer
    computes the ``p`` rows of scalar ``d`` only. The logits equal a whole pass's (to
    rounding: float64 samples match it draw for draw, tests/test_autoregressive.py).

    ``flat`` ``(n, D)`` is the sampler's buffer of levels, filled in order between calls;
    ``inputs`` maps levels to the network's inputs.
    """

    def __init__(self, net: flow_parts.MADE, flat: Tensor, inputs: Callable[[Tensor], Tensor]):
        linear = [m for m in net if isinstance(m, flow_parts.MaskedLinear)]
        self.activations = [m for m in net if not isinstance(m, flow_parts.MaskedLinear)]
        weights = [(m.weight * m.mask, m.bias) for m in linear]
        first, first_bias = weights[0]
        self.flat, self.inputs, self.start = flat, inputs, inputs(flat)
        self.pre = F.linear(self.start, first, first_bias)  # (n, H1): the input layer's
        self.columns = first.t().contiguous()  # (D, H1): the weights of each input
        self.hidden = weights[1:-1]
        last, last_bias = weights[-1]
        self.last = last.view(-1, net.params_per_dim, last.shape[1])  # (D, p, H)
        self.last_bias = last_bias.view(-1, net.params_per_dim)

    def __call__(self, d: int) -> Tensor:
        if d:  # scalar d - 1 was drawn since the last call: its input's change, one column
            change = self.inputs(self.flat[:, d - 1 : d]) - self.start[:, d - 1 : d]
            self.pre.addmm_(change, self.columns[d - 1 : d])
        h = self.activations[0](self.pre)
        for (weight, bias), activation in zip(self.hidden, self.activations[1:], strict=True):
            h = activation(F.linear(h, weight, bias))
        return F.linear(h, self.last[d], self.last_bias[d])
