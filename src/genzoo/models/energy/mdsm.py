"""Energy model learned by multi-scale denoising score matching (Li, Chen & Sommer 2019).

The energy's gradient is fitted to denoise data perturbed at many noise levels at once
(section 3, eq. 8 of the paper):

    L = E_{sigma ~ p(sigma)} E_{x~ = x + sigma eps} | x - x~ + sigma_0^2 dE(x~)/dx~ |^2

with ``sigma`` drawn per example, log-uniformly in ``[sigma_min, sigma_max]``, and ``sigma_0``
fixed: the minimiser satisfies ``-dE/dx~ = (sigma^2 / sigma_0^2) grad log p_sigma(x~)``, so
``exp(-E)`` matches the data smoothed at scale ``sigma_0`` near the data while the larger scales
shape the energy far from it. Samples come from annealed Langevin dynamics, the temperature
falling geometrically from ``sample_temperature`` to 1 (section 4). Data are standardised and
the support is a box, as in ``ebm``; in 1-D or 2-D ``Z`` is summed by quadrature, so
``log_prob`` is the exact density of ``exp(-E)/Z`` up to quadrature error.

References:
    Li, Chen & Sommer, "Learning energy-based models in high-dimensional spaces with
    multi-scale denoising score matching", arXiv:1910.07762, 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.models.energy.ebm import EnergyNetwork
from genzoo.models.energy.langevin import energy_gradient, langevin
from genzoo.registry import register_model


@register_model("mdsm-ebm", family="energy")
class MDSM(EnergyNetwork):
    """Energy model by multi-scale denoising score matching (Li et al. 2019); annealed Langevin.

    Arguments:
        data_shape: shape of one example (flattened into the MLP).
        hidden, depth, activation: the energy MLP (a smooth activation: the loss
            differentiates ``dE/dx``).
        box, grid_size: support and quadrature as in ``ebm``.
        sigma_min, sigma_max: range of the training noise levels (standardised units).
        sigma0: the fixed scale ``sigma_0`` of eq. 8 (standardised units; the paper's 0.1 is
            for images in [0, 1]; on the 2-D toys 0.1 trains slowly, 0.3 fits moons well).
        sample_steps, sample_step_size: annealed Langevin steps for ``sample``.
        sample_temperature: starting temperature of the annealing (1 = none).

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("moons", n=500)
        >>> model = genzoo.create("mdsm-ebm", data=x, hidden=16, grid_size=50)
        >>> model.sample(3).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        sigma_min: float = 0.05,
        sigma_max: float = 1.0,
        sigma0: float = 0.3,
        sample_temperature: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)  # hidden, depth, activation, box, grid_size, ...
        if not 0 < sigma_min <= sigma_max or sigma0 <= 0 or sample_temperature < 1:
            raise ValueError(
                "need 0 < sigma_min <= sigma_max, sigma0 > 0, sample_temperature >= 1; got "
                f"{sigma_min}, {sigma_max}, {sigma0}, {sample_temperature}"
            )
        self.sigma_min, self.sigma_max, self.sigma0 = sigma_min, sigma_max, sigma0
        self.sample_temperature = sample_temperature
        # The loss sees only dE/dx, so the output bias (a constant energy shift, which the
        # normaliser absorbs) gets no gradient: fix it at 0 and leave it out of training.
        torch.nn.init.zeros_(self.net[-1].bias)
        self.net[-1].bias.requires_grad_(False)

    def loss(self, batch: Tensor | None, player: str = "model") -> Tensor:
        z = self.standardize(self.check_input(batch))
        # 1. sigma ~ log-uniform[sigma_min, sigma_max] per example; x~ = x + sigma eps
        u = torch.rand(z.shape[0], 1, device=self.device, dtype=self.dtype)
        sigma = self.sigma_min * (self.sigma_max / self.sigma_min) ** u
        noisy = (z + sigma * torch.randn_like(z)).requires_grad_(True)
        # 2. eq. 8: | x - x~ + sigma_0^2 dE/dx~ |^2, differentiable in the parameters
        grad = energy_gradient(self.standardized_energy, noisy, create_graph=True)
        return (z - noisy + self.sigma0**2 * grad).pow(2).sum(-1).mean()

    def temperatures(self) -> list[float]:
        """Geometric annealing from ``sample_temperature`` to 1 over ``sample_steps`` steps."""
        n, t0 = self.sample_steps, math.log(self.sample_temperature)
        return [math.exp(t0 * (1 - i / max(n - 1, 1))) for i in range(n)]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Annealed Langevin dynamics from uniform noise in the box."""
        z = langevin(
            self.standardized_energy, self.uniform_in_box(n, generator), self.sample_steps,
            self.sample_step_size, temperatures=self.temperatures(), bounds=self.bounds(),
            generator=generator,
        )  # fmt: skip
        return self.unstandardize(z)
