"""Restricted Boltzmann machines: Bernoulli-Bernoulli and Gaussian-Bernoulli, CD-k and PCD.

An RBM is the bipartite energy ``E(v, h) = -b.v - c.h - v W h`` over visible ``v`` and binary
hidden ``h`` (Bernoulli visibles), or, for real-valued visibles with standard deviations
``sigma_i`` (the form of Cho, Ilin & Raiko 2011, eq. 2),

    E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_ij v_i / sigma_i^2 W_ij h_j - c.h.

Summing out ``h`` gives the free energy ``F(v) = -log sum_h exp(-E(v, h))``:

    Bernoulli:  F(v) = -b.v - sum_j softplus(c_j + (v W)_j)
    Gaussian:   F(v) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (u W)_j)

with ``u = v / sigma^2``, and ``p(v) = exp(-F(v)) / Z``. Both conditionals factorise:
``p(h_j = 1 | v) = sigmoid(c_j + (u W)_j)`` (``u = v`` for Bernoulli units) and
``p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)`` or ``p(v_i | h) = N(b_i + (W h)_i, sigma_i^2)``,
so block Gibbs sampling alternates them.

Training. The log-likelihood gradient is ``-dF(v_data)/dtheta + E_model[dF/dtheta]``; contrastive
divergence (Hinton 2002) replaces the model expectation by samples after ``k`` Gibbs steps
started at the data (CD-k), persistent CD (Tieleman 2008) by chains kept across updates (here
the chains keep their hidden state, sampled from ``p(h | v_model)`` at each update, as
scikit-learn does; a sweep is ``h -> v -> h``). Both are written as the loss
``mean F(v_data) - mean F(v_model)`` with ``v_model`` held fixed, whose gradient is exactly the
CD/PCD update (:meth:`RBMLayer.cd_statistics`); an L2 penalty on ``W`` is the guide's weight
decay and SGD with momentum its momentum. ``fit_cd`` runs the same update as the guide's
classical loop (shuffled mini-batch sweeps, in place, no autograd); ``genzoo.Trainer`` runs it
through the optimiser.

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

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import DataError
from genzoo.models.base import GenerativeModel
from genzoo.models.energy.ais import LogZCache, ais_log_z, sigmoid_betas
from genzoo.registry import register_model
from genzoo.validation import check_finite, check_shape

VISIBLE_TYPES = ("bernoulli", "gaussian")
OPTIMIZERS = ("sgd", "adam")
#: ``fit_cd``'s choices for the dtype of its matrix products (see its docstring).
MATMUL_DTYPES = ("float32", "bfloat16")
#: Hidden layers up to this size can have their log Z summed exactly (2^n states).
MAX_ENUMERATED_HIDDEN = 20


def _bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Bernoulli samples as ``U < p`` with ``U ~ Uniform[0, 1)`` (faster than ``torch.bernoulli``
    on CPU), same shape, device and dtype as ``p``."""
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    return (u < p).to(p.dtype)


