"""The RBM layer: the maths every Boltzmann machine here is made of (rbm, gb-rbm, dbn, dbm).

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

Learning. The log-likelihood gradient is ``-dF(v_data)/dtheta + E_model[dF/dtheta]``;
contrastive divergence replaces the model expectation by samples of a short Gibbs chain. It is
written as the loss ``mean F(v_data) - mean F(v_model)`` with ``v_model`` held fixed, whose
gradient is exactly the CD/PCD update, computed in closed form
(:meth:`RBMLayer.cd_statistics`, :meth:`RBMLayer.cd_loss`).

References:
    Hinton, "Training products of experts by minimizing contrastive divergence",
    Neural Computation 14, 2002.
    Hinton, "A practical guide to training restricted Boltzmann machines", UTML TR 2010-003.
    Cho, Ilin & Raiko, "Improved learning of Gaussian-Bernoulli restricted Boltzmann machines",
    ICANN 2011.
    Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks", ICML 2008.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.errors import DataError
from genzoo.models.energy.ais import ais_log_z, sigmoid_betas

VISIBLE_TYPES = ("bernoulli", "gaussian")
#: Hidden layers up to this size can have their log Z summed exactly (2^n states).
MAX_ENUMERATED_HIDDEN = 20


def sample_bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Bernoulli samples as ``U < p`` with ``U ~ Uniform[0, 1)`` (faster than ``torch.bernoulli``
    on CPU), same shape, device and dtype as ``p``."""
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    return (u < p).to(p.dtype)


def bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """``sum_i log Bernoulli(x_i; sigmoid(logits_i))`` over the last dimension."""
    return -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(
        -1
    )


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
        return sample_bernoulli(self.p_hidden(v), generator)

    def sample_visible(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.visible_given_mean(self.visible_mean(h), generator)

    def visible_given_mean(self, mean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Sample ``v`` given ``E[v | h]``: Bernoulli, or Gaussian with variance ``sigma^2``."""
        if self.binary:
            return sample_bernoulli(mean, generator)
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
            return sample_bernoulli(mean.clamp(0, 1), generator)
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
            h = sample_bernoulli(torch.sigmoid(beta * self.hidden_input(v)), gen)
            a = (1 - beta) * base + beta * (self.visible_bias + h @ self.weight.T)
            if self.binary:
                return sample_bernoulli(torch.sigmoid(a), gen)
            noise = torch.randn(a.shape, generator=gen, device=a.device, dtype=a.dtype)
            return a + noise * self.log_sigma.exp()

        start = self.random_visible(n_runs, generator)
        if self.binary:
            start = sample_bernoulli(torch.sigmoid(base).expand(n_runs, -1), generator)
        return ais_log_z(log_f, transition, start, log_z0, sigmoid_betas(n_betas), generator)

    # -- training ----------------------------------------------------------------------------
    @torch.no_grad()
    def initialize_from_data(self, v: Tensor) -> None:
        """Start from the visible data ``v`` ``(batch, n_visible)``: their mean is the AIS base
        rate and, for Bernoulli units, sets the guide's visible biases ``log p_i / (1 - p_i)``."""
        mean = v.mean(0)
        self.data_mean.copy_(mean)
        if self.binary:
            self.visible_bias.copy_(torch.logit(mean.clamp(0.01, 0.99)))

    @torch.no_grad()
    def track_data(self, v: Tensor, momentum: float = 0.99) -> None:
        """Keep a running mean of the visible data (the AIS base rate)."""
        self.data_mean.mul_(momentum).add_(v.mean(0), alpha=1 - momentum)

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
        its operands cast to that dtype (mixed precision, see ``cd_loop.fit_cd``); ``G`` and
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
