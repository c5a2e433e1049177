"""What every score model shares: the noise-prediction network, EMA weights, standardisation,
and class conditioning with classifier-free guidance.

The data are mapped to ``y = (x - shift) / scale`` with two scalars read from the data by
``initialize`` (so 2-D toys and [0, 1] images meet the noise processes at unit scale), and
every density is mapped back with the log-Jacobian ``-d log(scale)``.

Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance",
arXiv:2207.12598). A model built with ``n_classes = K`` has one network ``eps(y, t, c)`` for
the classes ``0..K-1`` and a null class ``K``, the unconditional model. Training replaces each
example's class by the null class with probability ``p_uncond`` (Algorithm 1; 0.1 in the
paper), so one network learns both. Sampling class ``c`` with guidance scale ``w`` uses

    eps~(y, t, c) = eps(y, t, null) + w (eps(y, t, c) - eps(y, t, null))

in place of ``eps``; for a score model the same combination of the scores, as ``score =
-eps / sigma`` at one noise level. This is the guidance-scale convention (as in Dhariwal &
Nichol 2021 and most libraries): Ho & Salimans' eq. 6, ``(1 + w') eps(c) - w' eps(null)``,
is the same with their ``w' = w - 1``. ``w = 0`` is the unconditional model (the same draws
as ``c=None`` on the same noise), ``w = 1`` the conditional model itself (the default; one
network evaluation per step), ``w > 1`` sharpens the class at the cost of diversity and
costs two evaluations per step (evaluated as one batch of twice the rows), as does any ``w``
other than 0 and 1. ``c=None`` samples the unconditional model (the null class). The density
(``log_prob``, ``elbo``) given ``c`` is that of the conditional model, unguided: the guided
``eps~`` is not the score of any model that was trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from genzoo.errors import DataError
from genzoo.models.base import GenerativeModel
from genzoo.models.ema import EMA
from genzoo.models.score.networks import build_network

NoiseFn = Callable[[Tensor, Tensor], Tensor]


class ScoreModel(GenerativeModel):
    """Base of the score family (not registered): ``score = -eps_hat(y, c) / sigma``.

    Arguments (shared by every score model):
        network: ``"auto"`` (U-Net for even-sized images, MLP otherwise), ``"mlp"`` or ``"unet"``.
        hidden, depth: the MLP's width and number of hidden layers.
        channels: the U-Net's base channel count.
        activation: by name (see ``genzoo.models.nn.ACTIVATIONS``).
        ema: EMA decay of the weights used for sampling and likelihood; 0 turns EMA off.
        standardize: map data to zero mean and unit standard deviation (two scalars).
        n_classes: ``K`` > 0 makes it class-conditional, ``p(x | c)`` for ``c`` in
            ``0..K-1``: the network adds a learned class embedding (and one for the null
            class ``K``) to its noise-level embedding (see the module's docstring).
        p_uncond: probability that training replaces an example's class by the null class,
            so the network also learns the unconditional model (Ho & Salimans 2022: 0.1).
        guidance: the classifier-free guidance scale ``w >= 0`` that ``sample(n, c=...)``
            uses unless given one: 0 the unconditional model, 1 the conditional one (the
            default, ``None``), above 1 guided. Ho & Salimans (2022)'s ``w`` is this ``w - 1``.
    """

    condition_kinds = ("discrete",)

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
        n_classes: int = 0,
        p_uncond: float = 0.1,
        guidance: float | None = None,
    ) -> None:
        super().__init__(data_shape)
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0 turns it off); got {ema}")
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be a probability in [0, 1]; got {p_uncond}")
        self.setup_condition(n_classes, 0)
        self.p_uncond = float(p_uncond)
        self.guidance = self._check_guidance(guidance)
        self.net = build_network(
            data_shape, network, hidden, depth, channels, activation, self.n_classes
        )
        self.ema = EMA(self.net, ema) if ema > 0 else None
        self.standardize = bool(standardize)
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))
        self.last_nfe = 0

    def initialize(self, data: Tensor, c: Any = None) -> None:
        """Read the standardisation (mean and standard deviation of all values) from the data;
        a class-conditional model also records the class frequencies of ``c``."""
        data = self.check_input(data)
        if c is not None or self.n_classes:
            self.set_class_prior(self.check_condition(c, len(data)))
        if self.standardize:
            self.shift.fill_(float(data.mean()))
            self.scale.fill_(float(data.std().clamp_min(1e-6)))

    def own_weight_average(self) -> str | None:
        return "ema" if self.ema is not None else None

    # -- classes and classifier-free guidance -------------------------------------------------
    def _check_guidance(self, guidance: Any) -> float | None:
        if guidance is None:
            return None
        if isinstance(guidance, bool) or not isinstance(guidance, int | float):
            raise ValueError(f"guidance must be a number w >= 0; got {guidance!r}")
        w = float(guidance)
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(
                f"guidance must be a finite number w >= 0 (0: unconditional, 1: conditional, "
                f"> 1: guided); got {guidance!r}"
            )
        if w not in (0.0, 1.0) and not self.n_classes:  # 0 and 1: the model as it is
            raise DataError(
                f"{self.name or type(self).__name__} was built without a class condition, so "
                "classifier-free guidance does not apply: build it with create(..., "
                "condition=c) (genzoo train ... --condition label)"
            )
        return w

    def labels(self, c: Any, n: int) -> Tensor | None:
        """The classes the network reads for ``n`` examples: ``None`` for an unconditional
        model (which refuses a ``c``); for a class-conditional one ``c`` checked (an int or
        ``(n,)`` classes), or the null class ``n_classes`` for every example if ``c`` is None."""
        if not self.n_classes:
            self.check_condition(c)
            return None
        if c is None:
            return torch.full((n,), self.n_classes, dtype=torch.long, device=self.device)
        return self.check_condition(c, n)

    def drop_labels(self, labels: Tensor | None) -> Tensor | None:
        """Training's classes: each replaced by the null class with probability ``p_uncond``
        (Ho & Salimans 2022, Algorithm 1, line 3), drawn from the global random stream."""
        if labels is None:
            return None
        drop = torch.rand(labels.shape, device=labels.device) < self.p_uncond
        return torch.where(drop, torch.full_like(labels, self.n_classes), labels)

    def noise_fn(
        self, labels: Tensor | None, guidance: float = 1.0, averaged: bool = True
    ) -> NoiseFn:
        """``eps~(y, t)`` of ``labels`` with guidance scale ``w``: ``eps(y, t, null) + w
        (eps(y, t, c) - eps(y, t, null))`` (Ho & Salimans 2022, eq. 6, with their ``w`` =
        this ``w - 1``); ``eps(y, t, c)`` itself for ``w = 1`` or no labels, the null class's
        ``eps(y, t, null)`` for ``w = 0``. Both terms come from one network call on ``2 n``
        rows."""
        if labels is None:
            return lambda y, t: self.predict_noise(y, t, averaged=averaged)
        null = torch.full_like(labels, self.n_classes)
        if not self._guided(labels, guidance):
            chosen = null if guidance == 0 else labels
            return lambda y, t: self.predict_noise(y, t, averaged=averaged, labels=chosen)
        w, both = float(guidance), torch.cat([labels, null])

        def guided(y: Tensor, t: Tensor) -> Tensor:
            eps = self.predict_noise(torch.cat([y, y]), torch.cat([t, t]), averaged, both)
            conditional, unconditional = eps.chunk(2)
            return unconditional + w * (conditional - unconditional)

        return guided

    def _guided(self, labels: Tensor | None, guidance: float) -> bool:
        """Whether sampling ``labels`` at scale ``guidance`` needs both the class's and the
        null class's evaluations (two per step): not for ``w`` 0 or 1, nor the null class."""
        if labels is None or guidance in (0.0, 1.0):
            return False
        return not bool((labels == self.n_classes).all())

    def _guidance_for(self, guidance: float | None, labels: Tensor | None) -> float:
        """The scale of one sampling call: ``guidance``, else the config's, else 1 (the
        conditional model); 1 without a class (unconditional samples are not guided)."""
        w = self.guidance if guidance is None else self._check_guidance(guidance)
        if w is None or labels is None or bool((labels == self.n_classes).all()):
            return 1.0
        return w

    def to_latent(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale

    def from_latent(self, y: Tensor) -> Tensor:
        return y * self.scale + self.shift

    def log_scale(self) -> Tensor:
        """``d log(scale)``: subtract it from a density of ``y`` to get one of ``x``."""
        return self.data_dim * self.scale.log()

    def predict_noise(
        self, y: Tensor, c: Tensor, averaged: bool = False, labels: Tensor | None = None
    ) -> Tensor:
        """``eps_hat(y, c)`` shaped like ``y`` (given the classes ``labels`` of a
        class-conditional model, the null class where None); ``averaged`` uses the EMA weights
        if kept."""
        args = (y, c) if labels is None else (y, c, labels)
        if averaged and self.ema is not None:
            return functional_call(self.net, self.ema.state(), args)
        return self.net(*args)

    def after_step(self, player: str, step: int) -> None:
        """Update the EMA weights (Song & Ermon 2020, technique 5), warmed up by the
        trainer's ``step`` (see :class:`genzoo.models.ema.EMA`)."""
        if self.ema is not None:
            self.ema.update(step)

    def _noise(self, shape: Sequence[int], generator: torch.Generator | None) -> Tensor:
        return torch.randn(tuple(shape), generator=generator, device=self.device, dtype=self.dtype)

    def sampling_cost(
        self, steps: int | None = None, sampler: str | None = None
    ) -> dict[str, int | str | None]:
        """Network evaluations per sample of ``sampler`` (the configured one when ``None``)
        run with ``steps`` (the configured count when ``None``); ``nfe_per_sample`` is
        ``None`` for an adaptive solver. Sampling a class with guidance ``w`` other than 0
        and 1 costs twice as many (``last_nfe`` counts them)."""
        raise NotImplementedError

    @property
    def samplers(self) -> tuple[str, ...]:
        """The samplers ``sample(..., sampler=NAME)`` takes; the first is the default."""
        raise NotImplementedError

    def _sampler_options(
        self, sampler: str | None, eta: float | None, order: int | None
    ) -> dict[str, Any]:
        """``sampler`` (the configured one if None) checked against ``samplers``, with its
        options: ``eta`` for ``"ddim"`` (default 0), ``order`` for ``"dpm-solver"`` (default
        3); either given to another sampler is an error."""
        name = self.samplers[0] if sampler is None else sampler
        if name not in self.samplers:
            raise ValueError(
                f"{self.name or type(self).__name__} has no sampler {sampler!r}; its samplers "
                f"are {', '.join(self.samplers)}"
            )
        if eta is not None and name != "ddim":
            raise ValueError(f"eta is an option of the ddim sampler, not of {name}")
        if order is not None and name != "dpm-solver":
            raise ValueError(f"order is an option of the dpm-solver sampler, not of {name}")
        if eta is not None and not (isinstance(eta, int | float) and 0.0 <= eta <= 1.0):
            raise ValueError(f"eta must be in [0, 1] (0: deterministic, 1: ancestral); got {eta}")
        if order is not None and order not in (1, 2, 3):
            raise ValueError(f"order of dpm-solver must be 1, 2 or 3; got {order!r}")
        options: dict[str, Any] = {"sampler": name}
        if name == "ddim":
            options["eta"] = 0.0 if eta is None else float(eta)
        if name == "dpm-solver":
            options["order"] = 3 if order is None else int(order)
        return options

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
        c: Any = None,
        guidance: float | None = None,
        sampler: str | None = None,
        eta: float | None = None,
        order: int | None = None,
    ) -> Tensor:
        """``n_frames`` snapshots of the sampling chain, ``(n_frames, n, *data_shape)`` (given
        the class ``c`` and guidance of a class-conditional model, and the sampler, as
        ``sample`` takes them)."""
        frames: list[Tensor] = []
        total = max(1, int(self.sampling_cost(steps, sampler).get("steps") or 1))
        keep = set(torch.linspace(0, total - 1, n_frames).round().long().tolist())

        def record(i: int, y: Tensor) -> None:
            if i in keep:
                frames.append(self.from_latent(y).clone())

        how = self._sampler_options(sampler, eta, order)
        self._guided_sample(n, generator, record, steps, c, guidance, how)
        return torch.stack(frames[-n_frames:])

    def _sample(self, n: int, generator, callback, steps=None, noise=None, **how: Any) -> Tensor:
        """Standardised samples from the sampler driven by ``noise`` (``eps~(y, level)``; the
        unconditional network's if None); ``how``: ``_sampler_options``'s choice."""
        raise NotImplementedError

    def _guided_sample(self, n, generator, callback, steps, c, guidance, how=None) -> Tensor:
        labels = self.labels(c, n)
        w = self._guidance_for(guidance, labels)
        steps = self._check_steps(steps)
        how = how or self._sampler_options(None, None, None)
        y = self._sample(n, generator, callback, steps, self.noise_fn(labels, w), **how)
        if self._guided(labels, w):
            self.last_nfe *= 2  # the null class's evaluations beside the class's
        return y

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        c: Any = None,
        guidance: float | None = None,
        sampler: str | None = None,
        eta: float | None = None,
        order: int | None = None,
    ) -> Tensor:
        """Draw ``n`` samples ``(n, *data_shape)``; ``last_nfe`` holds the evaluations made.

        ``sampler`` picks one of ``samplers`` for this call (the configured one if None):
        ``ddpm`` and VP ``score-sde`` also have ``"ddim"`` (Song, Meng & Ermon 2021; ``eta``
        in [0, 1], 0 deterministic, the default) and ``"dpm-solver"`` (Lu et al. 2022,
        multistep, ``order`` 1, 2 or 3, default 3), which reach good samples in 10-50
        network evaluations. ``steps`` overrides the sampler's step count for this call only,
        without retraining or changing the config: Langevin steps per level (``ncsn``'s
        ``n_steps_each``), ancestral, DDIM, DPM-Solver or predictor steps (``ddpm``/
        ``score-sde`` ``sampling_steps``), or RK4 steps for ``ode_solver="rk4"``.
        ``sampling_cost(steps, sampler)`` gives the evaluations it will cost.

        A class-conditional model samples class ``c`` (an int, or one per sample) with
        classifier-free guidance scale ``guidance`` (the config's if None, else 1):
        ``eps~ = eps(null) + w (eps(c) - eps(null))``; Ho & Salimans (2022)'s ``w`` is this
        ``w - 1``. ``w = 0`` draws exactly what the unconditional model (``c=None``) draws on
        the same generator, ``w = 1`` what the conditional model draws; any other ``w`` makes
        two network evaluations per step (``last_nfe`` counts both). ``c=None`` samples the
        unconditional model (the null class, unguided).
        """
        how = self._sampler_options(sampler, eta, order)
        y = self._guided_sample(n, generator, None, steps, c, guidance, how)
        return self.from_latent(y)
