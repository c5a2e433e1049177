"""Information criteria of the Gaussian mixture, and the choice of K by BIC.

``ModelSelection`` is a part of ``genzoo.models.mixtures.GaussianMixture``: ``n_parameters``,
``bic`` and ``aic``, and, for ``n_components="auto"``, ``_choose_k``, which fits every K of
``k_range`` by EM and keeps the one of lowest BIC.

References:
    Schwarz (1978). Estimating the dimension of a model. Annals of Statistics 6(2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genzoo.errors import DataError, TrainingDiverged

#: Most EM steps for each candidate K when ``n_components="auto"``.
AUTO_MAX_ITER = 100


class ModelSelection:
    """BIC, AIC and the choice of K of a ``GaussianMixture`` (mixin; see the module)."""

    @property
    def n_parameters(self) -> int:
        """Number of free parameters: weights (K - 1), means (K d) and covariances."""
        self._unconditional_only("n_parameters (BIC, AIC)")
        k, d = self.n_components, self.data_dim
        return k - 1 + k * d + self.form.n_cov_parameters(k, d)

    def bic(self, x: Tensor) -> float:
        """Bayesian information criterion on x (lower is better)."""
        total = float(self.log_prob(x).sum(dtype=torch.float64))
        return -2 * total + self.n_parameters * math.log(x.shape[0])

    def aic(self, x: Tensor) -> float:
        """Akaike information criterion on x (lower is better)."""
        return -2 * float(self.log_prob(x).sum(dtype=torch.float64)) + 2 * self.n_parameters

    def _choose_k(self, data: Tensor) -> None:
        """``n_components="auto"``: fit every K in ``k_range`` by EM, keep the lowest BIC.

        Each candidate is initialised as a fixed-K model would be and run to convergence (at
        most ``AUTO_MAX_ITER`` EM steps); K larger than the number of examples, or whose fit
        breaks down (a collapsed component), is skipped. The chosen model's parameters and
        EM progress are kept, and its K becomes ``n_components`` in ``config``, so that
        ``save``/``load`` rebuild a model of that size (buffers have fixed shapes).
        """
        n = data.shape[0]
        low, high = self.k_range
        best, best_bic, tried = None, math.inf, {}
        for k in range(low, min(high, n) + 1):
            config = {**self.config, "n_components": k, "online": False}
            candidate = type(self)(**config).to(device=self.device, dtype=self.dtype)
            try:
                candidate.initialize(data)
                candidate.fit(data, max_iter=AUTO_MAX_ITER)
                bic = candidate.bic(data)
            except (ValueError, TrainingDiverged):
                continue
            tried[k] = bic
            if bic < best_bic:
                best, best_bic = candidate, bic
        if best is None:
            raise DataError(
                f"n_components='auto' found no K in {list(self.k_range)} that fits "
                f"{n} examples: widen k_range or increase reg_covar"
            )
        self.bic_scores_ = tried  # K -> BIC on the data (not saved: a diagnostic)
        self._adopt(best)

    def _adopt(self, other) -> None:
        """Take ``other``'s K (in ``config`` too), buffers and EM progress: the chosen
        candidate of ``_choose_k``, or a model of rank 0's K in a sharded fit."""
        k = other.n_components
        self.auto = False
        self.n_components = k
        self._config["n_components"] = k
        for name, value in other.named_buffers():
            setattr(self, name, value.clone())
        self._last_ll = other._last_ll
