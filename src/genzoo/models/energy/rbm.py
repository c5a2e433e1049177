"""Restricted Boltzmann machines: Bernoulli-Bernoulli (``rbm``) and Gaussian-Bernoulli
(``gb-rbm``), trained by CD-k or PCD; log-likelihood by AIS or exact enumeration.

The layer maths (energy, free energy, conditionals, Gibbs steps, ``log Z``, the closed-form CD
gradient) is :mod:`genzoo.models.energy.rbm_layer`'s; the classical training loop ``fit_cd``
is :mod:`genzoo.models.energy.cd_loop`'s; what every Boltzmann machine takes (CD settings, the
optimiser, AIS) is :mod:`genzoo.models.energy.boltzmann`'s. This module holds the models.

Training. Contrastive divergence (Hinton 2002) replaces the model expectation of the
log-likelihood gradient by samples after ``k`` Gibbs steps started at the data (CD-k), persistent
CD (Tieleman 2008) by chains kept across updates (here the chains keep their hidden state,
sampled from ``p(h | v_model)`` at each update, as scikit-learn does; a sweep is
``h -> v -> h``). Both are the loss ``mean F(v_data) - mean F(v_model)`` with ``v_model`` held
fixed; an L2 penalty on ``W`` is the guide's weight decay and SGD with momentum its momentum.
``fit_cd`` runs the same update as the guide's classical loop (shuffled mini-batch sweeps, in
place, no autograd); ``genzoo.Trainer`` runs it through the optimiser.

References:
    Hinton, "Training products of experts by minimizing contrastive divergence",
    Neural Computation 14, 2002.
    Hinton, "A practical guide to training restricted Boltzmann machines", UTML TR 2010-003.
    Tieleman, "Training restricted Boltzmann machines using approximations to the likelihood
    gradient", ICML 2008.
    Cho, Ilin & Raiko, "Improved learning of Gaussian-Bernoulli restricted Boltzmann machines",
    ICANN 2011.
    Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks", ICML 2008.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.models.base import model_fact
from genzoo.models.energy import cd_loop
from genzoo.models.energy.boltzmann import OPTIMIZERS, BoltzmannMachine
from genzoo.models.energy.cd_loop import MATMUL_DTYPES
from genzoo.models.energy.rbm_layer import (
    MAX_ENUMERATED_HIDDEN,
    VISIBLE_TYPES,
    RBMLayer,
    _ClosedFormGradient,
    check_binary,
    sample_bernoulli,
)
from genzoo.registry import register_model

# The layer, its checks and the constants stay importable from here.
__all__ = [
    "MATMUL_DTYPES",
    "MAX_ENUMERATED_HIDDEN",
    "OPTIMIZERS",
    "VISIBLE_TYPES",
    "RBM",
    "GaussianRBM",
    "RBMLayer",
    "check_binary",
]


class _RBM(BoltzmannMachine):
    """Shared body of ``rbm`` and ``gb-rbm``: CD-k/PCD loss, Gibbs sampling, AIS ``log_prob``."""

    visible_type: str = "bernoulli"
    density_kinds = ("estimate", "exact")

    @model_fact("estimate")
    def density(self) -> str:
        """``"exact"`` with ``exact_log_z`` (summed over every hidden state), else AIS's
        ``"estimate"``."""
        return "exact" if self.use_exact_log_z else "estimate"

    def __init__(
        self,
        data_shape: Sequence[int],
        n_hidden: int = 64,
        persistent: bool = False,
        n_chains: int = 100,
        exact_log_z: bool = False,
        learn_sigma: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)  # cd_k, weight_decay, momentum, optimizer, ...
        if learn_sigma and self.visible_type != "gaussian":
            raise ValueError("learn_sigma needs Gaussian visible units: use gb-rbm")
        cd_k, sample_steps = self.cd_k, self.sample_steps
        if cd_k < 1 or n_chains < 1 or sample_steps < 1:
            raise ValueError(
                f"need cd_k, n_chains, sample_steps >= 1; got {cd_k}, {n_chains}, {sample_steps}"
            )
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(
                "need weight_decay >= 0, 0 <= momentum < 1; "
                f"got {self.weight_decay}, {self.momentum}"
            )
        if exact_log_z and n_hidden > MAX_ENUMERATED_HIDDEN:
            raise ValueError(
                f"exact_log_z enumerates 2^n_hidden states: needs n_hidden <= 20, "
                f"got {n_hidden}; use AIS (exact_log_z=False)"
            )
        self.rbm = RBMLayer(self.data_dim, n_hidden, self.visible_type, learn_sigma=learn_sigma)
        self.cd_k, self.sample_steps = int(cd_k), int(sample_steps)
        self.persistent = bool(persistent)
        self.use_exact_log_z = bool(exact_log_z)
        # PCD chains: the last visible sample and the hidden state the next sweep starts from
        self.register_buffer("chains", self.rbm.random_visible(int(n_chains)))
        self.register_buffer("chain_hidden", self.rbm.sample_hidden(self.chains))
        if not self.rbm.binary:  # fixed standardisation of real-valued data
            self.register_buffer("shift", torch.zeros(self.data_dim))
            self.register_buffer("scale", torch.ones(self.data_dim))

    @property
    def first_layer(self) -> RBMLayer:
        return self.rbm

    # -- data <-> visible units --------------------------------------------------------------
    def _to_visible(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)

    def _from_visible(self, v: Tensor) -> Tensor:
        return v.reshape(v.shape[0], *self.data_shape)

    def _log_det(self) -> Tensor:
        return torch.zeros((), device=self.device, dtype=self.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        # Models saved before the chains kept a hidden state (start it afresh) or before
        # Gaussian units had a sigma (theirs was 1) still load.
        if prefix + "chains" in state_dict and prefix + "chain_hidden" not in state_dict:
            state_dict[prefix + "chain_hidden"] = self.chain_hidden.clone()
        if not self.rbm.binary and prefix + "rbm.log_sigma" not in state_dict:
            state_dict[prefix + "rbm.log_sigma"] = torch.zeros_like(self.rbm.log_sigma.detach())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- the protocol ------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, data: Tensor) -> None:
        self.rbm.initialize_from_data(self._to_visible(data.to(self.device, self.dtype)))
        self.chains.copy_(self.rbm.random_visible(self.chains.shape[0]))
        self.chain_hidden.copy_(self.rbm.sample_hidden(self.chains))

    def loss(self, batch: Tensor | None, player: str = "model") -> dict[str, Tensor]:
        # The Trainer validated the training data once; batches are not re-scanned here.
        rbm = self.rbm
        v = self._to_visible(batch.to(self.chains))  # the model's device and dtype
        rbm.track_data(v)
        if self.persistent and rbm.binary:
            return self._pcd_binary_loss(v)
        with torch.no_grad():
            a_data = rbm.hidden_input(v)  # (batch, n_hidden), shared by both phases below
            if self.persistent:  # PCD: continue the chains from their hidden state, h -> v -> h
                v_model = rbm.sample_visible(self.chain_hidden)
                v_model = rbm.gibbs(v_model, self.cd_k - 1)
                a_model = rbm.hidden_input(v_model)
                self.chains.copy_(v_model)
                self.chain_hidden.copy_(sample_bernoulli(torch.sigmoid(a_model)))
            else:  # CD-k: k Gibbs steps from the data, the first from a_data
                mean = rbm.visible_mean(sample_bernoulli(torch.sigmoid(a_data)))
                v_model = rbm.gibbs(rbm.visible_given_mean(mean), self.cd_k - 1)
                a_model = None
        terms = rbm.cd_loss(v, v_model, self.weight_decay, data_input=a_data, model_input=a_model)
        if not self.persistent:  # the guide's (imperfect) progress signal, from step 1's mean
            terms["diag/reconstruction"] = (v - mean).pow(2).sum(-1).mean()
        return terms

    def _workspace(self, n: int, m: int) -> tuple[Tensor, Tensor, Tensor]:
        """Buffers of a PCD step with ``n`` data and ``m`` model rows, made once per shape:
        the stacked visible rows ``(n + m, D)``, their hidden inputs ``(n + m, H)`` and the row
        weights ``-1/n`` (data), ``+1/m`` (model), which make ``sum_r w_r (-dF(v_r))`` the
        gradient of ``mean F(v_data) - mean F(v_model)``."""
        key = (n, m, self.chains.device, self.chains.dtype)
        cached = self.__dict__.get("_cd_workspace")
        if cached is None or cached[0] != key:
            opts = {"device": self.chains.device, "dtype": self.chains.dtype}
            rows = torch.empty(n + m, self.rbm.n_visible, **opts)
            act = torch.empty(n + m, self.rbm.n_hidden, **opts)
            weights = torch.cat([torch.full((n,), -1 / n, **opts), torch.full((m,), 1 / m, **opts)])
            cached = (key, rows, act, weights)
            self.__dict__["_cd_workspace"] = cached
        return cached[1], cached[2], cached[3]

    def _pcd_binary_loss(self, v: Tensor) -> dict[str, Tensor]:
        """The PCD loss of Bernoulli units in few ops (:meth:`_pcd_binary_gradient`), its
        closed-form gradient handed to autograd."""
        rbm = self.rbm
        value, grads = self._pcd_binary_gradient(v)
        params = (rbm.weight, rbm.visible_bias, rbm.hidden_bias)
        terms = {"cd": _ClosedFormGradient.apply(value, *params, *grads)}
        if self.weight_decay > 0:
            terms["weight_decay"] = 0.5 * self.weight_decay * rbm.weight.pow(2).sum()
        return terms

    @property
    def can_sgd_step(self) -> bool:
        """Whether :meth:`sgd_step` applies: a persistent Bernoulli rbm with ``momentum=0``."""
        return self.persistent and self.rbm.binary and self.momentum == 0

    @torch.no_grad()
    def sgd_step(self, batch: Tensor, lr: float) -> dict[str, Tensor]:
        """One PCD update by plain SGD (no momentum) in place, without autograd or optimiser:
        the same step as ``loss`` + ``torch.optim.SGD(lr)``, for a training loop that asks a
        model with a closed-form gradient to apply it itself (Bernoulli units, ``persistent``,
        ``momentum=0``). Returns the loss terms of the step (before the update)."""
        rbm = self.rbm
        if not self.can_sgd_step:
            raise ValueError("sgd_step needs a persistent Bernoulli rbm with momentum=0; "
                             "train others through loss() and an optimiser")  # fmt: skip
        v = self._to_visible(batch.to(self.chains))
        rbm.track_data(v)
        value, (g_w, g_b, g_c) = self._pcd_binary_gradient(v)
        terms = {"cd": value}
        if self.weight_decay > 0:
            terms["weight_decay"] = 0.5 * self.weight_decay * rbm.weight.pow(2).sum()
            g_w.add_(rbm.weight, alpha=self.weight_decay)
        params = (rbm.weight, rbm.visible_bias, rbm.hidden_bias)
        for param, grad in zip(params, (g_w, g_b, g_c), strict=True):
            param.sub_(grad, alpha=lr)
        self.invalidate_log_z()
        return terms

    def _pcd_binary_gradient(self, v: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """The PCD loss of Bernoulli units and its gradient ``(dW, db, dc)``, in few ops:
        ``cd_loss``'s value and closed-form gradient with both phases stacked in reused buffers
        (the ``fit_cd`` layout).

        The chains continue from their hidden state, ``h -> v (-> h -> v)^(k-1) -> h``, drawing
        the uniforms in ``fit_cd``'s order. With row weights ``w`` (``-1/n`` data, ``+1/m``
        model), ``F(v) = -b.v - sum_j softplus(a_j)`` and ``p = sigmoid(a)``, ``a = c + v W``:
        ``d/db = w^T V``, ``d/dc = sum_r w_r p_r``, ``d/dW = V^T (w p)`` and the value
        ``mean F(v_data) - mean F(v_model) = b . (w^T V) + sum_j (w^T softplus(A))_j``.
        """
        rbm = self.rbm
        w, b, c = rbm.weight, rbm.visible_bias, rbm.hidden_bias
        n, m = v.shape[0], self.chains.shape[0]
        rows, act, weights = self._workspace(n, m)
        with torch.no_grad():
            rows[:n].copy_(v)
            model_v = rows[n:]
            torch.addmm(b, self.chain_hidden, w.T, out=model_v)  # h -> v
            torch.lt(torch.rand_like(model_v), model_v.sigmoid_(), out=model_v)
            if self.cd_k > 1:
                model_v.copy_(rbm.gibbs(model_v, self.cd_k - 1))
            a = torch.addmm(c, rows, w, out=act)  # both phases' hidden inputs
            softplus = torch.nn.functional.softplus(a)
            p = a.sigmoid_()
            self.chains.copy_(model_v)
            torch.lt(torch.rand_like(p[n:]), p[n:], out=self.chain_hidden)  # v -> h
            grad_b = weights @ rows
            value = torch.dot(b, grad_b.to(b.dtype)) + (weights @ softplus).sum()  # autocast
            p.mul_(weights[:, None])
            grads = (rows.T @ p, grad_b, p.sum(0))
        return value, grads

    # -- the classical training loop (Hinton's guide, fused by hand: see ``cd_loop``) -------
    fit_cd = cd_loop.fit_cd

    # -- sampling and density ----------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``sample_steps`` block Gibbs steps from random starts, ``(n, *data_shape)``."""
        v = self.rbm.gibbs(self.rbm.random_visible(n, generator), self.sample_steps, generator)
        return self._from_visible(v)

    def free_energy(self, x: Tensor) -> Tensor:
        """Unnormalised ``-log p(x) - log Z`` (free energy of the data), ``(batch,)``."""
        return self.rbm.free_energy(self._to_visible(self.check_input(x))) - self._log_det()

    def _ais(self, n_betas: int, n_runs: int, generator: torch.Generator) -> tuple[float, float]:
        if self.use_exact_log_z:
            return self.rbm.exact_log_z(), 0.0
        return self.rbm.ais(n_betas, n_runs, generator)

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        """``-F(x) - log Z`` with ``log Z`` from AIS (cached; ``exact_log_z`` sums it)."""
        return -self.free_energy(x) - self.cached_log_z().to(self.dtype)


