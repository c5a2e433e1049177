"""What every VAE shares: the annealed KL term of the loss, its per-dimension diagnostics and
the seeded estimates of ``log p(x)``.

Training minimises ``-ELBO = reconstruction + kl_weight * KL`` with the linear KL warm-up of
Bowman et al. (2016) and Sonderby et al. (2016) and, optionally, free bits per latent
dimension (Kingma et al. 2016); the true ELBO, the KL per latent dimension and the active
units (Burda et al. 2016) are logged beside it. ``log_prob`` is the importance-weighted
estimate IWAE-``iwae_samples``, seeded so that the same weights give the same numbers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from genzoo.models.base import GenerativeModel
from genzoo.models.vae.likelihoods import free_bits_kl

#: Seed of the noise ``elbo`` and ``log_prob`` use when given no generator: the estimates of
#: a model are then reproducible (the same weights give the same numbers).
EVAL_SEED = 0


class ELBOModel(GenerativeModel):
    """Base of the VAEs (not registered): the KL warm-up, the loss terms, IWAE ``log_prob``.

    A subclass sets ``kl_warmup_steps``, ``iwae_samples``, ``active_threshold``, ``free_bits``
    and the buffer ``steps_done``, and gives ``iwae(x, k)``.
    """

    density = "estimate"
    #: Weight of the KL term once warmed up: 1 for the ELBO (``beta-vae`` changes it).
    beta: ClassVar[float] = 1.0
    kl_warmup_steps: int
    iwae_samples: int
    active_threshold: float
    free_bits: float
    steps_done: Tensor

    @property
    def density_method(self) -> str:
        return f"IWAE-{self.iwae_samples}"

    def kl_weight(self) -> float:
        """``beta`` times the linear warm-up ``min(1, t / kl_warmup_steps)`` (Bowman et al.
        2016; Sonderby et al. 2016); ``beta`` is 1 but for ``beta-vae``."""
        if self.kl_warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, int(self.steps_done) / self.kl_warmup_steps)

    def elbo_terms(
        self, reconstruction: Tensor, kl_dims: Tensor, mu: Tensor, kl: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The loss's named terms from ``-E_q[log p(x|z)]`` and the per-dimension KL.

        ``kl_dims`` ``(batch, d)`` is the analytic ``KL(q(z_j | x) || p(z_j))`` and ``mu`` the
        posterior means ``(batch, d)``; ``kl`` the KL to use when it is not their sum (a
        Monte-Carlo KL for a flow posterior). Returns ``reconstruction`` and ``kl_weight * KL``
        (with free bits per dimension when ``free_bits > 0``), and as ``diag/...`` the ELBO, the
        unweighted KL, the weight, the active units and the KL of each latent dimension.
        """
        if kl is None:
            kl = kl_dims.sum(1).mean()
        weight = self.kl_weight()
        penalty = free_bits_kl(kl_dims, self.free_bits) if self.free_bits else kl
        mu = mu.detach()
        terms = {
            "reconstruction": reconstruction,
            "kl": weight * penalty,
            "diag/elbo": -(reconstruction + kl).detach(),
            "diag/kl_unweighted": kl.detach(),
            "diag/kl_weight": mu.new_tensor(weight),
            # active units (Burda et al. 2016), kept a tensor: no read inside the step
            "diag/active_units": (mu.var(0) > self.active_threshold).sum().to(mu.dtype),
        }
        for j, value in enumerate(kl_dims.detach().mean(0).unbind()):
            terms[f"diag/kl_dim{j}"] = value
        return terms

    def after_step(self, player: str, step: int) -> None:
        """Count the steps taken, for the KL warm-up (saved with the model)."""
        self.steps_done += 1

    def _generator(self, generator: torch.Generator | None) -> torch.Generator:
        """``generator``, or one seeded with ``EVAL_SEED`` (reproducible estimates)."""
        if generator is not None:
            return generator
        return torch.Generator(device=self.device).manual_seed(EVAL_SEED)

    def iwae(self, x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """IWAE-k estimate of ``log p(x)`` ``(batch,)`` (Burda et al. 2016, eq. 8); a
        conditional VAE's also takes ``c=`` (``log p(x | c)``)."""
        raise NotImplementedError

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """IWAE-``iwae_samples`` estimate of ``log p(x)`` (``log p(x | c)`` for a conditional
        VAE) per example (nats), reproducible: the importance samples come from a generator
        seeded with ``EVAL_SEED``, the same for every condition."""
        if self.condition_kind is None:
            self.check_condition(c)  # refuses a c in one line
            return self.iwae(x, self.iwae_samples)
        return self.iwae(x, self.iwae_samples, c=c)
