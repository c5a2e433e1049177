"""Diffusion models: score SDEs (VP and VE) and DDPM, with the probability-flow ODE likelihood.

References:
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020
    (arXiv:2006.11239).
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative Modeling
    through Stochastic Differential Equations", ICLR 2021 (arXiv:2011.13456).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.models.score.bound import ddpm_elbo
from genzoo.models.score.common import NoiseFn, ScoreModel
from genzoo.models.score.samplers import (
    DDIM,
    ODE_SOLVERS,
    TRACES,
    DDPMAncestral,
    DPMSolver,
    PredictorCorrector,
    ProbabilityFlowODE,
)
from genzoo.models.score.sde import (
    SDE,
    VESDE,
    VPSDE,
    DiscreteVPSchedule,
    _expand,
    max_pairwise_distance,
)
from genzoo.registry import register_model

SDE_KINDS = ("vp", "ve")
#: Few-step samplers of the VP models (``ddpm``, ``score-sde`` with ``sde="vp"``).
FAST_SAMPLERS = ("ddim", "dpm-solver")
#: Where DPM-Solver stops on a continuous-time VP SDE (Lu et al. 2022 use 1e-3 for few steps:
#: the logSNR grows without bound as t -> 0, and so would the steps it spends there).
DPM_SOLVER_T_END = 1e-3


class DiffusionModel(ScoreModel):
    """Base of ``score-sde`` and ``ddpm`` (not registered): a score ``s(y, t)`` on ``t in [0, 1]``
    for an SDE, and the probability-flow ODE for deterministic sampling and likelihood.

    ``log_prob`` is an *estimate* of ``log p(x)``: the exact density of the probability-flow
    ODE's model (which equals the data density only if the score is exact) at noise level
    ``t_min``, computed by an ODE solver (error controlled by ``rtol``/``atol`` or
    ``sampling_steps``) with an exact divergence up to 8 dimensions and Hutchinson's estimate
    (seeded by ``hutchinson_seed``) above. A class-conditional model's ``log_prob(x, c)`` is
    that of the ODE of the class's score, ``log p(x | c)``, unguided (``c=None``: the null
    class, the unconditional model trained beside it).

    Arguments: ``t_min``, ``ode_solver``, ``rtol``, ``atol``, ``trace``, ``hutchinson_seed``
    (the ODE, see ``ScoreSDE``); the other arguments are those of ``ScoreModel``.

    VP models (``ddpm``; ``score-sde`` with ``sde="vp"``) also sample in few steps with
    ``sample(n, sampler="ddim", steps=K, eta=...)`` (Song, Meng & Ermon 2021) or
    ``sampler="dpm-solver"`` (Lu et al. 2022, multistep, ``order`` 1-3), on the same network.
    """

    @property
    def density_method(self) -> str:
        return "probability-flow ODE"

    density = "estimate"

    def __init__(
        self,
        data_shape: Sequence[int],
        t_min: float = 1e-5,
        ode_solver: str = "rk45",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        trace: str = "auto",
        hutchinson_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)
        if not 0 < t_min < 1:
            raise ValueError(f"need 0 < t_min < 1; got {t_min}")
        if ode_solver not in ODE_SOLVERS:
            raise ValueError(f"ode_solver must be one of {ODE_SOLVERS}; got {ode_solver!r}")
        if trace not in TRACES:
            raise ValueError(f"trace must be one of {TRACES}; got {trace!r}")
        self.t_min = float(t_min)
        self.ode_solver, self.rtol, self.atol = ode_solver, float(rtol), float(atol)
        self.trace, self.hutchinson_seed = trace, int(hutchinson_seed)

    @property
    def sde(self) -> SDE:
        raise NotImplementedError

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return self.sde.marginal(t)

    def latent_score(
        self, y: Tensor, t: Tensor, averaged: bool = True, labels: Tensor | None = None
    ) -> Tensor:
        """``grad_y log p_t(y)`` of standardised ``y`` ``(batch, ...)`` at ``t`` ``(batch,)``
        (``grad_y log p_t(y | c)`` given the classes ``labels`` of a conditional model)."""
        sigma = self.marginal(t)[1]
        return -self.predict_noise(y, t, averaged, labels) / _expand(sigma, y)

    def score_of(self, noise: NoiseFn) -> NoiseFn:
        """The score ``-eps~(y, t) / sigma(t)`` of a noise predictor (a guided one, say)."""
        return lambda y, t: -noise(y, t) / _expand(self.marginal(t)[1], y)

    def noise_levels(self) -> list[float]:
        """Diffusion times with much noise, some and little (``NoiseConditional``)."""
        return [0.9, 0.3, 0.05]

    def score(
        self,
        x: Tensor,
        t: Tensor | float,
        averaged: bool = True,
        c: Any = None,
        guidance: float | None = None,
    ) -> Tensor:
        """``grad_x log p_t(x)`` in data units, for ``x`` ``(batch, *data_shape)``; given the
        class ``c`` of a conditional model, its score guided at scale ``guidance`` (the
        config's if None: 1, the class's own score, unless built with another)."""
        y = self.to_latent(x)
        t = torch.as_tensor(t, device=y.device, dtype=y.dtype).expand(y.shape[0])
        labels = self.labels(c, y.shape[0])
        noise = self.noise_fn(labels, self._guidance_for(guidance, labels), averaged)
        return self.score_of(noise)(y, t) / self.scale

    def _steps(self, steps: int | None, sampler: str | None = None) -> int:
        """The step count of one sampling call: ``steps``, or ``sampling_steps`` if ``None``."""
        steps = self._check_steps(steps)
        if steps is None:
            return self.sampling_steps
        if (sampler or self.sampler_name) == "ode" and self.ode_solver == "rk45":
            raise ValueError(
                "steps does not apply to the adaptive rk45 ODE solver (rtol/atol set its "
                "cost); build the model with ode_solver='rk4' to choose the number of steps"
            )
        return steps

    def _ode_cost(self, steps: int | None) -> dict[str, int | str | None]:
        fixed = self.ode_solver == "rk4"
        return {
            "sampler": f"probability-flow ODE ({self.ode_solver})",
            "nfe_per_sample": 4 * self._steps(steps, "ode") if fixed else None,
            "steps": 1,
        }

    @property
    def samplers(self) -> tuple[str, ...]:
        """The configured sampler first, then the model's other one, then (VP models) the
        few-step samplers ``ddim`` and ``dpm-solver``."""
        native = [self.sampler_name, *(s for s in self.native_samplers if s != self.sampler_name)]
        return (*native, *(FAST_SAMPLERS if self.vp_schedule() is not None else ()))

    native_samplers: tuple[str, ...] = ()

    def vp_schedule(self):
        """The VP schedule ``marginal(t) -> (alpha, sigma)`` the few-step samplers run on;
        ``None`` for a VE model, which has none of them."""
        raise NotImplementedError

    def ddim(self, steps: int | None = None, eta: float = 0.0) -> DDIM:
        """The DDIM sampler with ``steps`` steps (``sampling_steps`` if None)."""
        raise NotImplementedError

    def dpm_solver(self, steps: int | None = None, order: int = 3) -> DPMSolver:
        """Multistep DPM-Solver with ``steps`` network evaluations (``sampling_steps`` if
        None), from ``t = 1`` to ``max(t_min, 1e-3)`` (``ddpm``: to ``1 / n_timesteps``)."""
        schedule = self.vp_schedule()
        t_end = max(self.t_min, DPM_SOLVER_T_END)
        if isinstance(schedule, DiscreteVPSchedule):
            t_end = float(schedule.t[0])
        return DPMSolver(schedule, self._steps(steps, "dpm-solver"), order, 1.0, t_end)

    def _fast_cost(self, steps: int | None, how: dict[str, Any]) -> dict[str, int | str | None]:
        name = how["sampler"]
        sampler = self.ddim(steps) if name == "ddim" else self.dpm_solver(steps)
        return {"sampler": name, "nfe_per_sample": sampler.cost(), "steps": sampler.cost()}

    def _fast_sample(self, n, generator, callback, steps, noise, how) -> Tensor:
        """Samples of ``ddim`` or ``dpm-solver`` driven by the noise predictor ``noise``."""
        if how["sampler"] == "ddim":
            sampler = self.ddim(steps, how["eta"])
        else:
            sampler = self.dpm_solver(steps, how["order"])
        y = sampler(noise, self._prior(n, generator), generator, callback)
        self.last_nfe = sampler.nfe
        return y

    def ode(self, steps: int | None = None) -> ProbabilityFlowODE:
        """The probability-flow ODE with ``steps`` RK4 steps (``sampling_steps`` if None)."""
        return ProbabilityFlowODE(
            self.sde,
            self.ode_solver,
            self.sampling_steps if steps is None else steps,
            self.rtol,
            self.atol,
            self.t_min,
            self.trace,
        )

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Probability-flow ODE estimate of ``log p(x)`` per example ``(batch,)``, in nats;
        ``log p(x | c)`` given the class ``c`` of a conditional model (no guidance)."""
        y = self.to_latent(self.check_input(x))
        labels = self.labels(c, y.shape[0])
        generator = torch.Generator(device=y.device).manual_seed(self.hutchinson_seed)
        ode = self.ode()
        log_p = ode.log_likelihood(self.score_of(self.noise_fn(labels)), y, generator)
        self.last_nfe = ode.nfe
        return log_p - self.log_scale()

    def _prior(self, n: int, generator) -> Tensor:
        return self._noise((n, *self.data_shape), generator) * self.sde.prior_std()