@register_model("rbm", family="energy")
class RBM(_RBM):
    """Bernoulli-Bernoulli RBM (Hinton 2002) by CD-k or PCD; log-likelihood by AIS (estimate).

    For 0/1 data (``digits-binary``). ``log_prob(x) = -F(x) - log Z`` where ``log Z`` is an AIS
    estimate from a base-rate model (Salakhutdinov & Murray 2008), cached in the model and
    re-estimated after training; ``estimate_log_z(n_betas, n_runs, generator)`` gives it with
    its standard error, ``exact_log_z=True`` sums it over every hidden state instead (then the
    density is exact; ``n_hidden <= 20``). Train with ``genzoo.Trainer`` or, faster, with the
    classical loop ``model.fit_cd(data, epochs, batch_size, lr)`` (the same update).

    Arguments:
        data_shape: shape of one example (flattened to the visible units).
        n_hidden: number of binary hidden units.
        cd_k: Gibbs steps per update (CD-k; for PCD, steps of the persistent chains).
        persistent: persistent contrastive divergence (Tieleman 2008) with ``n_chains`` chains.
        n_chains: number of persistent chains.
        weight_decay: L2 penalty ``weight_decay / 2 |W|^2`` (the guide's 1e-4 .. 1e-2).
        momentum: SGD momentum (the guide's 0.5 .. 0.9).
        optimizer: ``"sgd"`` (with momentum, as in the guide; use lr about 0.05) or ``"adam"``.
        sample_steps: block Gibbs steps per ``sample`` call.
        ais_betas: intermediate distributions of AIS.
        ais_runs: independent AIS runs (the error bar shrinks as ``1/sqrt(ais_runs)``).
        ais_seed: seed of the AIS run behind ``log_prob`` (so it is reproducible).
        exact_log_z: sum ``log Z`` over all ``2^n_hidden`` hidden states instead of AIS.

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("digits-binary", n=500)
        >>> rbm = genzoo.create("rbm", data=x, n_hidden=16, ais_betas=100, ais_runs=16)
        >>> history = rbm.fit_cd(x, epochs=2, batch_size=100, lr=0.05)
        >>> rbm.sample(4).shape, rbm.log_prob(x[:3]).shape
        (torch.Size([4, 1, 8, 8]), torch.Size([3]))
    """

    visible_type = "bernoulli"
    data_kind = "discrete"
    max_levels = 2  # binary visible units

    def initialize(self, data: Tensor) -> None:
        check_binary(data, "rbm")
        super().initialize(data)

    def check_input(self, x: Tensor) -> Tensor:
        x = super().check_input(x)
        if not torch.compiler.is_compiling():  # as the base's finiteness check
            check_binary(x, "rbm")
        return x


