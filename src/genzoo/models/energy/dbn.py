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

from genzoo.models.base import model_fact
from genzoo.models.energy.ais import log_mean_exp
from genzoo.models.energy.boltzmann import DeepBoltzmann, check_counts
from genzoo.models.energy.rbm_layer import RBMLayer, bernoulli_log_prob
from genzoo.registry import register_model


@register_model("dbn", family="energy")
class DBN(DeepBoltzmann):
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

    @model_fact(("layer0", "layer1"))
    def players(self) -> tuple[str, ...]:
        """One player per RBM layer, trained greedily bottom up: ``layer0``, ``layer1``, ..."""
        return tuple(f"layer{i}" for i in range(len(self.layers)))

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: Sequence[int] = (64, 64),
        steps_per_layer: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, hidden=hidden, steps_per_layer=steps_per_layer, **kwargs)
        check_counts(steps_per_layer=steps_per_layer)
        widths = [self.data_dim, *(int(h) for h in hidden)]
        self.layers = nn.ModuleList(
            RBMLayer(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    @property
    def first_layer(self) -> RBMLayer:
        return self.layers[0]

    # -- greedy training ---------------------------------------------------------------------
    def schedule(self, step: int) -> Sequence[str]:
        return (self.players[min(step // self.steps_per_layer, len(self.players) - 1)],)

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        return list(self.layers[self.players.index(player)].parameters())

    def loss(self, batch: Tensor | None, player: str = "layer0") -> dict[str, Tensor]:
        i = self.players.index(player)
        v = self._flat(batch)
        with torch.no_grad():  # 1. pass the data up through the frozen layers below
            for layer in self.layers[:i]:
                v = layer.sample_hidden(v)
        rbm = self.layers[i]
        rbm.track_data(v)
        return rbm.cd_loss(v, rbm.gibbs(v, self.cd_k), self.weight_decay)  # 2. CD-k (eq. of 2002)

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
