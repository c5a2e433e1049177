"""Deep belief network: greedily trained stacked RBMs (Hinton, Osindero & Teh 2006).

The generative model is a top RBM over the last two layers with directed sigmoid layers below
it: ``p(v, h_1, .., h_L) = p(v | h_1) .. p(h_{L-2} | h_{L-1}) p_RBM(h_{L-1}, h_L)``.

Greedy layer-wise training inside one Trainer run: every RBM is its own player
(``"layer0"``, ``"layer1"``, ...) with its own optimiser, and ``schedule`` trains layer ``i``
during steps ``[i * steps_per_layer, (i + 1) * steps_per_layer)`` (the top layer keeps training
after that). Layer ``i`` sees the data passed up through the frozen layers below it, each
sampling ``h ~ p(h | v)`` (the paper's recognition pass), and learns by CD-k.

``log_prob`` is the importance-sampling estimate of Salakhutdinov & Murray (2008, section 4):
``log p(v) ~ log mean_k p(v, h^k) / q(h^k | v)`` with ``h^k`` drawn by the factorial upward
pass ``q`` and ``K = n_importance`` draws; ``p(h_{L-1})`` needs the top RBM's ``log Z``, an AIS
estimate. With ``K = 1`` this is their variational lower bound; as ``K`` grows it tends to
``log p(v)`` (in expectation it stays below it, while AIS's ``log Z`` errs low, i.e. upward on
``log p``): an estimate, not a bound.

References:
    Hinton, Osindero & Teh, "A fast learning algorithm for deep belief nets",
    Neural Computation 18, 2006.
    Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks", ICML 2008.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genzoo.models.base import GenerativeModel
from genzoo.models.energy.ais import LogZCache, log_mean_exp
from genzoo.models.energy.rbm import OPTIMIZERS, RBMLayer, check_binary
from genzoo.registry import register_model


def bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """``sum_i log Bernoulli(x_i; sigmoid(logits_i))`` over the last dimension."""
    return -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(
        -1
    )


def check_boltzmann_settings(hidden: Sequence[int], optimizer: str, **positive: float) -> None:
    """Shared validation of the Boltzmann models' arguments."""
    if not hidden or any(int(h) < 1 for h in hidden):
        raise ValueError(f"hidden must be a non-empty list of positive widths; got {hidden}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}")
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")


