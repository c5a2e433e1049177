"""What every score model shares: the noise-prediction network, EMA weights, standardisation.

The data are mapped to ``y = (x - shift) / scale`` with two scalars read from the data by
``initialize`` (so 2-D toys and [0, 1] images meet the noise processes at unit scale), and
every density is mapped back with the log-Jacobian ``-d log(scale)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from genzoo.models.base import GenerativeModel
from genzoo.models.score.networks import build_network


class EMA(nn.Module):
    """Exponential moving average of a module's parameters, kept as buffers.

    ``update`` uses ``min(decay, (1 + step) / (10 + step))`` so that short runs are not stuck
    at the initial weights; ``params`` gives the averaged weights for ``functional_call``.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = float(decay)
        self.names = [name for name, _ in module.named_parameters()]
        for name, p in module.named_parameters():
            self.register_buffer(name.replace(".", "__"), p.detach().clone())

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, p in module.named_parameters():
            getattr(self, name.replace(".", "__")).lerp_(p.detach(), 1 - decay)

    def params(self) -> dict[str, Tensor]:
        return {name: getattr(self, name.replace(".", "__")) for name in self.names}


class ScoreModel(GenerativeModel):
    """Base of the score family (not registered): ``score = -eps_hat(y, c) / sigma``.

    Arguments (shared by every score model):
        network: ``"auto"`` (U-Net for even-sized images, MLP otherwise), ``"mlp"`` or ``"unet"``.
        hidden, depth: the MLP's width and number of hidden layers.
        channels: the U-Net's base channel count.
        activation: by name (see ``genzoo.models.nn.ACTIVATIONS``).
        ema: EMA decay of the weights used for sampling and likelihood; 0 turns EMA off.
        standardize: map data to zero mean and unit standard deviation (two scalars).
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        network: str = "auto",
        hidden: int = 128,
        depth: int = 3,
        channels: int = 32,
        activation: str = "silu",
        ema: float = 0.999,
        standardize: bool = True,
    ) -> None:
        super().__init__(data_shape)
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0 turns it off); got {ema}")
        self.net = build_network(data_shape, network, hidden, depth, channels, activation)
        self.ema = EMA(self.net, ema) if ema > 0 else None
        self.standardize = bool(standardize)
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))
        self.last_nfe = 0

    def initialize(self, data: Tensor) -> None:
        """Read the standardisation (mean and standard deviation of all values) from the data."""
        data = self.check_input(data)
        if self.standardize:
            self.shift.fill_(float(data.mean()))
            self.scale.fill_(float(data.std().clamp_min(1e-6)))

    def to_latent(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale

    def from_latent(self, y: Tensor) -> Tensor:
        return y * self.scale + self.shift

    def log_scale(self) -> Tensor:
        """``d log(scale)``: subtract it from a density of ``y`` to get one of ``x``."""
        return self.data_dim * self.scale.log()

    def predict_noise(self, y: Tensor, c: Tensor, averaged: bool = False) -> Tensor:
        """``eps_hat(y, c)`` shaped like ``y``; ``averaged`` uses the EMA weights if kept."""
        if averaged and self.ema is not None:
            return functional_call(self.net, self.ema.params(), (y, c))
        return self.net(y, c)

    def after_step(self, player: str, step: int) -> None:
        """Update the EMA weights (Song & Ermon 2020, technique 5)."""
        if self.ema is not None:
            self.ema.update(self.net, step)

    def _noise(self, shape: Sequence[int], generator: torch.Generator | None) -> Tensor:
        return torch.randn(tuple(shape), generator=generator, device=self.device, dtype=self.dtype)

    def sampling_cost(self, steps: int | None = None) -> dict[str, int | str | None]:
        """Network evaluations per sample of the sampler run with ``steps`` (the configured
        count when ``None``); ``nfe_per_sample`` is ``None`` for an adaptive solver."""
        raise NotImplementedError

    def _check_steps(self, steps: int | None) -> int | None:
        if steps is None:
            return None
        if isinstance(steps, bool) or int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer or None; got {steps!r}")
        return int(steps)

    def sample_trajectory(
        self,
        n: int,
        generator: torch.Generator | None = None,
        n_frames: int = 8,
        steps: int | None = None,
    ) -> Tensor:
        """``n_frames`` snapshots of the sampling chain, ``(n_frames, n, *data_shape)``."""
        frames: list[Tensor] = []
        total = max(1, int(self.sampling_cost(steps).get("steps") or 1))
        keep = set(torch.linspace(0, total - 1, n_frames).round().long().tolist())

        def record(i: int, y: Tensor) -> None:
            if i in keep:
                frames.append(self.from_latent(y).clone())

        self._sample(n, generator, record, self._check_steps(steps))
        return torch.stack(frames[-n_frames:])

    def _sample(self, n: int, generator, callback, steps: int | None = None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, steps: int | None = None
    ) -> Tensor:
        """Draw ``n`` samples ``(n, *data_shape)``; ``last_nfe`` holds the evaluations made.

        ``steps`` overrides the sampler's step count for this call only, without retraining
        or changing the config: Langevin steps per level (``ncsn``'s ``n_steps_each``),
        ancestral or predictor steps (``ddpm``/``score-sde`` ``sampling_steps``), or RK4 steps
        for ``ode_solver="rk4"``. ``sampling_cost(steps)`` gives the evaluations it will cost.
        """
        return self.from_latent(self._sample(n, generator, None, self._check_steps(steps)))
