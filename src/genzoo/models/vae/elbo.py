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
        return self.beta * min(1.0, self._steps() / self.kl_warmup_steps)

    def _steps(self) -> int:
        """``int(steps_done)``, read from the buffer only when it changed other than by
        ``after_step`` (a loaded state, a move to another device, an edit): no host read, so
        no device synchronisation, in the training loop. The buffer's version counter tells."""
        buffer, mirror = self.steps_done, self.__dict__.get("_steps_mirror")
        if mirror is None or mirror[0] is not buffer or mirror[1] != buffer._version:
            mirror = (buffer, buffer._version, int(buffer))
            self.__dict__["_steps_mirror"] = mirror
        return mirror[2]

    def _weight_tensor(self, weight: float, like: Tensor) -> Tensor:
        """``weight`` as a 0-d tensor like ``like``, made once per value (it stops changing
        after the warm-up), for the ``diag/kl_weight`` column."""
        cached = self.__dict__.get("_kl_weight_tensor")
        if (cached is None or cached[0] != weight or cached[1].device != like.device
                or cached[1].dtype != like.dtype):  # fmt: skip
            cached = (weight, like.new_tensor(weight))
            self.__dict__["_kl_weight_tensor"] = cached
        return cached[1]

    def elbo_terms(
        self, reconstruction: Tensor, kl_dims: Tensor, mu: Tensor, kl: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The loss's named terms from ``-E_q[log p(x|z)]`` and the per-dimension KL.

        ``kl_dims`` ``(batch, d)`` is the analytic ``KL(q(z_j | x) || p(z_j))`` and ``mu`` the
        posterior means ``(batch, d)``; ``kl`` the KL to use when it is not their sum (a
        Monte-Carlo KL for a flow posterior). Returns ``reconstruction`` and ``kl_weight * KL``
        (with free bits per dimension when ``free_bits > 0``), and as ``diag/...`` the ELBO, the
        unweighted KL, the weight, the active units and the KL of each latent dimension.

        The batch mean of the KL per dimension is computed once: the KL is its sum, the free
        bits clamp it, and its detached value is the ``diag/kl_dim{j}`` columns. The other
        diagnostics are a few small ops without gradient (no graph to build or free).
        """
        per_dim = kl_dims.mean(0)  # (d,): E_batch[KL_j]
        if kl is None:
            kl = per_dim.sum()  # = E_batch[sum_j KL_j]
        if self.kl_warmup_steps and torch.compiler.is_compiling():
            # under torch.compile, the warm-up from the step buffer on the device: no host
            # read (a graph break) and no Python float that changes every step (a recompile)
            steps = self.steps_done.to(mu.dtype)
            weight = self.beta * (steps / self.kl_warmup_steps).clamp(max=1.0)
        else:
            weight = self.kl_weight()
        # free bits (= free_bits_kl(kl_dims, free_bits)): sum_j max(lambda, E_batch[KL_j])
        penalty = per_dim.clamp_min(self.free_bits).sum() if self.free_bits else kl
        terms = {"reconstruction": reconstruction, "kl": weight * penalty}
        with torch.no_grad():
            terms["diag/elbo"] = -(reconstruction + kl)
            terms["diag/kl_unweighted"] = kl.detach()
            terms["diag/kl_weight"] = (weight.detach() if isinstance(weight, Tensor)
                                       else self._weight_tensor(weight, mu))  # fmt: skip
            # active units (Burda et al. 2016), kept a tensor: no read inside the step
            active = (mu.var(0) > self.active_threshold).sum()
            terms["diag/active_units"] = active.to(mu.dtype)
            for j, value in enumerate(per_dim.detach().unbind()):
                terms[f"diag/kl_dim{j}"] = value
        return terms

    def after_step(self, player: str, step: int) -> None:
        """Count the steps taken, for the KL warm-up (saved with the model)."""
        known = self._steps()
        self.steps_done += 1
        self.__dict__["_steps_mirror"] = (self.steps_done, self.steps_done._version, known + 1)

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