@register_model("score-sde", family="score")
class ScoreSDE(DiffusionModel):
    """Score SDE (VP or VE): continuous-time denoising score matching, PC or ODE sampling.

    The network is trained on ``t ~ U(t_min, 1)`` by the objective of eq. 7 with
    ``lambda(t) = sigma(t)^2``: ``1/2 E |sigma(t) s(m(t) x + sigma(t) z, t) + z|^2 =
    1/2 E |z - eps_hat|^2``. Sampling solves the reverse SDE with predictor-corrector steps
    (``sampler="pc"``) or the probability-flow ODE (``sampler="ode"``); ``log_prob`` is the
    ODE's likelihood (``density="estimate"``, see ``DiffusionModel``).

    Arguments:
        data_shape: shape of one example.
        sde: ``"vp"`` (variance preserving, DDPM's limit) or ``"ve"`` (variance exploding,
            NCSN's limit).
        beta_min, beta_max: the VP SDE's linear ``beta(t)``.
        sigma_min, sigma_max: the VE SDE's levels in standardised units; ``sigma_max=None``
            reads it from the data (largest pairwise distance).
        t_min: smallest time trained on and integrated to.
        sampler: ``"pc"`` or ``"ode"``.
        sampling_steps: predictor steps, or RK4 steps when ``ode_solver="rk4"``.
        n_corrector_steps, snr: the Langevin corrector; ``snr=None`` takes 0.16 for VE and
            0.01 for VP. The corrector's step is fixed per predictor step, so its total
            Langevin time grows with ``sampling_steps``: with a learned (inexact) score a
            large VP snr then drifts toward the biased Langevin equilibrium, and quality got
            *worse* with more steps (8gaussians, snr 0.16: MMD 1e-4 at 100 evaluations,
            1.6e-3 at 2000; snr 0.01: 1e-4, 0.0, 2e-4). With exact scores both are flat.
        ode_solver: ``"rk45"`` (adaptive, ``rtol``/``atol``) or ``"rk4"`` (fixed steps).
        trace: divergence ``"auto"``, ``"exact"`` or ``"hutchinson"``.
        hutchinson_seed: seeds the Hutchinson probes, so ``log_prob`` is reproducible.
        network, hidden, depth, channels, activation, ema, standardize: see ``ScoreModel``.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        sde: str = "vp",
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        sigma_min: float = 0.01,
        sigma_max: float | None = None,
        sampler: str = "pc",
        sampling_steps: int = 500,
        n_corrector_steps: int = 1,
        snr: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)
        if sde not in SDE_KINDS:
            raise ValueError(f"sde must be one of {SDE_KINDS}; got {sde!r}")
        if sampler not in ("pc", "ode"):
            raise ValueError(f"sampler must be 'pc' or 'ode'; got {sampler!r}")
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max; got {beta_min}, {beta_max}")
        if sigma_min <= 0 or (sigma_max is not None and sigma_max <= sigma_min):
            raise ValueError(f"need 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
        if snr is None:
            snr = 0.01 if sde == "vp" else 0.16
        if sampling_steps < 1 or n_corrector_steps < 0 or snr <= 0:
            raise ValueError("need sampling_steps >= 1, n_corrector_steps >= 0, snr > 0")
        self.kind, self.beta_min, self.beta_max = sde, float(beta_min), float(beta_max)
        self.sigma_min = float(sigma_min)
        self.sampler_name, self.sampling_steps = sampler, int(sampling_steps)
        self.n_corrector_steps, self.snr = int(n_corrector_steps), float(snr)
        self.from_data = sigma_max is None
        self.register_buffer("sigma_max", torch.tensor(50.0 if sigma_max is None else sigma_max))

    def initialize(self, data: Tensor, c: Any = None) -> None:
        """Standardise, then (VE, ``sigma_max=None``) read ``sigma_max`` from the data (and
        the class frequencies of ``c``, for a class-conditional model)."""
        super().initialize(data, c=c)
        if self.from_data:
            distance = max_pairwise_distance(self.to_latent(self.check_input(data)))
            self.sigma_max.fill_(max(distance, 2 * self.sigma_min))

    @property
    def sde(self) -> SDE:
        if self.kind == "vp":
            return VPSDE(self.beta_min, self.beta_max)
        return VESDE(self.sigma_min, float(self.sigma_max))

    def loss(self, batch: Tensor, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        """Denoising score matching in continuous time, ``lambda(t) = sigma(t)^2`` (eq. 7);
        given the classes ``c``, each dropped to the null class with probability
        ``p_uncond`` (classifier-free guidance's training)."""
        y = self.to_latent(self.check_input(batch))
        classes = self.check_condition(c, y.shape[0])
        t = self.t_min + (1 - self.t_min) * torch.rand(y.shape[0], device=y.device, dtype=y.dtype)
        mean, sigma = self.marginal(t)
        z = torch.randn_like(y)
        noisy = _expand(mean, y) * y + _expand(sigma, y) * z
        eps = self.predict_noise(noisy, t, labels=self.drop_labels(classes))
        return {"dsm": 0.5 * (eps - z).square().flatten(1).sum(1).mean()}

    native_samplers = ("pc", "ode")

    def vp_schedule(self) -> VPSDE | None:
        return self.sde if self.kind == "vp" else None

    def ddim(self, steps: int | None = None, eta: float = 0.0) -> DDIM:
        """DDIM on ``steps + 1`` evenly spaced times from 1 to ``t_min`` (``alpha_bar(t) =
        m(t)^2``), ``steps`` evaluations (``sampling_steps`` if None); VP only."""
        if self.vp_schedule() is None:
            raise ValueError("ddim needs a VP model: build score-sde with sde='vp'")
        times = torch.linspace(1.0, self.t_min, self._steps(steps, "ddim") + 1,
                               dtype=torch.float64)  # fmt: skip
        return DDIM(self.sde.marginal(times)[0] ** 2, times[:-1], eta)

    def sampling_cost(
        self, steps: int | None = None, sampler: str | None = None
    ) -> dict[str, int | str | None]:
        """``steps * (1 + n_corrector_steps)`` for PC, ``4 steps`` for RK4, None for RK45,
        ``steps`` for ddim and dpm-solver."""
        how = self._sampler_options(sampler, None, None)
        if how["sampler"] in FAST_SAMPLERS:
            return self._fast_cost(steps, how)
        if how["sampler"] == "pc":
            pc = self._pc(steps)
            return {
                "sampler": "predictor-corrector",
                "nfe_per_sample": pc.cost(),
                "steps": pc.n_steps,
            }
        return self._ode_cost(steps)

    def _pc(self, steps: int | None = None) -> PredictorCorrector:
        return PredictorCorrector(
            self.sde, self._steps(steps, "pc"), self.n_corrector_steps, self.snr, self.t_min
        )

    def _sample(self, n: int, generator, callback, steps=None, noise=None, **how: Any) -> Tensor:
        noise = noise or self.noise_fn(None)
        name = how.get("sampler", self.sampler_name)
        if name in FAST_SAMPLERS:
            return self._fast_sample(n, generator, callback, steps, noise, how)
        y = self._prior(n, generator)
        steps = self._steps(steps, name)
        sampler = self._pc(steps) if name == "pc" else self.ode(steps)
        run = sampler if name == "pc" else sampler.sample
        y = run(self.score_of(noise), y, generator, callback)
        self.last_nfe = sampler.nfe
        return y


@register_model("ddpm", family="score")
class DDPM(DiffusionModel):
    """DDPM: a discrete Gaussian diffusion trained to predict the noise, ancestral sampling.

    ``q(x_i | x_0) = N(sqrt(alpha_bar_i) x_0, (1 - alpha_bar_i) I)`` with linear
    ``beta_1..beta_N``; the loss is ``L_simple = E |eps - eps_hat(x_i, i / N)|^2`` (eq. 14,
    mean over dimensions). ``sampler="ancestral"`` runs Algorithm 2 (respaced to
    ``sampling_steps``); ``"ode"`` integrates the probability-flow ODE of the chain's
    continuous limit, the VP SDE with ``beta(t) = N beta(i = tN)`` (Song et al. 2021, s.3.4).
    ``log_prob`` is that ODE's likelihood (``density="estimate"``); ``elbo`` is the
    variational bound of Ho et al. (eq. 5) on the discrete chain's density. The discrete
    ``alpha_bar_i`` and the continuous ``m(i/N)^2`` differ by O(beta^2) per step, so
    ``log_prob`` is the likelihood of the continuous-limit model.

    Arguments:
        data_shape: shape of one example.
        n_timesteps: ``N`` (1000 in Ho et al.).
        beta_start, beta_end: ``beta_1`` and ``beta_N``.
        sampler: ``"ancestral"`` or ``"ode"``.
        sampling_steps: ancestral steps (<= ``n_timesteps``), or RK4 steps for
            ``ode_solver="rk4"``.
        t_min, ode_solver, rtol, atol, trace, hutchinson_seed: the ODE, see ``ScoreSDE``.
        network, hidden, depth, channels, activation, ema, standardize: see ``ScoreModel``.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        n_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        sampler: str = "ancestral",
        sampling_steps: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)
        if n_timesteps < 2 or not 0 < beta_start < beta_end < 1:
            raise ValueError(
                f"need n_timesteps >= 2 and 0 < beta_start < beta_end < 1; got "
                f"{n_timesteps}, {beta_start}, {beta_end}"
            )
        if sampler not in ("ancestral", "ode"):
            raise ValueError(f"sampler must be 'ancestral' or 'ode'; got {sampler!r}")
        if sampler == "ancestral" and not 1 <= sampling_steps <= n_timesteps:
            raise ValueError(
                f"sampling_steps must be in 1..n_timesteps={n_timesteps} for "
                f"ancestral sampling; got {sampling_steps}"
            )
        if sampling_steps < 1:
            raise ValueError(f"need sampling_steps >= 1; got {sampling_steps}")
        self.n_timesteps, self.sampler_name = int(n_timesteps), sampler
        self.sampling_steps = int(sampling_steps)
        betas = torch.linspace(beta_start, beta_end, self.n_timesteps, dtype=torch.float64)
        self._alphas_bar64 = torch.cumprod(1 - betas, 0)  # float64 for the bound's constants
        self.register_buffer("alphas_bar", self._alphas_bar64.float(), persistent=False)
        self._vp = VPSDE(beta_start * n_timesteps, beta_end * n_timesteps)

    @property
    def sde(self) -> SDE:
        return self._vp

    native_samplers = ("ancestral", "ode")

    def vp_schedule(self) -> DiscreteVPSchedule:
        """The chain's own ``alpha_bar_i`` at ``t = i / N``, interpolated between them."""
        return DiscreteVPSchedule(self._alphas_bar64)

    def _kept(self, steps: int | None, what: str) -> Tensor:
        """``steps`` evenly spaced indices ``N-1 .. 0`` of the timesteps (``sampling_steps``
        if None): the sub-sequence the ancestral and DDIM samplers visit."""
        steps = self._steps(steps, what)
        if steps > self.n_timesteps:
            raise ValueError(f"{what} steps must be in 1..n_timesteps={self.n_timesteps}; got "
                             f"{steps}")  # fmt: skip
        return torch.linspace(self.n_timesteps - 1, 0, steps).round().long().unique_consecutive()

    def ddim(self, steps: int | None = None, eta: float = 0.0) -> DDIM:
        """DDIM on ``steps`` evenly spaced training timesteps (``sampling_steps`` if None, at
        most ``n_timesteps``), ending at the data (``alpha_bar = 1``); ``eta = 1`` with every
        timestep is the ancestral sampler with the posterior variance ``beta~``."""
        keep = self._kept(steps, "ddim")
        levels = torch.cat([self._alphas_bar64[keep], torch.ones(1, dtype=torch.float64)])
        return DDIM(levels, (keep + 1).double() / self.n_timesteps, eta)

    def loss(self, batch: Tensor, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        """``L_simple`` (Ho et al. 2020, eq. 14; Algorithm 1); given the classes ``c``, each
        dropped to the null class with probability ``p_uncond`` (Ho & Salimans 2022,
        Algorithm 1)."""
        y = self.to_latent(self.check_input(batch))
        classes = self.check_condition(c, y.shape[0])
        i = torch.randint(self.n_timesteps, (y.shape[0],), device=y.device)  # 3. t ~ U{1..N}
        ab = _expand(self.alphas_bar[i], y)
        eps = torch.randn_like(y)  # 4. eps ~ N(0, I)
        noisy = ab.sqrt() * y + (1 - ab).sqrt() * eps
        t = (i + 1).to(y.dtype) / self.n_timesteps
        pred = self.predict_noise(noisy, t, labels=self.drop_labels(classes))
        return {"l_simple": (eps - pred).square().mean()}  # 5. gradient step on |eps - eps_hat|^2

    def sampling_cost(
        self, steps: int | None = None, sampler: str | None = None
    ) -> dict[str, int | str | None]:
        """``steps`` evaluations (ancestral or ddim, at most ``n_timesteps``; dpm-solver),
        ``4 steps`` for RK4, None for RK45."""
        how = self._sampler_options(sampler, None, None)
        if how["sampler"] in FAST_SAMPLERS:
            return self._fast_cost(steps, how)
        if how["sampler"] == "ancestral":
            cost = self._ancestral(steps).cost()
            return {"sampler": "ancestral", "nfe_per_sample": cost, "steps": cost}
        return self._ode_cost(steps)

    def _ancestral(self, steps: int | None) -> DDPMAncestral:
        return DDPMAncestral(self.alphas_bar, len(self._kept(steps, "ancestral")))

    @torch.no_grad()
    def elbo(self, x: Tensor, generator: torch.Generator | None = None, c: Any = None) -> Tensor:
        """Variational lower bound on ``log p(x)`` per example ``(batch,)``, in nats (on
        ``log p(x | c)`` given the classes ``c`` of a conditional model, unguided).

        Ho et al. 2020, eq. 5: ``-(L_T + sum_{t>1} L_{t-1} + L_0)`` over all ``n_timesteps``
        of the discrete chain with reverse variances ``sigma_t^2 = beta_t`` and a Gaussian
        decoder ``L_0 = -log N(x_0; mu_theta(x_1, 1), beta_1 I)`` for continuous data (on
        dequantised data it bounds the density of the dequantised values, not a discrete
        likelihood); see ``genzoo.models.score.bound``. One noise draw per example and step
        (seeded by ``generator``) makes it an unbiased estimate of the bound; it costs
        ``n_timesteps`` network evaluations per example (``last_nfe``). This bounds the
        discrete chain's density, while ``log_prob`` estimates that of its continuous limit.
        """
        y = self.to_latent(self.check_input(x))
        labels = self.labels(c, y.shape[0])
        alphas_bar = self._alphas_bar64.to(y.device)
        rows = 16_384  # network rows per call (ddpm_elbo's default), so memory stays bounded
        parts = []
        for start in range(0, y.shape[0], rows):
            part = y[start : start + rows]
            classes = None if labels is None else labels[start : start + rows]
            parts.append(ddpm_elbo(self._stacked_noise(classes), part, alphas_bar, generator,
                                   rows))  # fmt: skip
        bound = torch.cat(parts)
        self.last_nfe = self.n_timesteps
        return bound - self.log_scale()

    def _stacked_noise(self, classes: Tensor | None) -> NoiseFn:
        """The (EMA) noise predictor the bound calls on ``k`` stacked copies of a batch of
        examples (one per step it evaluates): their classes ``(b,)`` repeated ``k`` times."""
        if classes is None:
            return lambda y_t, t: self.predict_noise(y_t, t, averaged=True)

        def eps(y_t: Tensor, t: Tensor) -> Tensor:
            labels = classes.repeat(y_t.shape[0] // classes.shape[0])
            return self.predict_noise(y_t, t, averaged=True, labels=labels)

        return eps

    def _sample(self, n: int, generator, callback, steps=None, noise=None, **how: Any) -> Tensor:
        noise = noise or self.noise_fn(None)
        name = how.get("sampler", self.sampler_name)
        if name in FAST_SAMPLERS:
            return self._fast_sample(n, generator, callback, steps, noise, how)
        y = self._prior(n, generator)  # 1. x_T ~ N(0, I)
        if name == "ancestral":
            sampler = self._ancestral(steps)
            y = sampler(noise, y, generator, callback)
        else:
            sampler = self.ode(self._steps(steps, "ode"))
            y = sampler.sample(self.score_of(noise), y, generator, callback)
        self.last_nfe = sampler.nfe
        return y
