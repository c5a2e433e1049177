"""Annealed importance sampling (AIS) of a log normalising constant, and its shared plumbing.

AIS (Neal 2001) moves ``n_runs`` independent chains through intermediate distributions
``f_k(x) = f_0(x)^(1 - beta_k) f_K(x)^beta_k`` from a tractable base ``p_0 = f_0 / Z_0``
(``beta_0 = 0``) to the target ``f_K`` (``beta_K = 1``). Each chain carries the weight
``w = prod_k f_k(x_k) / f_{k-1}(x_k)``, where ``x_k`` is drawn by a transition that leaves
``p_{k-1}`` invariant, and ``E[w] = Z_K / Z_0``. Salakhutdinov & Murray (2008) apply it to
RBMs with a "base-rate" model (no weights) as ``p_0``.

``log Z_hat = log Z_0 + log mean(w)`` is unbiased in ``Z`` but, by Jensen, biased low in
``log Z`` (it underestimates ``log Z`` on average, so log-likelihoods computed from it tend to be
optimistic); the error bar is the delta-method standard error ``std(w) / (sqrt(n) mean(w))``.

References:
    Neal, "Annealed importance sampling", Statistics and Computing 11, 2001.
    Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks", ICML 2008.
    Grosse, Maddison & Salakhutdinov, "Annealing between distributions by averaging
    moments", NeurIPS 2013 (the sigmoid schedule of ``betas``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

State = Tensor | tuple[Tensor, ...]
#: ``log_f(state, beta) -> (n_runs,)``: log of the unnormalised intermediate distribution.
LogF = Callable[[State, float], Tensor]
#: ``transition(state, beta, generator) -> state``: a Markov step leaving ``p_beta`` invariant.
Transition = Callable[[State, float, torch.Generator | None], State]


def sigmoid_betas(n_betas: int, delta: float = 4.0) -> list[float]:
    """``n_betas`` inverse temperatures from 0 to 1, denser at both ends (Grosse et al. 2013)."""
    if n_betas < 2:
        raise ValueError(f"AIS needs n_betas >= 2 intermediate distributions; got {n_betas}")
    t = torch.linspace(-delta, delta, n_betas, dtype=torch.float64).sigmoid()
    return ((t - t[0]) / (t[-1] - t[0])).tolist()


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """``log mean exp(log_w)`` along ``dim``, computed stably."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def ais_log_z(
    log_f: LogF,
    transition: Transition,
    start: State,
    log_z0: float,
    betas: list[float],
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """AIS estimate of ``log Z`` of ``f_1`` and its standard error, in nats.

    ``start`` holds ``n_runs`` exact draws from the base ``p_0`` (a tensor or a tuple of
    tensors, batch first); ``log_z0`` is the base's exact log normaliser.
    """
    log_w = None
    state = start
    with torch.no_grad():
        for beta_prev, beta in zip(betas[:-1], betas[1:], strict=True):
            step = log_f(state, beta) - log_f(state, beta_prev)  # log f_k(x_k) / f_{k-1}(x_k)
            log_w = step.double() if log_w is None else log_w + step.double()
            state = transition(state, beta, generator)  # x_{k+1} ~ T_k(x_k, .)
    assert log_w is not None
    w = (log_w - log_w.max()).exp()
    stderr = float(w.std() / (w.mean() * math.sqrt(len(w)))) if len(w) > 1 else float("inf")
    return float(log_z0 + log_mean_exp(log_w)), stderr


class LogZCache:
    """Mixin: a cached ``log Z`` in buffers (saved with the model), invalidated by training.

    The class using it registers the buffers through ``_init_log_z_cache`` and implements
    ``_ais(n_betas, n_runs, generator)``. ``log_prob`` reads ``cached_log_z()``, which runs AIS
    with a generator seeded by ``ais_seed`` when the cache is stale, so a model scores the same
    examples identically before and after a save/load round trip.
    """

    @property
    def density_method(self) -> str:
        return f"AIS log Z ({self.ais_betas} temperatures, {self.ais_runs} runs)"

    def _init_log_z_cache(self, n_betas: int, n_runs: int, seed: int) -> None:
        if n_betas < 2 or n_runs < 2:
            raise ValueError(f"need ais_betas >= 2 and ais_runs >= 2; got {n_betas}, {n_runs}")
        self.ais_betas, self.ais_runs, self.ais_seed = int(n_betas), int(n_runs), int(seed)
        self.register_buffer("log_z", torch.zeros(()))
        self.register_buffer("log_z_stderr", torch.zeros(()))
        self.register_buffer("log_z_valid", torch.zeros(()))

    def _ais(self, n_betas: int, n_runs: int, generator: torch.Generator) -> tuple[float, float]:
        raise NotImplementedError

    def estimate_log_z(
        self,
        n_betas: int | None = None,
        n_runs: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[float, float]:
        """Estimate ``log Z`` by AIS, cache it, and return ``(log Z, standard error)`` in nats."""
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(self.ais_seed)
        log_z, stderr = self._ais(n_betas or self.ais_betas, n_runs or self.ais_runs, generator)
        self.log_z.fill_(log_z)
        self.log_z_stderr.fill_(stderr)
        self.log_z_valid.fill_(1.0)
        return log_z, stderr

    def cached_log_z(self) -> Tensor:
        """The cached ``log Z`` (a 0-d tensor), estimated first if training made it stale."""
        if not bool(self.log_z_valid):
            self.estimate_log_z()
        return self.log_z

    def invalidate_log_z(self) -> None:
        """Mark the cached ``log Z`` stale (the parameters changed)."""
        self.log_z_valid.fill_(0.0)
