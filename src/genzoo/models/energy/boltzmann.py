"""What the Boltzmann machines (``rbm``, ``gb-rbm``, ``dbn``, ``dbm``) share as models.

``BoltzmannMachine`` takes the arguments every one of them takes and does what they do alike:
CD-k Gibbs steps, weight decay, SGD with momentum (or Adam), Gibbs steps per ``sample`` call,
a ``log Z`` estimated by AIS, cached in the model and made stale by every optimiser step, and
``filters``, the first layer's weights. ``DeepBoltzmann`` adds what ``dbn`` and ``dbm`` share:
a stack of hidden widths pre-trained layer by layer, 0/1 data, and importance samples per
example in ``log_prob``. A model declares only the arguments it adds or whose default it
changes and forwards the rest (``**kwargs``); its RBM layers are
:class:`~genzoo.models.energy.rbm_layer.RBMLayer` s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.models.base import GenerativeModel
from genzoo.models.energy.ais import LogZCache
from genzoo.models.energy.rbm_layer import RBMLayer, check_binary

OPTIMIZERS = ("sgd", "adam")


def check_counts(**counts: float) -> None:
    """``ValueError`` naming the first of ``counts`` below 1."""
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")


class BoltzmannMachine(LogZCache, GenerativeModel):
    """Shared body of the Boltzmann machines: CD settings, the optimiser, AIS, ``filters``.

    Subclasses validate the counts (in their own words), build their RBM layers and say which
    one sees the data (``first_layer``).

    Arguments:
        data_shape: shape of one example (flattened to the visible units).
        cd_k: Gibbs steps per CD update.
        weight_decay: L2 penalty ``weight_decay / 2 |W|^2`` (the guide's 1e-4 .. 1e-2).
        momentum: SGD momentum (the guide's 0.5 .. 0.9).
        optimizer: ``"sgd"`` (with momentum, as in the guide) or ``"adam"``.
        sample_steps: Gibbs steps per ``sample`` call.
        ais_betas, ais_runs, ais_seed: AIS for ``log Z`` (intermediate distributions,
            independent runs, seed of the run behind ``log_prob``).
    """

    density = "estimate"

    def __init__(
        self,
        data_shape: Sequence[int],
        cd_k: int = 1,
        weight_decay: float = 2e-4,
        momentum: float = 0.9,
        optimizer: str = "sgd",
        sample_steps: int = 1000,
        ais_betas: int = 1000,
        ais_runs: int = 100,
        ais_seed: int = 0,
    ) -> None:
        GenerativeModel.__init__(self, data_shape)
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}")
        self.cd_k, self.weight_decay, self.momentum = cd_k, weight_decay, momentum
        self.optimizer, self.sample_steps = optimizer, sample_steps
        self._init_log_z_cache(ais_betas, ais_runs, ais_seed)

    @property
    def first_layer(self) -> RBMLayer:
        """The RBM layer whose visible units are the data."""
        raise NotImplementedError

    def filters(self) -> Tensor:
        """The first layer's weights, one row per hidden unit: ``(n_hidden, data_dim)``.

        Row ``j`` is hidden unit ``j``'s receptive field over the flattened example (column
        ``j`` of ``W``, the weights of the energy); a detached copy. A ``gb-rbm``'s act on the
        standardised data.
        """
        return self.first_layer.weight.detach().T.clone(memory_format=torch.contiguous_format)

    def optimizer_settings(self, player: str) -> dict[str, Any]:
        return {"optimizer": "sgd", "momentum": self.momentum} if self.optimizer == "sgd" else {}

    def after_step(self, player: str, step: int) -> None:
        self.invalidate_log_z()


class DeepBoltzmann(BoltzmannMachine):
    """Shared body of ``dbn`` and ``dbm``: stacked hidden layers over 0/1 data.

    Arguments (besides those of ``BoltzmannMachine``):
        hidden: widths of the hidden layers, bottom to top.
        steps_per_layer: trainer steps given to each layer's pre-training.
        n_importance: importance samples ``K`` per example in ``log_prob``.
    """

    data_kind = "discrete"
    max_levels = 2  # binary visible units

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: Sequence[int],
        steps_per_layer: int,
        n_importance: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive widths; got {hidden}")
        check_counts(cd_k=self.cd_k, sample_steps=self.sample_steps, n_importance=n_importance)
        self.steps_per_layer, self.n_importance = steps_per_layer, int(n_importance)

    def check_input(self, x: Tensor) -> Tensor:
        x = super().check_input(x)
        if not torch.compiler.is_compiling():  # as the base's finiteness check
            check_binary(x, self.name)
        return x

    def _flat(self, x: Tensor) -> Tensor:
        """Checked 0/1 examples as visible vectors, ``(batch, *data_shape) -> (batch, D)``."""
        return self.check_input(x).reshape(x.shape[0], -1)

    def initialize(self, data: Tensor) -> None:
        check_binary(data, self.name)
        v = data.reshape(data.shape[0], -1).to(self.device, self.dtype)
        self.first_layer.initialize_from_data(v)
