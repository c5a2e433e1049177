"""Deep energy-based model trained with short-run Langevin dynamics and a replay buffer.

``p(x) = exp(-E(x)) / Z`` with ``E`` an MLP. The maximum-likelihood gradient
``E_data[dE/dtheta] - E_model[dE/dtheta]`` is estimated with negative samples ``x-`` from
``langevin_steps`` steps of Langevin dynamics (eq. 3) started, with probability
``1 - reinit_prob``, from a replay buffer of past samples and otherwise from uniform noise in the
data box (Du & Mordatch 2019, section 3.1). As a loss (eq. 2 plus the energy regularisation of
section 3.3):

    L = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2)

Support and density. Data are standardised with the training mean and standard deviation and the
model lives on the box ``|z_i| <= box`` in standardised units (samples are clamped to it, as
Du & Mordatch clamp images to their range). For data of dimension 1 or 2, ``Z`` over the box is
computed by midpoint quadrature on ``grid_size^d`` points, so ``log_prob`` is the exact density
of the model up to the quadrature error (``-inf`` outside the box); ``model.density`` is then
``"exact"``. In higher dimension ``log_prob`` returns the unnormalised ``-E(x)`` and
``model.density`` is ``"unnormalized"``.

References:
    Du & Mordatch, "Implicit generation and modeling with energy-based models", NeurIPS 2019
    (arXiv:1903.08689).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.models.base import GenerativeModel, model_fact
from genzoo.models.energy.langevin import grid_log_normalizer, langevin
from genzoo.models.nn import MLP
from genzoo.registry import register_model


class EnergyNetwork(GenerativeModel):
    """Shared body of the deep energy models: MLP energy on standardised data in a box.

    Subclasses write ``loss`` and may override ``sample``. Arguments as in ``ebm``.
    """

    density_kinds = ("unnormalized", "exact")

    @model_fact("unnormalized")
    def density(self) -> str:
        """``"exact"`` up to 2-D (normalised by quadrature over the box, see the module),
        else ``"unnormalized"``."""
        return "exact" if self.data_dim <= 2 else "unnormalized"

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: int = 128,
        depth: int = 3,
        activation: str = "silu",
        box: float = 4.0,
        grid_size: int = 200,
        sample_steps: int = 200,
        sample_step_size: float = 0.01,
    ) -> None:
        super().__init__(data_shape)
        if hidden < 1 or depth < 1 or box <= 0 or grid_size < 2 or sample_steps < 1:
            raise ValueError(
                "need hidden >= 1, depth >= 1, box > 0, grid_size >= 2 and sample_steps >= 1; "
                f"got {hidden}, {depth}, {box}, {grid_size}, {sample_steps}"
            )
        if sample_step_size <= 0:
            raise ValueError(f"sample_step_size must be > 0; got {sample_step_size}")
        d = self.data_dim
        self.net = MLP(d, 1, hidden=(int(hidden),) * int(depth), activation=activation)
        self.box, self.grid_size = float(box), int(grid_size)
        self.sample_steps, self.sample_step_size = int(sample_steps), float(sample_step_size)
        self.register_buffer("shift", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))

    def initialize(self, data: Tensor) -> None:
        x = data.reshape(data.shape[0], -1).to(self.device, self.dtype)
        self.shift.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-2) if x.shape[0] > 1 else torch.ones_like(x[0]))

    # -- coordinates -------------------------------------------------------------------------
    def standardize(self, x: Tensor) -> Tensor:
        """``(batch, *data_shape) -> (batch, d)`` in standardised units."""
        return (x.reshape(x.shape[0], -1) - self.shift) / self.scale

    def unstandardize(self, z: Tensor) -> Tensor:
        return (z * self.scale + self.shift).reshape(z.shape[0], *self.data_shape)

    def bounds(self) -> tuple[Tensor, Tensor]:
        """The box in standardised units, ``(low, high)`` each ``(d,)``."""
        high = torch.full((self.data_dim,), self.box, device=self.device, dtype=self.dtype)
        return -high, high

    def energy_box(self) -> tuple[Tensor, Tensor]:
        """The box in data units, ``(low, high)`` each ``(d,)`` (``EnergyModel``)."""
        return self.shift - self.box * self.scale, self.shift + self.box * self.scale

    def uniform_in_box(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(n, self.data_dim, generator=generator, device=self.device, dtype=self.dtype)
        return (2 * u - 1) * self.box

    # -- energies ----------------------------------------------------------------------------
    def standardized_energy(self, z: Tensor) -> Tensor:
        """``E`` at standardised points, ``(batch, d) -> (batch,)``."""
        return self.net(z).squeeze(-1)

    def energy(self, x: Tensor) -> Tensor:
        """``E(x)`` of data-shaped ``x``, ``(batch,)``; ``p(x) ~ exp(-E(x))`` on the box."""
        return self.standardized_energy(self.standardize(self.check_input(x)))

    def free_energy(self, x: Tensor) -> Tensor:
        """Alias of ``energy`` (there are no latent variables to sum out)."""
        return self.energy(x)

    def log_normalizer(self) -> Tensor:
        """``log Z`` of ``exp(-E)`` over the box in data units, by grid quadrature (d <= 2)."""
        low, high = self.bounds()
        log_z = grid_log_normalizer(self.standardized_energy, low, high, self.grid_size)
        return log_z + self.scale.double().log().sum()

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        """``-E(x) - log Z`` (exact up to quadrature, d <= 2) or ``-E(x)`` (unnormalised)."""
        z = self.standardize(self.check_input(x))
        log_p = -self.standardized_energy(z)
        if self.data_dim > 2:
            return log_p
        outside = (z.abs() > self.box).any(-1)
        log_p = log_p - self.log_normalizer().to(self.dtype)
        return log_p.masked_fill(outside, -math.inf)

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``sample_steps`` Langevin steps from uniform noise in the box."""
        z = langevin(
            self.standardized_energy, self.uniform_in_box(n, generator), self.sample_steps,
            self.sample_step_size, bounds=self.bounds(), generator=generator,
        )  # fmt: skip
        return self.unstandardize(z)


