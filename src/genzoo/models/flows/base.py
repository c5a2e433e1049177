"""What every normalizing flow shares: a bijection to a standard normal, and the density.

A flow holds ``transform``, an invertible map from data ``(batch, *data_shape)`` to noise
``z`` shaped ``(batch, d)``. By the change of variables (RealNVP eq. 3; Glow eq. 2),
``log p(x) = log N(f(x); 0, I) + log|det df/dx|``, and sampling inverts ``f`` on base noise.

A conditional flow (``n_classes`` or ``condition_dim`` in its config) makes ``f`` depend on
the condition: ``z = f(x; c)`` is a bijection of ``x`` for every ``c``, its couplings reading
``c`` as a context, so ``log p(x | c) = log N(f(x; c); 0, I) + log|det df/dx (x; c)|`` is an
exact conditional density (Winkler et al. 2019; MAF's context, Papamakarios et al. 2017).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from genzoo.models.base import GenerativeModel
from genzoo.models.conditioning import Context
from genzoo.models.flows.transforms import Transform
from genzoo.validation import check_shape


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` per example for ``z`` shaped ``(batch, d)``, in nats."""
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))


class Flow(GenerativeModel):
    """Base of the flows with an inverse: exact ``log_prob``, maximum likelihood, sampling.

    A subclass builds ``transform`` (a ``Compose``) and, to be conditional, calls
    ``setup_flow_condition`` first and gives its couplings ``context_features``.
    """

    density = "exact"
    condition_kinds = ("discrete", "continuous")
    transform: Transform

    def setup_flow_condition(self, n_classes: int, condition_dim: int) -> int:
        """Set up the condition (see ``GenerativeModel.setup_condition``) and the ``Context``
        that turns it into the couplings' context; return the context's size (0: none)."""
        self.setup_condition(n_classes, condition_dim)
        self.context = Context(self.n_classes, self.condition_dim)
        return self.context.features

    def initialize(self, data: Tensor, max_examples: int = 4096, c: Any = None) -> None:
        """Data-dependent initialisation: one forward pass sets ActNorm and standardisation
        (of the data, and of a continuous condition); a class condition's frequencies set
        the class prior."""
        data = self.check_input(data[:max_examples])
        if c is not None:
            self.set_class_prior(c)
            c = c[:max_examples]
        c = self.check_condition(c, len(data))
        armed = [m for m in self.modules() if hasattr(m, "arm") and m is not self]
        for module in armed:
            module.arm()
        if armed:
            with torch.no_grad():
                self(data, c)

    def _context(self, c: Tensor | None) -> Tensor | None:
        context = getattr(self, "context", None)
        return None if context is None else context(c)

    # -- the bijection ------------------------------------------------------------------------
    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data ``(batch, *data_shape)`` to noise ``z`` ``(batch, d)`` and ``log|det dz/dx|``
        (given the checked condition ``c`` of a conditional flow)."""
        return self.transform(x, self._context(c))

    def inverse(self, z: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise ``z`` ``(batch, d)`` to data ``(batch, *data_shape)`` and ``log|det dx/dz|``."""
        return self.transform.inverse(z, self._context(c))

    # -- the protocol -------------------------------------------------------------------------
    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Exact ``log p(x)`` (``log p(x | c)``) per example in nats, shaped ``(batch,)``."""
        x = self.check_input(x)
        z, ladj = self(x, self.check_condition(c, len(x)))
        return standard_normal_log_prob(z) + ladj

    @property
    def log_prob_is_flow_density(self) -> bool:
        """Whether ``log_prob`` is ``Flow.log_prob``, the flow's own density, which ``loss``
        computes without the input checks; a subclass giving another density says no."""
        return type(self).log_prob is Flow.log_prob

    def loss(self, batch: Tensor, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        """Maximum likelihood: the mean negative log-likelihood of the batch (given ``c``).

        The batch is checked for its shape, not read back for NaNs: the Trainer checked its
        data once before training and its NaN guard watches the loss, so the step makes no
        host synchronisation (issue 19)."""
        if not isinstance(batch, Tensor) or not self.log_prob_is_flow_density:
            return {"nll": -self.log_prob(batch, c=c).mean()}  # an array; another density
        reference = next(self.parameters(), None)
        x = check_shape(batch, self.data_shape, "a training batch")
        x = x if reference is None else x.to(reference)  # the model's device and dtype
        z, ladj = self(x, self.check_condition(c, len(x)))
        return {"nll": -(standard_normal_log_prob(z) + ladj).mean()}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        c: Any = None,
    ) -> Tensor:
        """Draw ``n`` samples ``(n, *data_shape)``: ``z ~ N(0, T^2 I)`` inverted (given ``c``:
        a class or vector for all ``n``, or one per sample).

        ``temperature`` ``T`` < 1 trades diversity for quality (Glow, section 5.5); 1 samples
        the model's density.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        c = self.check_condition(c, n)
        z = torch.randn(n, self.data_dim, generator=generator, device=self.device, dtype=self.dtype)
        return self.inverse(z * temperature, c)[0]