@register_model("gb-rbm", family="energy")
class GaussianRBM(_RBM):
    """Gaussian-Bernoulli RBM (Hinton 2010, section 13.2; Cho et al. 2011) by CD-k or PCD.

    The energy is Cho, Ilin & Raiko's (2011, eq. 2), ``sum_i (v_i - b_i)^2 / (2 sigma_i^2) -
    sum_ij v_i / sigma_i^2 W_ij h_j - c.h``, with visible standard deviations ``sigma_i =
    exp(log_sigma_i)``: learned when ``learn_sigma``, else ``sigma = 1`` (Hinton's unit-variance
    form). Real-valued data are standardised with the training data's mean and standard
    deviation (fixed at ``initialize``, the guide's advice), so ``sigma`` starts at the data's
    scale. Free energy, Gibbs steps, exact ``log Z`` and AIS all use ``sigma``; ``log_prob``
    includes the Jacobian ``-sum log std``, so it is a density of the raw data. ``log Z`` sums
    the Gaussian integral in closed form per hidden state when ``exact_log_z`` is set. Other
    arguments as in ``rbm``.

    Arguments:
        learn_sigma: learn ``log sigma`` by the same CD update (the gradient of the free energy
            of eq. 2). Off by default because plain CD with it is not stable at the guide's
            step sizes: as ``sigma`` shrinks the step on ``W`` grows like ``1 / sigma^2``.
            Measured on two well-separated clusters with known noise (CD-1, momentum 0.9,
            40 epochs): at lr 0.01 ``sigma`` converges to the true noise scale and the exact
            log-likelihood rises from -5.8 (fixed ``sigma``) to -2.9 nats, but at lr 0.05 it
            collapses to -74 and at lr 0.1 to NaN. With it, use lr <= 0.01.

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("moons", n=500)
        >>> rbm = genzoo.create("gb-rbm", data=x, n_hidden=8, exact_log_z=True)
        >>> rbm.log_prob(x[:3]).shape
        torch.Size([3])
    """

    visible_type = "gaussian"
    data_kind = "continuous"

    @torch.no_grad()
    def initialize(self, data: Tensor) -> None:
        x = data.reshape(data.shape[0], -1).to(self.device, self.dtype)
        self.shift.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-3) if x.shape[0] > 1 else torch.ones_like(x[0]))
        super().initialize(data)

    def _to_visible(self, x: Tensor) -> Tensor:
        return (x.reshape(x.shape[0], -1) - self.shift) / self.scale

    def _from_visible(self, v: Tensor) -> Tensor:
        return (v * self.scale + self.shift).reshape(v.shape[0], *self.data_shape)

    def _log_det(self) -> Tensor:
        return -self.scale.log().sum()