class _ClosedFormGradient(torch.autograd.Function):
    """Return ``value``; backpropagate precomputed gradients into the given parameters.

    ``forward(value, params, grads)`` with ``params`` and ``grads`` as flat argument lists of
    equal length: the backward pass sends ``upstream * grads[i]`` to ``params[i]``, so a loss
    whose gradient is known in closed form costs no autograd graph.
    """

    @staticmethod
    def forward(ctx, value: Tensor, *args: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(*args[len(args) // 2 :])
        return value.detach().clone()

    @staticmethod
    def backward(ctx, upstream: Tensor):  # type: ignore[override]
        grads = ctx.saved_tensors
        return (None, *(upstream * g for g in grads), *(None for _ in grads))


def _low_matmul_dtype(name: str, device: torch.device, dtype: torch.dtype) -> torch.dtype | None:
    """The dtype ``fit_cd``'s products take for ``matmul_dtype=name``; ``None``: the model's."""
    if name == "float32":
        return None
    low = getattr(torch, name)
    if torch.device(device).type == "cuda" and not torch.cuda.is_bf16_supported():
        warnings.warn(
            f"this CUDA device has no {name} support; fit_cd computes in {dtype}", stacklevel=3
        )
        return None
    return low


def check_binary(x: Tensor, who: str, chunk: int = 1 << 16) -> None:
    """Refuse data that are not all 0 or 1 (Bernoulli units; NaN and inf are refused too).

    ``x (1 - x)`` is 0 exactly at 0 and 1 (NaN or inf elsewhere), tested in cache-sized chunks
    on the CPU (in one piece on an accelerator).
    """
    if x.dtype == torch.bool:
        return
    flat = x.reshape(-1)
    pieces = flat.split(chunk) if flat.device.type == "cpu" else (flat,)
    if any(bool((c * (1 - c)).any()) for c in pieces):
        raise DataError(
            f"{who} has Bernoulli visible units and needs 0/1 data such as 'digits-binary'; "
            "for real-valued data use 'gb-rbm' (Gaussian visible units) or a continuous model"
        )


class RBMLayer(nn.Module):
    """One RBM: weights ``W`` ``(n_visible, n_hidden)``, visible bias ``b``, hidden bias ``c``.

    The maths of every Boltzmann model here: free energy, conditionals, Gibbs steps, exact
    ``log Z`` by enumerating the hidden states, and AIS from a base-rate model. Gaussian
    layers also hold ``log_sigma`` ``(n_visible,)``, the log standard deviations of Cho et
    al.'s energy (a parameter when ``learn_sigma``, else a buffer of zeros: unit variance).

    Arguments:
        n_visible: number of visible units.
        n_hidden: number of binary hidden units.
        visible: ``"bernoulli"`` or ``"gaussian"`` visible units.
        init_scale: standard deviation of the initial weights (the guide's 0.01).
        learn_sigma: Gaussian units only: learn ``log sigma`` (else ``sigma = 1``).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: str = "bernoulli",
        init_scale: float = 0.01,
        learn_sigma: bool = True,
    ) -> None:
        super().__init__()
        if visible not in VISIBLE_TYPES:
            raise ValueError(f"visible must be one of {VISIBLE_TYPES}; got {visible!r}")
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"need n_visible, n_hidden >= 1; got {n_visible}, {n_hidden}")
        self.visible = visible
        self.weight = nn.Parameter(init_scale * torch.randn(n_visible, n_hidden))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        if not self.binary:
            if learn_sigma:
                self.log_sigma = nn.Parameter(torch.zeros(n_visible))
            else:
                self.register_buffer("log_sigma", torch.zeros(n_visible))
        #: Mean of the visible data seen in training: the base-rate model of AIS.
        self.register_buffer("data_mean", torch.full((n_visible,), 0.5 if self.binary else 0.0))

    @property
    def binary(self) -> bool:
        return self.visible == "bernoulli"

    @property
    def learns_sigma(self) -> bool:
        return not self.binary and isinstance(self.log_sigma, nn.Parameter)

    @property
    def n_visible(self) -> int:
        return self.weight.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.weight.shape[1]

    # -- the maths ---------------------------------------------------------------------------
    def precision(self) -> Tensor | None:
        """``1 / sigma^2`` ``(n_visible,)`` of Gaussian units; ``None`` for Bernoulli units."""
        return None if self.binary else torch.exp(-2 * self.log_sigma)

    def scaled(self, v: Tensor) -> Tensor:
        """``u = v / sigma^2``, what the hidden units see (``v`` itself for Bernoulli units)."""
        return v if self.binary else v * self.precision()

    def hidden_input(self, v: Tensor) -> Tensor:
        """``c + u W``, ``(batch, n_visible) -> (batch, n_hidden)``."""
        return self.hidden_bias + self.scaled(v) @ self.weight

    def _visible_term(self, v: Tensor) -> Tensor:
        """The ``h``-free part of the energy: ``-b.v`` or ``sum (v - b)^2 / (2 sigma^2)``."""
        if self.binary:
            return -(v @ self.visible_bias)
        return 0.5 * ((v - self.visible_bias).pow(2) * self.precision()).sum(-1)

    def free_energy(self, v: Tensor, hidden_input: Tensor | None = None) -> Tensor:
        """``F(v)``, ``(batch, n_visible) -> (batch,)``; ``p(v) = exp(-F(v)) / Z``.

        ``hidden_input``, if given, is ``c + u W`` already computed (saves a product).
        """
        a = self.hidden_input(v) if hidden_input is None else hidden_input
        return self._visible_term(v) - F.softplus(a).sum(-1)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """``E(v, h)``, ``(batch, n_visible), (batch, n_hidden) -> (batch,)``."""
        coupling = ((self.scaled(v) @ self.weight) * h).sum(-1) + h @ self.hidden_bias
        return self._visible_term(v) - coupling

    def p_hidden(self, v: Tensor) -> Tensor:
        """``p(h = 1 | v)``, ``(batch, n_hidden)``."""
        return torch.sigmoid(self.hidden_input(v))

    def visible_mean(self, h: Tensor) -> Tensor:
        """``E[v | h]``: ``sigmoid(b + W h)`` or ``b + W h``, ``(batch, n_visible)``."""
        a = self.visible_bias + h @ self.weight.T
        return torch.sigmoid(a) if self.binary else a

    def sample_hidden(self, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return _bernoulli(self.p_hidden(v), generator)

    def sample_visible(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.visible_given_mean(self.visible_mean(h), generator)

    def visible_given_mean(self, mean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Sample ``v`` given ``E[v | h]``: Bernoulli, or Gaussian with variance ``sigma^2``."""
        if self.binary:
            return _bernoulli(mean, generator)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise * self.log_sigma.exp()

    @torch.no_grad()
    def gibbs(self, v: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """``k`` block Gibbs steps ``v -> h -> v``; returns the last visible sample."""
        for _ in range(k):
            v = self.sample_visible(self.sample_hidden(v, generator), generator)
        return v

    @torch.no_grad()
    def random_visible(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Chain starts: Bernoulli(data mean) or N(data mean, sigma^2), ``(n, n_visible)``."""
        mean = self.data_mean.expand(n, -1)
        if self.binary:
            return _bernoulli(mean.clamp(0, 1), generator)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise * self.log_sigma.exp()

    # -- the normaliser ----------------------------------------------------------------------
    @torch.no_grad()
    def exact_log_z(self, chunk: int = 4096) -> float:
        """``log Z`` by summing over all ``2^n_hidden`` hidden states (``n_hidden <= 20``)."""
        n_h = self.n_hidden
        if n_h > MAX_ENUMERATED_HIDDEN:
            raise ValueError(f"exact log Z enumerates 2^n_hidden states; n_hidden={n_h} > 20")
        bits = 2 ** torch.arange(n_h, device=self.weight.device)
        w, b, c = self.weight.double(), self.visible_bias.double(), self.hidden_bias.double()
        parts = []
        for start in range(0, 2**n_h, chunk):
            codes = torch.arange(start, min(start + chunk, 2**n_h), device=bits.device)
            h = ((codes[:, None] & bits) > 0).double()  # (chunk, n_h)
            a = b + h @ w.T  # (chunk, n_visible)
            if self.binary:  # sum_v exp(-E) = exp(c.h) prod_i (1 + exp(a_i))
                parts.append(h @ c + F.softplus(a).sum(-1))
            else:  # integral over v: exp(c.h + sum_i (a_i^2 - b_i^2) / (2 sigma_i^2)) * norm
                prec = self.precision().double()
                parts.append(h @ c + 0.5 * ((a.pow(2) - b.pow(2)) * prec).sum(-1))
        log_z = torch.logsumexp(torch.cat(parts), 0).item()
        if not self.binary:  # (2 pi)^(D/2) prod_i sigma_i
            log_z += 0.5 * self.n_visible * math.log(2 * math.pi) + self.log_sigma.sum().item()
        return log_z

    @torch.no_grad()
    def ais(
        self, n_betas: int, n_runs: int, generator: torch.Generator | None = None
    ) -> tuple[float, float]:
        """AIS estimate of ``(log Z, stderr)`` from the base-rate model (Salakhutdinov & Murray).

        The base ``p_0(v)`` has no weights: ``f_0(v) = exp(b_A . v)`` with ``b_A`` the logit of
        the training data's mean (Bernoulli), or ``N(v; mean, sigma^2)`` (Gaussian, the model's
        own ``sigma``), times the ``2^n_hidden`` states of free hidden units. The intermediate
        joint scales the RBM's energy, ``p_beta(v, h) ~ f_0(v)^(1 - beta) exp(-beta E(v, h))``,
        so (eq. 14 of the paper) ``log f_beta(v) = (1 - beta) log f_0(v) + beta [visible term] +
        sum_j softplus(beta (c + u W)_j)``; its Gibbs step samples ``h ~ sigmoid(beta (c + u
        W))`` and ``v`` from the visible conditional with bias ``(1 - beta) b_A + beta b`` and
        weights ``beta W`` (and the same ``sigma``).
        """
        log_free_hidden = self.n_hidden * math.log(2)
        if self.binary:
            base = torch.logit(self.data_mean.clamp(1e-3, 1 - 1e-3))
            log_z0 = float(F.softplus(base).sum()) + log_free_hidden

            def log_f(v: Tensor, beta: float) -> Tensor:
                visible = (1 - beta) * (v @ base) + beta * (v @ self.visible_bias)
                return visible + F.softplus(beta * self.hidden_input(v)).sum(-1)

        else:
            base = self.data_mean
            prec = self.precision()
            log_z0 = (
                0.5 * self.n_visible * math.log(2 * math.pi)
                + self.log_sigma.sum().item()
                + log_free_hidden
            )

            def log_f(v: Tensor, beta: float) -> Tensor:
                visible = (1 - beta) * ((v - base).pow(2) * prec).sum(-1) + beta * (
                    (v - self.visible_bias).pow(2) * prec
                ).sum(-1)
                return -0.5 * visible + F.softplus(beta * self.hidden_input(v)).sum(-1)

        def transition(v: Tensor, beta: float, gen: torch.Generator | None) -> Tensor:
            h = _bernoulli(torch.sigmoid(beta * self.hidden_input(v)), gen)
            a = (1 - beta) * base + beta * (self.visible_bias + h @ self.weight.T)
            if self.binary:
                return _bernoulli(torch.sigmoid(a), gen)
            noise = torch.randn(a.shape, generator=gen, device=a.device, dtype=a.dtype)
            return a + noise * self.log_sigma.exp()

        start = self.random_visible(n_runs, generator)
        if self.binary:
            start = _bernoulli(torch.sigmoid(base).expand(n_runs, -1), generator)
        return ais_log_z(log_f, transition, start, log_z0, sigmoid_betas(n_betas), generator)

    # -- training ----------------------------------------------------------------------------
    @torch.no_grad()
    def track_data(self, v: Tensor, momentum: float = 0.99) -> None:
        """Keep a running mean of the visible data (the AIS base rate)."""
        self.data_mean.mul_(momentum).add_((1 - momentum) * v.mean(0))

    @torch.no_grad()
    def cd_statistics(
        self,
        v: Tensor,
        p: Tensor,
        row_weights: Tensor,
        out: Tensor | None = None,
        matmul_dtype: torch.dtype | None = None,
    ) -> tuple[Tensor, ...]:
        """Minus the gradient of ``sum_r w_r F(v_r)``: the CD statistics, in closed form.

        ``v`` ``(rows, n_visible)`` stacks data and model samples, ``p`` ``(rows, n_hidden)``
        holds ``sigmoid(c + u W)`` of each row and is **scaled in place** by ``row_weights``
        ``(rows,)`` (``+1/n`` for the ``n`` data rows, ``-1/m`` for the ``m`` model rows, which
        makes the sum ``mean F(v_data) - mean F(v_model)``). With ``u = v / sigma^2``:

            -dF/dW = u^T p,  -dF/dc = p,  -dF/db = (v - b) / sigma^2,
            -dF/dlog sigma_i = (v_i - b_i)^2 / sigma_i^2 - 2 u_i (W p)_i,

        summed over rows with the weights: one product ``G = u^T (w p)`` (written into ``out``
        if given) serves ``W`` and ``log sigma`` (``sum_r w_r u_ri (W p_r)_i = sum_j W_ij
        G_ij``); ``b`` cancels in the bias term because the weights sum to 0. Returns
        ``(dW, db, dc)`` and, for a layer that learns ``sigma``, ``dlog_sigma``.
        ``matmul_dtype`` (e.g. ``torch.bfloat16``), if given, computes the product ``G`` with
        its operands cast to that dtype (mixed precision, see :meth:`RBM.fit_cd`); ``G`` and
        everything else stay in the layer's dtype.
        """
        p.mul_(row_weights[:, None])
        u = self.scaled(v)
        if matmul_dtype is not None and matmul_dtype != u.dtype:
            low = torch.mm(u.T.to(matmul_dtype), p.to(matmul_dtype))
            g_w = out.copy_(low) if out is not None else low.to(u.dtype)
        else:
            g_w = torch.mm(u.T, p, out=out) if out is not None else u.T @ p  # (n_visible, n_hidden)
        g_c = p.sum(0)
        g_b = row_weights @ v  # (n_visible,)
        if self.binary:
            return g_w, g_b, g_c
        prec = self.precision()
        g_b = g_b * prec
        if not self.learns_sigma:
            return g_w, g_b, g_c
        g_s = (row_weights @ (v - self.visible_bias).pow(2)) * prec
        g_s -= 2 * (self.weight * g_w).sum(1)
        return g_w, g_b, g_c, g_s

    def trained_parameters(self) -> list[nn.Parameter]:
        """``[W, b, c]`` and ``log sigma`` when learned: the order of ``cd_statistics``."""
        params = [self.weight, self.visible_bias, self.hidden_bias]
        return params + [self.log_sigma] if self.learns_sigma else params

    def cd_loss(
        self,
        v_data: Tensor,
        v_model: Tensor,
        weight_decay: float,
        data_input: Tensor | None = None,
        model_input: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """``mean F(v_data) - mean F(v_model)`` (+ L2 on ``W``): its gradient is the CD update.

        The gradient is written in closed form (:meth:`cd_statistics`, one product for both
        phases) rather than by autograd through ``F``. Both ``v`` are treated as constants
        (no gradient flows into them). ``data_input``/``model_input``: ``c + u W`` of either,
        if already computed.
        """
        with torch.no_grad():
            a_data = self.hidden_input(v_data) if data_input is None else data_input
            a_model = self.hidden_input(v_model) if model_input is None else model_input
            value = (
                self.free_energy(v_data, a_data).mean() - self.free_energy(v_model, a_model).mean()
            )
            n, m = v_data.shape[0], v_model.shape[0]
            weights = torch.cat([v_data.new_full((n,), 1 / n), v_model.new_full((m,), -1 / m)])
            p = torch.sigmoid(torch.cat([a_data, a_model]))  # (n + m, n_hidden)
            stats = self.cd_statistics(torch.cat([v_data, v_model]), p, weights)
            grads = [-s for s in stats]
        params = self.trained_parameters()
        terms = {"cd": _ClosedFormGradient.apply(value, *params, *grads)}
        if weight_decay > 0:
            terms["weight_decay"] = 0.5 * weight_decay * self.weight.pow(2).sum()
        return terms


class _RBM(LogZCache, GenerativeModel):
    """Shared body of ``rbm`` and ``gb-rbm``: CD-k/PCD loss, Gibbs sampling, AIS ``log_prob``."""

    visible_type: str = "bernoulli"
    density = "estimate"

    def __init__(
        self,
        data_shape: Sequence[int],
        n_hidden: int = 64,
        cd_k: int = 1,
        persistent: bool = False,
        n_chains: int = 100,
        weight_decay: float = 2e-4,
        momentum: float = 0.9,
        optimizer: str = "sgd",
        sample_steps: int = 1000,
        ais_betas: int = 1000,
        ais_runs: int = 100,
        ais_seed: int = 0,
        exact_log_z: bool = False,
        learn_sigma: bool = False,
    ) -> None:
        GenerativeModel.__init__(self, data_shape)
        if learn_sigma and self.visible_type != "gaussian":
            raise ValueError("learn_sigma needs Gaussian visible units: use gb-rbm")
        if cd_k < 1 or n_chains < 1 or sample_steps < 1:
            raise ValueError(
                f"need cd_k, n_chains, sample_steps >= 1; got {cd_k}, {n_chains}, {sample_steps}"
            )
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}")
        if weight_decay < 0 or not 0 <= momentum < 1:
            raise ValueError(
                f"need weight_decay >= 0, 0 <= momentum < 1; got {weight_decay}, {momentum}"
            )
        if exact_log_z and n_hidden > MAX_ENUMERATED_HIDDEN:
            raise ValueError(
                f"exact_log_z enumerates 2^n_hidden states: needs n_hidden <= 20, "
                f"got {n_hidden}; use AIS (exact_log_z=False)"
            )
        self.rbm = RBMLayer(self.data_dim, n_hidden, self.visible_type, learn_sigma=learn_sigma)
        self.cd_k, self.persistent, self.weight_decay = int(cd_k), bool(persistent), weight_decay
        self.momentum, self.optimizer, self.sample_steps = momentum, optimizer, int(sample_steps)
        self.use_exact_log_z = bool(exact_log_z)
        if self.use_exact_log_z:
            self.density = "exact"  # summed over every hidden state: no estimate involved
        self._init_log_z_cache(ais_betas, ais_runs, ais_seed)
        # PCD chains: the last visible sample and the hidden state the next sweep starts from
        self.register_buffer("chains", self.rbm.random_visible(int(n_chains)))
        self.register_buffer("chain_hidden", self.rbm.sample_hidden(self.chains))
        if not self.rbm.binary:  # fixed standardisation of real-valued data
            self.register_buffer("shift", torch.zeros(self.data_dim))
            self.register_buffer("scale", torch.ones(self.data_dim))

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
        v = self._to_visible(data.to(self.device, self.dtype))
        self.rbm.data_mean.copy_(v.mean(0))
        if self.rbm.binary:  # the guide's visible bias init: log p_i / (1 - p_i)
            self.rbm.visible_bias.copy_(torch.logit(v.mean(0).clamp(0.01, 0.99)))
        self.chains.copy_(self.rbm.random_visible(self.chains.shape[0]))
        self.chain_hidden.copy_(self.rbm.sample_hidden(self.chains))

    def loss(self, batch: Tensor | None, player: str = "model") -> dict[str, Tensor]:
        # The Trainer validated the training data once; batches are not re-scanned here.
        rbm = self.rbm
        v = self._to_visible(batch.to(self.device, self.dtype))
        rbm.track_data(v)
        with torch.no_grad():
            a_data = rbm.hidden_input(v)  # (batch, n_hidden), shared by both phases below
            if self.persistent:  # PCD: continue the chains from their hidden state, h -> v -> h
                v_model = rbm.sample_visible(self.chain_hidden)
                v_model = rbm.gibbs(v_model, self.cd_k - 1)
                a_model = rbm.hidden_input(v_model)
                self.chains.copy_(v_model)
                self.chain_hidden.copy_(_bernoulli(torch.sigmoid(a_model)))
            else:  # CD-k: k Gibbs steps from the data, the first from a_data
                mean = rbm.visible_mean(_bernoulli(torch.sigmoid(a_data)))
                v_model = rbm.gibbs(rbm.visible_given_mean(mean), self.cd_k - 1)
                a_model = None
        terms = rbm.cd_loss(v, v_model, self.weight_decay, data_input=a_data, model_input=a_model)
        if not self.persistent:  # the guide's (imperfect) progress signal, from step 1's mean
            terms["diag/reconstruction"] = (v - mean).pow(2).sum(-1).mean()
        return terms

    def optimizer_settings(self, player: str) -> dict[str, Any]:
        if self.optimizer == "sgd":
            return {"optimizer": "sgd", "momentum": self.momentum}
        return {}

    def after_step(self, player: str, step: int) -> None:
        self.invalidate_log_z()

    # -- the classical training loop ---------------------------------------------------------
    @torch.no_grad()
    def fit_cd(
        self,
        data: Tensor,
        epochs: int = 1,
        batch_size: int = 100,
        lr: float = 0.05,
        generator: torch.Generator | None = None,
        matmul_dtype: str = "float32",
    ) -> list[dict[str, float]]:
        """Train in place by the classical CD-k / PCD loop of Hinton's guide (2010); returns
        one row per epoch.

        Each epoch sweeps the data ``(N, *data_shape)`` once, in ``ceil(N / batch_size)``
        shuffled mini-batches of (nearly) equal size, and applies per batch exactly the update
        ``genzoo.Trainer`` applies with :meth:`loss` and SGD: the CD-k / PCD statistics of
        :meth:`RBMLayer.cd_statistics`, weight decay ``weight_decay``, momentum ``momentum``
        (its velocity starts from zero at each call), step ``lr``. It runs under ``no_grad``
        with preallocated buffers (no autograd, no optimiser, no per-step logging), which makes
        it several times faster for small layers. ``generator`` (on the model's device) drives
        the shuffling and the Gibbs sampling (``None``: torch's global generator). The AIS base
        rate is the data's mean. A row is ``{"epoch", "reconstruction"}``: the mean squared
        error of the first reconstruction, CD only (the guide's imperfect progress signal;
        NaN for PCD, which computes none).

        ``matmul_dtype``: ``"float32"`` (default) computes everything in the model's own dtype
        (float32 unless the model was converted). ``"bfloat16"`` is mixed precision, standard
        in deep learning (Micikevicius et al. 2018, "Mixed precision training", for float16;
        Kalamkar et al. 2019, "A study of BFLOAT16 for deep learning training"): the three
        matrix products per Gibbs step and update (``c + u W``, ``b + W h``, ``u^T p``) take
        bfloat16 operands (``W`` is cast once per step), accumulate in float32 inside the
        kernel and return a bfloat16 result that is upcast before the bias is added, while the
        parameters, momentum buffers, biases, sampling probabilities and updates stay in the
        model's dtype. The products then carry bfloat16's relative error (about ``4e-3``); on
        CPUs with native bfloat16 (AVX512-BF16/AMX) and on recent GPUs they run about twice
        as fast. Where the device has no native bfloat16 it still runs (emulated, possibly
        slower; on a CUDA device without bfloat16 support it falls back to the model's dtype
        with a warning).
        """
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(
                f"matmul_dtype must be one of {', '.join(MATMUL_DTYPES)}; got {matmul_dtype!r}"
            )
        if self.optimizer != "sgd":
            raise ValueError("fit_cd applies SGD with momentum; use genzoo.Trainer for adam")
        if epochs < 0 or batch_size < 1 or lr <= 0:
            raise ValueError(
                f"need epochs >= 0, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}"
            )
        rbm = self.rbm
        check_shape(data, self.data_shape)
        x = data.to(self.device, self.dtype)
        if rbm.binary:  # 0/1 data are finite: one pass (half the time of check_input)
            check_binary(x, self.name or "rbm")
        else:
            check_finite(x, "data")
        v_all = self._to_visible(x).contiguous()  # (N, D)
        n_rows, n_vis, n_hid = v_all.shape[0], rbm.n_visible, rbm.n_hidden
        n_batches = max(1, math.ceil(n_rows / batch_size))
        n_max = math.ceil(n_rows / n_batches)
        m_max = self.chains.shape[0] if self.persistent else n_max
        rbm.data_mean.copy_(v_all.mean(0))
        w, b, c = rbm.weight, rbm.visible_bias, rbm.hidden_bias
        params = rbm.trained_parameters()
        opts = {"device": self.device, "dtype": self.dtype}
        # data rows end at n_max and model rows start there, so both phases are one block
        vv = torch.empty(n_max + m_max, n_vis, **opts)  # (rows, D)
        act = torch.empty(n_max + m_max, n_hid, **opts)  # c + u W, then p(h | v), (rows, H)
        uni_h = torch.empty(max(n_max, m_max), n_hid, **opts)
        noise = torch.empty(m_max, n_vis, **opts)
        hid = self.chain_hidden if self.persistent else torch.empty(n_max, n_hid, **opts)
        g_w = torch.empty_like(w)
        weights = torch.empty(n_max + m_max, **opts)
        velocity = [torch.zeros_like(p) for p in params] if self.momentum > 0 else None
        shape, history = None, []
        low = _low_matmul_dtype(matmul_dtype, self.device, self.dtype)
        w_mm = w if low is None else torch.empty_like(w, dtype=low)  # W as the products see it

        def affine_(bias: Tensor, x: Tensor, y: Tensor, out: Tensor) -> Tensor:
            """``out <- bias + x @ y`` (``y`` is ``w_mm`` or its transpose)."""
            if low is None:
                return torch.addmm(bias, x, y, out=out)
            return torch.add(torch.mm(x.to(low), y), bias, out=out)

        def visible_(h: Tensor, out: Tensor) -> None:  # out <- v ~ p(v | h), in place
            affine_(b, h, w_mm.T, out)
            if rbm.binary:
                torch.lt(noise[: len(out)].uniform_(generator=generator), out.sigmoid_(), out=out)
            else:
                out.add_(noise[: len(out)].normal_(generator=generator).mul_(rbm.log_sigma.exp()))

        def hidden_(v: Tensor, out: Tensor, a: Tensor) -> None:  # out <- h ~ p(h | v)
            affine_(c, rbm.scaled(v), w_mm, a)
            torch.lt(uni_h[: len(out)].uniform_(generator=generator), a.sigmoid_(), out=out)

        for epoch in range(epochs):
            perm = torch.randperm(n_rows, generator=generator, device=self.device)
            recon = torch.zeros((), **opts)
            for index in torch.tensor_split(perm, n_batches):
                n = index.shape[0]
                m = m_max if self.persistent else n
                data_v, model_v = vv[n_max - n : n_max], vv[n_max : n_max + m]
                rows, a = vv[n_max - n : n_max + m], act[n_max - n : n_max + m]
                torch.index_select(v_all, 0, index, out=data_v)
                if low is not None:
                    w_mm.copy_(w)  # the one cast of W per step
                if self.persistent:  # continue the chains from their hidden state: h -> v -> h
                    visible_(hid, model_v)
                    for _ in range(self.cd_k - 1):
                        hidden_(model_v, hid, a[n:])
                        visible_(hid, model_v)
                    affine_(c, rbm.scaled(rows), w_mm, a).sigmoid_()  # both phases
                    torch.lt(uni_h[:m].uniform_(generator=generator), a[n:], out=hid)
                else:  # CD-k: k Gibbs steps from the data
                    affine_(c, rbm.scaled(data_v), w_mm, a[:n]).sigmoid_()
                    torch.lt(uni_h[:n].uniform_(generator=generator), a[:n], out=hid[:n])
                    affine_(b, hid[:n], w_mm.T, model_v)
                    mean = model_v.sigmoid_() if rbm.binary else model_v
                    recon += (data_v - mean).pow(2).sum() / n
                    if rbm.binary:
                        torch.lt(noise[:n].uniform_(generator=generator), mean, out=model_v)
                    else:
                        model_v.add_(noise[:n].normal_(generator=generator) * rbm.log_sigma.exp())
                    for _ in range(self.cd_k - 1):
                        hidden_(model_v, hid[:n], a[n:])
                        visible_(hid[:n], model_v)
                    affine_(c, rbm.scaled(model_v), w_mm, a[n:]).sigmoid_()
                if shape != (n, m):  # +1/n for data rows, -1/m for model rows
                    shape = (n, m)
                    weights[:n].fill_(1 / n)
                    weights[n : n + m].fill_(-1 / m)
                stats = rbm.cd_statistics(rows, a, weights[: n + m], out=g_w, matmul_dtype=low)
                if self.weight_decay > 0:
                    g_w.sub_(w, alpha=self.weight_decay)  # minus the gradient of wd/2 |W|^2
                for i, (p, s) in enumerate(zip(params, stats, strict=True)):
                    if velocity is None:  # SGD: p -= lr grad, with s = -grad
                        p.add_(s, alpha=lr)
                    else:  # SGD with momentum: buf = mu buf + grad; p -= lr buf
                        p.add_(velocity[i].mul_(self.momentum).add_(s), alpha=lr)
            if self.persistent:
                self.chains.copy_(vv[n_max:])
            history.append(
                {
                    "epoch": epoch + 1,
                    "reconstruction": math.nan if self.persistent else recon.item() / n_batches,
                }
            )
        self.invalidate_log_z()
        return history

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
