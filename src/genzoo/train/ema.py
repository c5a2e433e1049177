"""An exponential moving average of a model's weights, for sampling and evaluation.

Averaging the iterates of stochastic gradient descent (Polyak & Juditsky 1992) smooths out
the noise of the last steps; the exponential form is the one of score-based and GAN training
(e.g. Song & Ermon 2020, "Improved techniques for training score-based generative models";
Karras et al. 2018 for GAN generators). The decay is warmed up as in TensorFlow's
``ExponentialMovingAverage(num_updates=...)``: ``min(decay, (1 + t) / (10 + t))`` at update
``t``, so that early averages are not dominated by the random initial weights.

Floating parameters are averaged; buffers (PCD chains, running statistics, counters) are not:
the model's current ones are used with the averaged parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class EMA:
    """The moving average of ``model``'s floating parameters (``decay`` in (0, 1))."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
            raise ValueError(f"ema decay must be a number in (0, 1), e.g. 0.999; got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        self.names = [n for n, p in model.named_parameters() if p.is_floating_point()]
        params = dict(model.named_parameters())
        self._params = [params[n] for n in self.names]
        self.shadow = [p.detach().clone() for p in self._params]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights (after an optimiser step)."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self._params], 1.0 - decay)

    def state(self) -> dict[str, Tensor]:
        """The averaged weights by parameter name (as the checkpoint stores them)."""
        return dict(zip(self.names, self.shadow, strict=True))

    def load(self, state: dict[str, Tensor], updates: int) -> None:
        """Restore the average saved by :meth:`state` (and its update count)."""
        missing = [n for n in self.names if n not in state]
        if missing:
            raise ValueError(f"the checkpoint's EMA lacks {missing[:5]}")
        for name, shadow in zip(self.names, self.shadow, strict=True):
            shadow.copy_(state[name])
        self.updates = int(updates)

    @contextlib.contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; its own come back after."""
        raw = [p.detach().clone() for p in self._params]
        for p, s in zip(self._params, self.shadow, strict=True):
            p.copy_(s)
        try:
            yield
        finally:
            for p, r in zip(self._params, raw, strict=True):
                p.copy_(r)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Put the averaged weights into the model for good (the end of training)."""
        for p, s in zip(self._params, self.shadow, strict=True):
            p.copy_(s)
