"""What every normalizing flow shares: a bijection to a standard normal, and the density.

A flow holds ``transform``, an invertible map from data ``(batch, *data_shape)`` to noise
``z`` shaped ``(batch, d)``. By the change of variables (RealNVP eq. 3; Glow eq. 2),
``log p(x) = log N(f(x); 0, I) + log|det df/dx|``, and sampling inverts ``f`` on base noise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genzoo.models.base import GenerativeModel
from genzoo.models.flows.transforms import Transform


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` per example for ``z`` shaped ``(batch, d)``, in nats."""
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))


class Flow(GenerativeModel):
    """Base of the flows with an inverse: exact ``log_prob``, maximum likelihood, sampling."""

    density = "exact"
    transform: Transform

    def initialize(self, data: Tensor, max_examples: int = 4096) -> None:
        """Data-dependent initialisation: one forward pass sets ActNorm and standardisation."""
        data = self.check_input(data[:max_examples])
        armed = [m for m in self.modules() if hasattr(m, "arm") and m is not self]
        for module in armed:
            module.arm()
        if armed:
            with torch.no_grad():
                self(data)

    # -- the bijection ------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data ``(batch, *data_shape)`` to noise ``z`` ``(batch, d)`` and ``log|det dz/dx|``."""
        return self.transform(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Noise ``z`` ``(batch, d)`` to data ``(batch, *data_shape)`` and ``log|det dx/dz|``."""
        return self.transform.inverse(z)

    # -- the protocol -------------------------------------------------------------------------
    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` per example in nats, shaped ``(batch,)``."""
        x = self.check_input(x)
        z, ladj = self(x)
        return standard_normal_log_prob(z) + ladj

    def loss(self, batch: Tensor, player: str = "model") -> dict[str, Tensor]:
        """Maximum likelihood: the mean negative log-likelihood of the batch."""
        return {"nll": -self.log_prob(batch).mean()}

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """Draw ``n`` samples ``(n, *data_shape)``: ``z ~ N(0, T^2 I)`` inverted.

        ``temperature`` ``T`` < 1 trades diversity for quality (Glow, section 5.5); 1 samples
        the model's density.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        z = torch.randn(n, self.data_dim, generator=generator, device=self.device, dtype=self.dtype)
        return self.inverse(z * temperature)[0]
