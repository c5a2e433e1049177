"""MADE as a density model of discrete data: one masked network, exact likelihood.

Reference:
    Germain, Gregor, Murray & Larochelle, "MADE: Masked autoencoder for distribution
    estimation", ICML 2015 (arXiv:1502.03509).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genzoo.models.autoregressive.common import (
    DiscreteModel,
    check_sampling,
    gather_log_softmax,
    sample_logits,
)
from genzoo.models.flows import autoregressive as flow_parts
from genzoo.models.nn import ACTIVATIONS
from genzoo.registry import register_model


@register_model("made", family="autoregressive")
class MADE(DiscreteModel):
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
        temperature: default sampling temperature.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        temperature: float = 1.0,
    ) -> None:
        super().__init__(data_shape, levels)
        if self.data_dim < 2:
            raise ValueError("made needs examples with at least 2 scalars")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        check_sampling(temperature, 0, 1.0)
        self.temperature = float(temperature)
        self.net = flow_parts.MADE(self.data_dim, levels, [int(h) for h in hidden], activation)

    def _logits(self, x: Tensor) -> Tensor:
        """``(n, D)`` levels -> ``(n, D, levels)`` logits of each conditional."""
        return self.net(x.to(self.dtype) / (self.levels - 1) - 0.5)

    def log_prob_terms(self, x: Tensor) -> Tensor:
        x = self.check_input(x).flatten(1)
        return gather_log_softmax(self._logits(x), x)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float | None = None
    ) -> Tensor:
        temperature = self.temperature if temperature is None else temperature
        check_sampling(temperature, 0, 1.0)
        x = torch.zeros(n, self.data_dim, dtype=torch.long, device=self.device)
        for d in range(self.data_dim):  # x_d needs x_<d: one pass per scalar
            x[:, d] = sample_logits(self._logits(x)[:, d], generator, temperature)
        return x.view(n, *self.data_shape).to(self.dtype)
