"""MADE as a density model of discrete data: one masked network, exact likelihood.

Reference:
    Germain, Gregor, Murray & Larochelle, "MADE: Masked autoencoder for distribution
    estimation", ICML 2015 (arXiv:1502.03509).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    Examples are flattened in raster order; sampling takes ``D`` passes.

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
        return self.net(x.flatten(1).to(self.dtype) / (self.levels - 1) - 0.5)
