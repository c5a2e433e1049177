"""Online EM for the Gaussian mixture (Cappe & Moulines 2009): updates from a stream.

``OnlineEM`` is a part of ``genzoo.models.mixtures.GaussianMixture``: ``online_step(batch)``
performs one update from a mini-batch, and a model built with ``online=True`` makes each
``fit_step`` a shuffled pass of them over the data. It uses the model's E-step, M-step and
parameters.

References:
    Cappe & Moulines (2009). On-line expectation-maximization algorithm for latent data
    models. Journal of the Royal Statistical Society B 71(3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genzoo.models import gmm_math as gm
from genzoo.models.gmm_math import STATS_DTYPE
from genzoo.validation import check_shape


class OnlineEM:
    """Online EM updates of a ``GaussianMixture`` (mixin; see the module)."""

    @torch.no_grad()
    def online_step(self, batch: Tensor) -> dict[str, float]:
        """One online-EM update from a mini-batch (Cappe & Moulines 2009).

        The averaged sufficient statistics s are a stochastic approximation,
        s_{t+1} = (1 - g_t) s_t + g_t s(batch) with step size g_t = (t + 2)^-kappa, each
        normalised per example; the M-step maps them to parameters. s_t is not stored: it is
        recovered exactly from the current parameters (at the means, S1 = 0, N_k = pi_k and
        S2 follows from the covariances), so the state is the parameters plus ``n_updates_``.
        A fresh model is initialised from the first batch. Returns ``log_likelihood`` (mean
        over the batch, before the update) and ``step_size``.
        """
        self._unconditional_only("online_step")
        if self._group is not None:
            raise ValueError("online EM is not sharded across processes: call online_step "
                             "outside model.sharded(...)")  # fmt: skip
        check_shape(batch, self.data_shape, "batch")
        if not bool(self.initialized_):
            self.initialize(batch)
        x = self._flat(batch)
        total, stats = self._e_step(x)
        gm.check_log_likelihood(
            total, batch, "batch", f"online EM update {int(self.n_updates_) + 1}"
        )
        ll = total / x.shape[0]
        gamma = (int(self.n_updates_) + 2) ** -self.kappa
        nk, s1, s2 = (s / x.shape[0] for s in stats)
        weights = self.weights_.to(STATS_DTYPE)
        old_s2 = self.form.second_moment(
            weights, self.covariances_.to(STATS_DTYPE), self.reg_covar, self.data_dim
        )
        nk = (1 - gamma) * weights + gamma * nk
        s2 = (1 - gamma) * old_s2 + gamma * s2
        means = self.means_.to(STATS_DTYPE)
        self._set_parameters(*gm.m_step(nk, gamma * s1, s2, means, 1, self.reg_covar, self.form))
        self.n_updates_.add_(1)
        return {"log_likelihood": ll, "step_size": gamma}

    def _online_pass(self, x: Tensor) -> float:
        """One shuffled pass of online EM over x (n,d) in mini-batches; mean log-likelihood."""
        generator = torch.Generator().manual_seed(self.seed + int(self.n_iter_))
        order = torch.randperm(x.shape[0], generator=generator).to(x.device)
        total = 0.0
        for idx in order.split(self.online_batch):
            part = x[idx]
            total += self.online_step(part.reshape(len(part), *self.data_shape))[
                "log_likelihood"
            ] * len(part)
        return total / x.shape[0]
