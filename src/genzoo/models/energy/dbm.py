"""Deep Boltzmann machine with two hidden layers (Salakhutdinov & Hinton 2009).

``E(v, h1, h2) = -b.v - c1.h1 - c2.h2 - v W1 h1 - h1 W2 h2``, an undirected model. Learning
(section 3 of the paper): data-dependent expectations by mean-field fixed-point updates
``mu1 = sigmoid(c1 + v W1 + W2 mu2)``, ``mu2 = sigmoid(c2 + mu1 W2)``; model expectations from
persistent Gibbs chains. As a loss: ``mean E(v, mu1, mu2) - mean E(v~, h1~, h2~)`` with both
held fixed, whose gradient is the paper's update.

Pre-training (section 3.1) as in the paper, inside the same Trainer run: player ``"layer0"``
trains the bottom RBM with its input doubled (``p(h1 | v) = sigmoid(c1 + 2 v W1)``), player
``"layer1"`` the top RBM with its hidden layer doubled (``p(h1 | h2) = sigmoid(b' + 2 W2 h2)``)
on the bottom layer's hidden samples, each for ``steps_per_layer`` steps by CD-k; then player
``"dbm"`` trains everything jointly. The h1 bias of the DBM is the sum of the bottom RBM's
hidden bias and the top RBM's visible bias.

``log p(v)``: ``h1`` is summed out exactly, ``p*(v, h2) = exp(b.v + c2.h2 + sum_j
softplus(c1 + v W1 + W2 h2)_j)``; ``log p(v) ~ log mean_k p*(v, h2^k) / q(h2^k) - log Z`` with
``h2^k`` drawn from the mean-field posterior ``q(h2) = Bernoulli(mu2)`` (K = ``n_importance``;
``K = 1`` gives the paper's variational lower bound in expectation) and ``log Z`` by AIS over
``(v, h2)`` with ``h1`` summed out (section 4), from a base-rate model. An estimate.

References:
    Salakhutdinov & Hinton, "Deep Boltzmann machines", AISTATS 2009.
    Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks", ICML 2008.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.models.energy.ais import ais_log_z, log_mean_exp, sigmoid_betas
from genzoo.models.energy.boltzmann import DeepBoltzmann, check_counts
from genzoo.models.energy.rbm_layer import RBMLayer, bernoulli_log_prob, sample_bernoulli
from genzoo.registry import register_model


@register_model("dbm", family="energy")
class DBM(DeepBoltzmann):
    """Deep Boltzmann machine (Salakhutdinov & Hinton 2009): mean-field + PCD; IS+AIS estimate.

    For 0/1 data (``digits-binary``); two hidden layers.

    Arguments:
        data_shape: shape of one example (flattened to the visible units).
        hidden: the two hidden widths ``[h1, h2]``.
        steps_per_layer: pre-training steps for each of the two RBMs (0 skips pre-training).
        cd_k: Gibbs steps of CD-k in pre-training.
        n_chains: persistent chains of the joint phase.
        gibbs_steps: Gibbs sweeps of the persistent chains per update.
        mean_field_steps: mean-field fixed-point iterations per update.
        weight_decay: L2 penalty on the weights.
        momentum: SGD momentum.
        optimizer: ``"sgd"`` (use lr about 0.05 for pre-training, 0.01 jointly) or ``"adam"``.
        sample_steps: Gibbs sweeps per ``sample`` call.
        ais_betas, ais_runs, ais_seed: AIS for ``log Z``.
        n_importance: importance samples per example in ``log_prob``.
    """

    players = ("layer0", "layer1", "dbm")

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: Sequence[int] = (64, 32),
        steps_per_layer: int = 500,
        n_chains: int = 100,
        gibbs_steps: int = 1,
        mean_field_steps: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, hidden=hidden, steps_per_layer=steps_per_layer, **kwargs)
        check_counts(n_chains=n_chains, gibbs_steps=gibbs_steps, mean_field_steps=mean_field_steps)
        if len(hidden) != 2:
            raise ValueError(f"dbm has two hidden layers: hidden=[h1, h2]; got {list(hidden)}")
        if steps_per_layer < 0:
            raise ValueError(f"steps_per_layer must be >= 0; got {steps_per_layer}")
        h1, h2 = (int(h) for h in hidden)
        self.bottom = RBMLayer(self.data_dim, h1)  # W1, b, c1 (part)
        self.top = RBMLayer(h1, h2)  # W2, c1 (part), c2
        self.gibbs_steps, self.mean_field_steps = gibbs_steps, mean_field_steps
        self.register_buffer("chain_v", torch.zeros(n_chains, self.data_dim))
        self.register_buffer("chain_h2", torch.zeros(n_chains, h2))

    @property
    def first_layer(self) -> RBMLayer:
        return self.bottom

    # -- the DBM's conditionals --------------------------------------------------------------
    @property
    def c1(self) -> Tensor:
        return self.bottom.hidden_bias + self.top.visible_bias

    def h1_input(self, v: Tensor, h2: Tensor) -> Tensor:
        """``c1 + v W1 + W2 h2``, ``(..., h1)``."""
        return self.c1 + v @ self.bottom.weight + h2 @ self.top.weight.T

    def energy(self, v: Tensor, h1: Tensor, h2: Tensor) -> Tensor:
        """``E(v, h1, h2)``, ``(batch,)``."""
        return -(
            v @ self.bottom.visible_bias
            + h1 @ self.c1
            + h2 @ self.top.hidden_bias
            + ((v @ self.bottom.weight) * h1).sum(-1)
            + ((h1 @ self.top.weight) * h2).sum(-1)
        )

    def log_unnormalized(self, v: Tensor, h2: Tensor) -> Tensor:
        """``log p*(v, h2)`` with ``h1`` summed out, ``(..., )``."""
        return (
            v @ self.bottom.visible_bias
            + h2 @ self.top.hidden_bias
            + F.softplus(self.h1_input(v, h2)).sum(-1)
        )

    def mean_field(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Mean-field posterior ``(mu1, mu2)`` by fixed-point iteration (paper, eq. 11)."""
        mu1 = torch.sigmoid(self.c1 + 2 * v @ self.bottom.weight)  # the pre-training's pass up
        mu2 = torch.sigmoid(self.top.hidden_input(mu1))
        for _ in range(self.mean_field_steps):
            mu1 = torch.sigmoid(self.h1_input(v, mu2))
            mu2 = torch.sigmoid(self.top.hidden_input(mu1))
        return mu1, mu2

    def gibbs(
        self, v: Tensor, h2: Tensor, steps: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``steps`` sweeps ``h1 | v, h2`` then ``(v, h2) | h1``; returns ``(v, h1, h2)``."""
        h1 = v.new_zeros(v.shape[0], self.bottom.n_hidden)
        for _ in range(steps):
            h1 = sample_bernoulli(torch.sigmoid(self.h1_input(v, h2)), generator)
            v = self.bottom.sample_visible(h1, generator)
            h2 = sample_bernoulli(self.top.p_hidden(h1), generator)
        return v, h1, h2

    # -- training ----------------------------------------------------------------------------
    def initialize(self, data: Tensor) -> None:
        super().initialize(data)
        self.chain_v.copy_(sample_bernoulli(self.bottom.data_mean.expand_as(self.chain_v)))

    def schedule(self, step: int) -> Sequence[str]:
        return (
            (self.players[min(step // self.steps_per_layer, 2)],)
            if self.steps_per_layer
            else ("dbm",)
        )

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        if player == "layer0":
            return list(self.bottom.parameters())
        if player == "layer1":
            return list(self.top.parameters())
        return list(self.parameters())

    def loss(self, batch: Tensor | None, player: str = "dbm") -> dict[str, Tensor]:
        v = self._flat(batch)
        self.bottom.track_data(v)
        if player == "layer0":  # bottom RBM with doubled input: F at u = v + v'
            rbm = self.bottom
            with torch.no_grad():
                h = rbm.sample_hidden(2 * v)
                for _ in range(self.cd_k):
                    u = rbm.sample_visible(h) + rbm.sample_visible(h)
                    h = rbm.sample_hidden(u)
            return rbm.cd_loss(2 * v, u, self.weight_decay)
        if player == "layer1":  # top RBM with doubled hidden layer: F = -b'.h1 - 2 sum softplus
            rbm = self.top
            with torch.no_grad():
                h1 = self.bottom.sample_hidden(2 * v)
                model = h1
                for _ in range(self.cd_k):
                    h2 = rbm.sample_hidden(model) + rbm.sample_hidden(model)
                    model = rbm.sample_visible(h2)
            top_f = lambda h: -(h @ rbm.visible_bias) - 2 * F.softplus(rbm.hidden_input(h)).sum(-1)  # noqa: E731
            terms = {"cd": top_f(h1).mean() - top_f(model).mean()}
            terms["weight_decay"] = 0.5 * self.weight_decay * rbm.weight.pow(2).sum()
            return terms
        with torch.no_grad():
            mu1, mu2 = self.mean_field(v)  # 1. data-dependent statistics (mean field)
            cv, ch1, ch2 = self.gibbs(self.chain_v, self.chain_h2, self.gibbs_steps)  # 2. PCD
            self.chain_v.copy_(cv)
            self.chain_h2.copy_(ch2)
        terms = {"pcd": self.energy(v, mu1, mu2).mean() - self.energy(cv, ch1, ch2).mean()}
        weights = self.bottom.weight.pow(2).sum() + self.top.weight.pow(2).sum()
        terms["weight_decay"] = 0.5 * self.weight_decay * weights
        return terms

    # -- sampling and density ----------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        v = self.bottom.random_visible(n, generator)
        h2 = sample_bernoulli(torch.full((n, self.top.n_hidden), 0.5, device=v.device), generator)
        v, _, _ = self.gibbs(v, h2.to(v.dtype), self.sample_steps, generator)
        return v.reshape(n, *self.data_shape)

    def _ais(self, n_betas: int, n_runs: int, generator: torch.Generator) -> tuple[float, float]:
        """AIS over ``(v, h2)`` from the base ``exp(b_A . v)`` (h1, h2 uniform), h1 summed out."""
        base = torch.logit(self.bottom.data_mean.clamp(1e-3, 1 - 1e-3))
        n_h2 = self.top.n_hidden
        log_z0 = float(F.softplus(base).sum()) + (n_h2 + self.bottom.n_hidden) * math.log(2)

        def log_f(state: tuple[Tensor, Tensor], beta: float) -> Tensor:
            # p_beta(v, h1, h2) ~ exp((1 - beta) b_A.v - beta E(v, h1, h2)), h1 summed out
            v, h2 = state
            linear = (1 - beta) * (v @ base) + beta * (
                v @ self.bottom.visible_bias + h2 @ self.top.hidden_bias
            )
            return linear + F.softplus(beta * self.h1_input(v, h2)).sum(-1)

        def transition(state, beta: float, gen) -> tuple[Tensor, Tensor]:
            v, h2 = state
            h1 = sample_bernoulli(torch.sigmoid(beta * self.h1_input(v, h2)), gen)
            a = (1 - beta) * base + beta * (self.bottom.visible_bias + h1 @ self.bottom.weight.T)
            return sample_bernoulli(torch.sigmoid(a), gen), sample_bernoulli(
                torch.sigmoid(beta * self.top.hidden_input(h1)), gen
            )

        v0 = sample_bernoulli(torch.sigmoid(base).expand(n_runs, -1), generator)
        h0 = sample_bernoulli(
            torch.full((n_runs, n_h2), 0.5, device=v0.device, dtype=v0.dtype), generator
        )
        return ais_log_z(log_f, transition, (v0, h0), log_z0, sigmoid_betas(n_betas), generator)

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        """Importance-sampling estimate of ``log p(x)`` with AIS ``log Z`` (see the module)."""
        v = self._flat(x)
        log_z = self.cached_log_z()
        generator = torch.Generator(device=self.device).manual_seed(self.ais_seed + 1)
        _, mu2 = self.mean_field(v)
        q = mu2.clamp(1e-6, 1 - 1e-6).expand(self.n_importance, -1, -1)  # (K, batch, h2)
        h2 = sample_bernoulli(q, generator)
        log_w = self.log_unnormalized(v, h2) - bernoulli_log_prob(h2, torch.logit(q))
        return log_mean_exp(log_w, 0) - log_z