@register_model("dbn", family="energy")
class DBN(LogZCache, GenerativeModel):
    """Deep belief net (Hinton et al. 2006): stacked RBMs trained greedily; IS+AIS estimate.

    For 0/1 data (``digits-binary``). Sampling runs ``sample_steps`` Gibbs steps in the top RBM
    and then one directed down pass.

    Arguments:
        data_shape: shape of one example (flattened to the visible units).
        hidden: widths of the hidden layers, bottom to top (one width gives an RBM).
        steps_per_layer: trainer steps given to each layer before the next one starts.
        cd_k: Gibbs steps of CD-k for every layer.
        weight_decay: L2 penalty on the weights.
        momentum: SGD momentum.
        optimizer: ``"sgd"`` (use lr about 0.05) or ``"adam"``.
        sample_steps: Gibbs steps in the top RBM per ``sample`` call.
        ais_betas, ais_runs, ais_seed: AIS for the top RBM's ``log Z``.
        n_importance: importance samples ``K`` per example in ``log_prob``.

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("digits-binary", n=500)
        >>> dbn = genzoo.create("dbn", data=x, hidden=[32, 16], ais_betas=100, ais_runs=16)
        >>> dbn.sample(2).shape
        torch.Size([2, 1, 8, 8])
    """

    density = "estimate"
    data_kind = "discrete"
    max_levels = 2  # binary visible units

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: Sequence[int] = (64, 64),
        steps_per_layer: int = 1000,
        cd_k: int = 1,
        weight_decay: float = 2e-4,
        momentum: float = 0.9,
        optimizer: str = "sgd",
        sample_steps: int = 1000,
        ais_betas: int = 1000,
        ais_runs: int = 100,
        ais_seed: int = 0,
        n_importance: int = 100,
    ) -> None:
        GenerativeModel.__init__(self, data_shape)
        check_boltzmann_settings(
            hidden, optimizer, steps_per_layer=steps_per_layer, cd_k=cd_k,
            sample_steps=sample_steps, n_importance=n_importance,
        )  # fmt: skip
        widths = [self.data_dim, *(int(h) for h in hidden)]
        self.layers = nn.ModuleList(
            RBMLayer(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.players = tuple(f"layer{i}" for i in range(len(self.layers)))
        self.steps_per_layer, self.cd_k, self.weight_decay = steps_per_layer, cd_k, weight_decay
        self.momentum, self.optimizer, self.sample_steps = momentum, optimizer, sample_steps
        self.n_importance = int(n_importance)
        self._init_log_z_cache(ais_betas, ais_runs, ais_seed)

    def _flat(self, x: Tensor) -> Tensor:
        x = self.check_input(x)
        check_binary(x, self.name)
        return x.reshape(x.shape[0], -1)

    def initialize(self, data: Tensor) -> None:
        check_binary(data, self.name)
        v = data.reshape(data.shape[0], -1).to(self.device, self.dtype)
        self.layers[0].data_mean.copy_(v.mean(0))
        with torch.no_grad():  # the guide's visible bias init for the bottom layer
            self.layers[0].visible_bias.copy_(torch.logit(v.mean(0).clamp(0.01, 0.99)))

    # -- greedy training ---------------------------------------------------------------------
    def schedule(self, step: int) -> Sequence[str]:
        return (self.players[min(step // self.steps_per_layer, len(self.players) - 1)],)

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        return list(self.layers[self.players.index(player)].parameters())

    def optimizer_settings(self, player: str) -> dict[str, Any]:
        return {"optimizer": "sgd", "momentum": self.momentum} if self.optimizer == "sgd" else {}

    def loss(self, batch: Tensor | None, player: str = "layer0") -> dict[str, Tensor]:
        i = self.players.index(player)
        v = self._flat(batch)
        with torch.no_grad():  # 1. pass the data up through the frozen layers below
            for layer in self.layers[:i]:
                v = layer.sample_hidden(v)
        rbm = self.layers[i]
        rbm.track_data(v)
        return rbm.cd_loss(v, rbm.gibbs(v, self.cd_k), self.weight_decay)  # 2. CD-k (eq. of 2002)

    def after_step(self, player: str, step: int) -> None:
        self.invalidate_log_z()

    # -- sampling and density ----------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        top = self.layers[-1]
        h = top.gibbs(top.random_visible(n, generator), self.sample_steps, generator)
        for layer in reversed(self.layers[:-1]):  # the directed down pass
            h = layer.sample_visible(h, generator)
        return h.reshape(n, *self.data_shape)

    def _ais(self, n_betas: int, n_runs: int, generator: torch.Generator) -> tuple[float, float]:
        return self.layers[-1].ais(n_betas, n_runs, generator)

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        """Importance-sampling estimate of ``log p(x)`` with AIS ``log Z`` (see the module)."""
        v = self._flat(x)
        if len(self.layers) == 1:
            return -self.layers[0].free_energy(v) - self.cached_log_z()
        log_z = self.cached_log_z()
        generator = torch.Generator(device=self.device).manual_seed(self.ais_seed + 1)
        h = v.unsqueeze(0).expand(self.n_importance, -1, -1)  # (K, batch, n_visible)
        log_w = torch.zeros(h.shape[:2], device=self.device, dtype=self.dtype)
        for layer in self.layers[:-1]:
            q_logits = layer.hidden_input(h)
            up = torch.bernoulli(torch.sigmoid(q_logits), generator=generator)
            p_logits = layer.visible_bias + up @ layer.weight.T
            log_w += bernoulli_log_prob(h, p_logits) - bernoulli_log_prob(up, q_logits)
            h = up
        log_w += -self.layers[-1].free_energy(h) - log_z  # log p(h_{L-1}) from the top RBM
        return log_mean_exp(log_w, 0)
