"""The one exponential moving average of weights in genzoo: score models' ``ema``, GANs'
``ema_decay`` (the generator's) and the Trainer's ``--ema`` all use :class:`EMA`.

Averaging the iterates of stochastic gradient descent (Polyak & Juditsky 1992) smooths out
the noise of the last steps; the exponential form is the one of score-based and GAN training
(Song & Ermon 2020, "Improved techniques for training score-based generative models",
technique 5; Karras et al. 2018 for GAN generators). After each optimiser step

    shadow <- d_t * shadow + (1 - d_t) * param,   d_t = min(decay, (1 + t) / (10 + t))

at update ``t`` (0, 1, 2, ...): the warm-up of TensorFlow's
``ExponentialMovingAverage(num_updates=...)``, so that early averages are not dominated by the
random initial weights (``warmup=False``: ``d_t = decay``). Floating parameters are averaged;
buffers (PCD chains, running statistics, counters) are not: the averaged model is the
shadow parameters with the module's current buffers, i.e. its buffers copied.

The shadow weights are buffers of this module, named after the parameters with ``.`` replaced
by ``__`` (``net.0.weight`` -> ``net__0__weight``): a model holding an ``EMA`` as a submodule
saves them in its ``state_dict`` under ``<attribute>.<name with __>`` (score models'
``ema.net__...``, GANs' ``generator_ema.<...>``), and :meth:`EMA.state` gives them by parameter
name (the Trainer's checkpoint stores them as ``ema/<parameter name>``). This module lives
under ``models/`` because models keep one and models do not import the trainer;
``genzoo.train.ema`` re-exports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import cast

import torch
from torch import Tensor, nn


class EMA(nn.Module):
    """Exponential moving average of ``module``'s floating parameters (``decay`` in (0, 1)).

    Arguments:
        module: the module whose parameters are averaged (not made a submodule of this one).
        decay: the decay ``d`` of the average, e.g. 0.999.
        warmup: use ``min(decay, (1 + t) / (10 + t))`` at update ``t`` (the default, as every
            caller in genzoo does); ``False`` uses ``decay`` from the first update.
    """

    def __init__(self, module: nn.Module, decay: float, warmup: bool = True) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
            raise ValueError(f"ema decay must be a number in (0, 1), e.g. 0.999; got {decay!r}")
        super().__init__()
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.updates = 0
        named = [(n, p) for n, p in module.named_parameters() if p.is_floating_point()]
        self.names = [n for n, _ in named]
        self._keys = [n.replace(".", "__") for n in self.names]
        if len(set(self._keys)) < len(self._keys):
            raise ValueError(
                f"{type(module).__name__} has parameter names that differ only by '.' against "
                "'__'; rename them to keep a moving average of its weights"
            )
        self._params = [p for _, p in named]  # a plain list: not parameters of this module
        for key, p in zip(self._keys, self._params, strict=True):
            # straight into _buffers: register_buffer refuses a name that is an attribute of
            # this class or nn.Module, as a top-level parameter "state" or "training" would be
            self._buffers[key] = p.detach().clone()  # its own storage, for safetensors

    @property
    def shadow(self) -> list[Tensor]:
        """The averaged tensors, in the order of ``names``."""
        return [cast(Tensor, self._buffers[key]) for key in self._keys]

    def decay_at(self, t: int) -> float:
        """The decay of update ``t`` (0-based): ``min(decay, (1 + t) / (10 + t))`` with warm-up."""
        return min(self.decay, (1 + t) / (10 + t)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, step: int | None = None) -> None:
        """Move the average towards the current weights (after an optimiser step) with the
        decay of update ``step`` (a model passes the trainer's step, so that its warm-up
        resumes from its checkpoint), or of the updates counted so far if ``None``."""
        t = self.updates if step is None else int(step)
        self.updates = t + 1
        weight = 1.0 - self.decay_at(t)
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self._params], weight)

    def state(self) -> dict[str, Tensor]:
        """The averaged weights by parameter name: what ``torch.func.functional_call`` takes
        to run the module with them, and what the Trainer's checkpoint stores."""
        return dict(zip(self.names, self.shadow, strict=True))

    def load(self, state: dict[str, Tensor], updates: int) -> None:
        """Restore the average saved by :meth:`state` (and its update count)."""
        missing = [n for n in self.names if n not in state]
        if missing:
            raise ValueError(f"the checkpoint's EMA lacks {missing[:5]}")
        with torch.no_grad():
            for name, shadow in zip(self.names, self.shadow, strict=True):
                shadow.copy_(state[name])
        self.updates = int(updates)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the module holds the averaged weights; its own come back after."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self._params]
            self._copy(self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                self._copy(raw)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Put the averaged weights into the module for good (the end of training)."""
        self._copy(self.shadow)

    def _copy(self, values: list[Tensor]) -> None:
        for p, value in zip(self._params, values, strict=True):
            p.copy_(value)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, warmup={self.warmup}, tensors={len(self.names)}"
