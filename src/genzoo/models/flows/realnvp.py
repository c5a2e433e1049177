"""RealNVP: a normalizing flow of affine coupling layers, for vectors.

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017
    (arXiv:1605.08803).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from genzoo.errors import DataError
from genzoo.models.base import GenerativeModel
from genzoo.models.flows.coupling import AffineCoupling, alternating_masks
from genzoo.models.flows.transforms import Compose, Standardize
from genzoo.registry import register_model


@register_model("realnvp", family="flow")
class RealNVP(GenerativeModel):
    """RealNVP flow: affine coupling layers over a standard normal base (exact density).

    ``forward`` maps data ``x`` to noise ``z = f(x)``; by the change of variables (eq. 3),
    ``log p(x) = log N(z; 0, I) + log|det df/dx|``. Sampling inverts ``f`` on base noise.
    Examples with several dimensions (images, say) are flattened to vectors of size
    ``d = prod(data_shape)``; the multi-scale image architecture is not used here.

    Before the coupling layers sits a fixed standardisation (data mean and standard
    deviation, set by ``initialize``, its log-det included), the identity until then.

    Arguments:
        data_shape: shape of one example; at least 2 scalars.
        n_layers: number of coupling layers (>= 2; consecutive masks are complementary).
        hidden: width of each conditioner MLP's hidden layers.
        depth: number of hidden layers in each conditioner MLP.
        scale_bound: soft bound on each log-scale, ``s = b * tanh(s_raw / b)``.
        activation: the conditioners' activation, by name.

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("moons", n=1000)
        >>> flow = genzoo.create("realnvp", data=x, n_layers=4, hidden=32)
        >>> flow.log_prob(x[:5]).shape, flow.sample(3).shape
        (torch.Size([5]), torch.Size([3, 2]))
    """

    density = "exact"

    def __init__(
        self,
        data_shape: Sequence[int],
        n_layers: int = 8,
        hidden: int = 128,
        depth: int = 2,
        scale_bound: float = 3.0,
        activation: str = "relu",
    ) -> None:
        super().__init__(data_shape)
        d = self.data_dim
        if d < 2:
            raise DataError(
                f"RealNVP needs examples with at least 2 scalars to split between coupling "
                f"halves; got data_shape {self.data_shape}. For 1-D data use a mixture model "
                "or a flow with elementwise transforms instead"
            )
        if n_layers < 2:
            raise ValueError(
                f"RealNVP needs n_layers >= 2 so that every dimension is transformed; "
                f"got {n_layers}"
            )
        if depth < 0 or hidden < 1:
            raise ValueError(f"need depth >= 0 and hidden >= 1; got {depth=}, {hidden=}")
        widths = (int(hidden),) * int(depth)
        layers = [
            AffineCoupling(mask, widths, activation=activation, scale_bound=scale_bound)
            for mask in alternating_masks(d, int(n_layers))
        ]
        self.transform = Compose([Standardize(d), *layers])

    @property
    def standardize(self) -> Standardize:
        """The fixed standardisation applied before the coupling layers."""
        return self.transform.transforms[0]

    def initialize(self, data: Tensor) -> None:
        """Set the fixed standardisation from the data's per-dimension mean and std."""
        data = self.check_input(data)
        self.standardize.fit(data.flatten(1))

    # -- the bijection ------------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data ``(batch, *data_shape)`` to noise ``z`` ``(batch, d)`` and ``log|det dz/dx|``."""
        return self.transform(x.flatten(1))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Noise ``z`` ``(batch, d)`` to data ``(batch, *data_shape)`` and ``log|det dx/dz|``."""
        x, ladj = self.transform.inverse(z)
        return x.reshape(-1, *self.data_shape), ladj

    # -- the protocol -------------------------------------------------------------------------
    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` per example in nats, shaped ``(batch,)``."""
        x = self.check_input(x)
        z, ladj = self(x)
        base = -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))
        return base + ladj

    def loss(self, batch: Tensor, player: str = "model") -> dict[str, Tensor]:
        """Maximum likelihood: the mean negative log-likelihood of the batch."""
        return {"nll": -self.log_prob(batch).mean()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples ``(n, *data_shape)``: ``z ~ N(0, I)`` from ``generator``, inverted."""
        z = torch.randn(n, self.data_dim, generator=generator, device=self.device, dtype=self.dtype)
        return self.inverse(z)[0]