@register_model("ebm", family="energy")
class EBM(EnergyNetwork):
    """Deep EBM (Du & Mordatch 2019): short-run Langevin, replay buffer, energy regulariser.

    Arguments:
        data_shape: shape of one example (flattened into the MLP).
        hidden, depth, activation: the energy MLP.
        box: half-width of the support in standardised units (samples are clamped to it).
        grid_size: quadrature points per side for ``log Z`` (data of dimension <= 2).
        langevin_steps: Langevin steps per training step (the paper's K).
        step_size: Langevin step size ``lambda`` in training (noise variance ``lambda``).
        noise_scale: multiplies the Langevin noise (1 = exact Langevin dynamics).
        buffer_size: replay buffer size.
        reinit_prob: chance a chain restarts from uniform noise (the paper's 5 %).
        alpha: weight of the energy regulariser ``E(x+)^2 + E(x-)^2``.
        sample_steps, sample_step_size: Langevin steps for ``sample`` (from noise).

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("moons", n=500)
        >>> ebm = genzoo.create("ebm", data=x, hidden=16, grid_size=50, sample_steps=10)
        >>> ebm.log_prob(x[:3]).shape, ebm.density
        (torch.Size([3]), 'exact')
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        langevin_steps: int = 40,
        step_size: float = 0.05,
        noise_scale: float = 1.0,
        buffer_size: int = 10000,
        reinit_prob: float = 0.05,
        alpha: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)  # hidden, depth, activation, box, grid_size, ...
        if langevin_steps < 1 or step_size <= 0 or noise_scale < 0 or buffer_size < 1:
            raise ValueError(
                "need langevin_steps >= 1, step_size > 0, noise_scale >= 0, buffer_size >= 1; "
                f"got {langevin_steps}, {step_size}, {noise_scale}, {buffer_size}"
            )
        if not 0 <= reinit_prob <= 1 or alpha < 0:
            raise ValueError(f"need 0 <= reinit_prob <= 1, alpha >= 0; got {reinit_prob}, {alpha}")
        self.langevin_steps, self.step_size, self.noise_scale = (
            langevin_steps,
            step_size,
            noise_scale,
        )
        self.reinit_prob, self.alpha = reinit_prob, alpha
        self.register_buffer("replay", self.uniform_in_box(int(buffer_size)))

    def loss(self, batch: Tensor | None, player: str = "model") -> dict[str, Tensor]:
        z_pos = self.standardize(self.check_input(batch))
        n = z_pos.shape[0]
        # 1. chains start from the replay buffer, or (reinit_prob) from uniform noise
        index = torch.randint(self.replay.shape[0], (n,), device=self.device)
        start = self.replay[index]
        fresh = torch.rand(n, 1, device=self.device) < self.reinit_prob
        start = torch.where(fresh, self.uniform_in_box(n), start)
        # 2. K steps of Langevin dynamics (eq. 3), clamped to the box; back into the buffer
        z_neg = langevin(
            self.standardized_energy, start, self.langevin_steps, self.step_size,
            self.noise_scale, bounds=self.bounds(),
        )  # fmt: skip
        self.replay[index] = z_neg
        # 3. contrastive divergence (eq. 2) and the energy regulariser (section 3.3)
        e_pos, e_neg = self.standardized_energy(z_pos), self.standardized_energy(z_neg)
        return {
            "cd": e_pos.mean() - e_neg.mean(),
            "regularizer": self.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean()),
        }
