"""Samplers: small objects that drive a score (or noise-prediction) function, no network inside.

A score function is ``score(x, level) -> Tensor`` shaped like ``x`` ``(batch, ...)``, where
``level`` ``(batch,)`` is the noise level ``sigma`` (annealed Langevin) or the time ``t``
(SDE samplers). Every sampler records ``nfe``, the number of score evaluations its last call
made (each evaluation covers the whole batch, so it is also the cost per sample), and calls
``callback(i, x)`` after each step when one is given (for trajectories and figures).

References:
    Song & Ermon, "Generative Modeling by Estimating Gradients of the Data Distribution",
    NeurIPS 2019 (arXiv:1907.05600).
    Song & Ermon, "Improved Techniques for Training Score-Based Generative Models",
    NeurIPS 2020 (arXiv:2006.09011).
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020
    (arXiv:2006.11239).
    Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
    ICLR 2021 (arXiv:2011.13456).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from genzoo.models.score.ode import divergence, rk4, rk45
from genzoo.models.score.sde import SDE, _expand

ScoreFn = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[int, Tensor], None] | None
ODE_SOLVERS = ("rk45", "rk4")
TRACES = ("auto", "exact", "hutchinson")


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _full(x: Tensor, value: float | Tensor) -> Tensor:
    return torch.full((x.shape[0],), float(value), device=x.device, dtype=x.dtype)


class Langevin:
    """Langevin dynamics ``x <- x + a/2 score(x) + sqrt(a) z`` (Song & Ermon 2019, eq. 4)."""

    def __init__(self, step_size: float, n_steps: int, level: float = 0.0) -> None:
        if step_size <= 0 or n_steps < 1:
            raise ValueError(f"need step_size > 0 and n_steps >= 1; got {step_size}, {n_steps}")
        self.step_size, self.n_steps, self.level = float(step_size), int(n_steps), level
        self.nfe = 0

    @torch.no_grad()
    def __call__(
        self, score: ScoreFn, x: Tensor, generator: torch.Generator | None = None, callback=None
    ) -> Tensor:
        a, level = self.step_size, _full(x, self.level)
        for i in range(self.n_steps):
            x = x + a / 2 * score(x, level) + a**0.5 * _noise(x, generator)
            if callback is not None:
                callback(i, x)
        self.nfe = self.n_steps
        return x


class AnnealedLangevin:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    For each level ``sigma_i`` (decreasing), ``n_steps_each`` Langevin steps of size
    ``alpha_i = step_lr * sigma_i^2 / sigma_L^2``. With ``denoise`` the output is Tweedie's
    ``x + sigma_L^2 score(x, sigma_L)`` (Song & Ermon 2020, "final denoising step").
    """

    def __init__(
        self, sigmas: Tensor, n_steps_each: int = 100, step_lr: float = 2e-5, denoise: bool = True
    ) -> None:
        if n_steps_each < 1 or step_lr <= 0:
            raise ValueError(f"need n_steps_each >= 1, step_lr > 0; got {n_steps_each}, {step_lr}")
        self.sigmas = torch.as_tensor(sigmas).flatten()
        self.n_steps_each, self.step_lr, self.denoise = int(n_steps_each), float(step_lr), denoise
        self.nfe = 0

    def cost(self) -> int:
        """Score evaluations per sample: ``L * T`` (+1 for the denoising step)."""
        return len(self.sigmas) * self.n_steps_each + int(self.denoise)

    @torch.no_grad()
    def __call__(
        self, score: ScoreFn, x: Tensor, generator: torch.Generator | None = None, callback=None
    ) -> Tensor:
        sigma_last = float(self.sigmas[-1])
        step = 0
        for sigma in self.sigmas.tolist():  # 1. for i <- 1 to L
            alpha = self.step_lr * (sigma / sigma_last) ** 2  # 2. alpha_i
            level = _full(x, sigma)
            for _ in range(self.n_steps_each):  # 3. for t <- 1 to T
                z = _noise(x, generator)  # 4. z_t ~ N(0, I)
                x = x + alpha / 2 * score(x, level) + alpha**0.5 * z  # 5.
                if callback is not None:
                    callback(step, x)
                step += 1
        if self.denoise:
            x = x + sigma_last**2 * score(x, _full(x, sigma_last))
            if callback is not None:
                callback(step, x)
        self.nfe = self.cost()
        return x


class PredictorCorrector:
    """Predictor-corrector sampling of the reverse SDE (Song et al. 2021, Algorithm 1).

    Predictor: Euler-Maruyama on ``dx = [f - g^2 score] dt + g dw_bar`` from ``t = 1`` to
    ``t_min`` in ``n_steps`` steps. Corrector: ``n_corrector`` Langevin steps whose size
    ``2 a (snr |z| / |score|)^2`` (norms averaged over the batch) targets a signal-to-noise
    ratio (Algorithms 4 and 5; ``a = exp(-beta dt) ~ 1 - beta dt``, positive on coarse grids,
    for the VP SDE and 1 otherwise).
    The last step returns the mean.
    """

    def __init__(
        self,
        sde: SDE,
        n_steps: int = 500,
        n_corrector: int = 1,
        snr: float = 0.16,
        t_min: float = 1e-5,
    ) -> None:
        if n_steps < 1 or n_corrector < 0 or snr <= 0:
            raise ValueError(
                f"need n_steps >= 1, n_corrector >= 0, snr > 0; got {n_steps}, {n_corrector}, {snr}"
            )
        self.sde, self.n_steps, self.n_corrector = sde, int(n_steps), int(n_corrector)
        self.snr, self.t_min = float(snr), float(t_min)
        self.nfe = 0

    def cost(self) -> int:
        return self.n_steps * (1 + self.n_corrector)

    @torch.no_grad()
    def __call__(
        self, score: ScoreFn, x: Tensor, generator: torch.Generator | None = None, callback=None
    ) -> Tensor:
        times = torch.linspace(1.0, self.t_min, self.n_steps + 1).tolist()
        dt = times[0] - times[1]
        mean = x
        for i in range(self.n_steps):
            t = _full(x, times[i])
            for _ in range(self.n_corrector):  # corrector: Langevin at fixed t
                s = score(x, t)
                z = _noise(x, generator)
                # Norms averaged over the batch, as in Song et al.'s code: per-example ratios
                # explode for points where the score vanishes (a mode's centre).
                ratio = z.flatten(1).norm(dim=1).mean() / s.flatten(1).norm(dim=1).mean()
                a = (-self.sde.beta(t) * dt).exp() if hasattr(self.sde, "beta") else t * 0 + 1
                eps = _expand(2 * a * (self.snr * ratio) ** 2, x)
                x = x + eps * s + (2 * eps).sqrt() * z
            drift, g = self.sde.sde(x, t)  # predictor: reverse Euler-Maruyama
            g = _expand(g, x)
            mean = x - (drift - g**2 * score(x, t)) * dt
            x = mean + g * dt**0.5 * _noise(x, generator)
            if callback is not None:
                callback(i, mean)
        self.nfe = self.cost()
        return mean


class DDPMAncestral:
    """Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2), optionally respaced.

    ``eps(x, c)`` predicts the noise with ``c = i / N`` for step ``i`` of ``N``. With
    ``n_steps < N`` the chain keeps ``n_steps`` evenly spaced steps and uses
    ``beta'_i = 1 - alpha_bar_i / alpha_bar_prev`` between them (Nichol & Dhariwal 2021);
    ``sigma_i^2 = beta'_i`` as in Ho et al.
    """

    def __init__(self, alphas_bar: Tensor, n_steps: int | None = None) -> None:
        n = len(alphas_bar)
        n_steps = n if n_steps is None else int(n_steps)
        if not 1 <= n_steps <= n:
            raise ValueError(f"n_steps must be in 1..{n}; got {n_steps}")
        self.alphas_bar = alphas_bar
        self.keep = torch.linspace(n - 1, 0, n_steps).round().long().unique_consecutive()
        self.n = n
        self.nfe = 0

    def cost(self) -> int:
        return len(self.keep)

    @torch.no_grad()
    def __call__(
        self, eps: ScoreFn, x: Tensor, generator: torch.Generator | None = None, callback=None
    ) -> Tensor:
        ab = self.alphas_bar.to(device=x.device, dtype=x.dtype)
        keep = self.keep.tolist()
        for j, i in enumerate(keep):  # 2. for t = T, ..., 1 (i is t - 1)
            ab_prev = ab[keep[j + 1]] if j + 1 < len(keep) else ab.new_tensor(1.0)
            beta = 1 - ab[i] / ab_prev
            e = eps(x, _full(x, (i + 1) / self.n))
            mean = (x - beta / (1 - ab[i]).sqrt() * e) / (1 - beta).sqrt()  # 4.
            x = mean + beta.sqrt() * _noise(x, generator) if j + 1 < len(keep) else mean
            if callback is not None:
                callback(j, x)
        self.nfe = len(keep)
        return x


class ProbabilityFlowODE:
    """The probability-flow ODE ``dx/dt = f(x, t) - g(t)^2 / 2 score(x, t)`` (eq. 13).

    ``sample`` integrates it from a prior draw at ``t = 1`` down to ``t_min``;
    ``log_likelihood`` integrates data up to ``t = 1`` together with the divergence, so that
    ``log p_{t_min}(x) = log p_1(x(1)) + int div f_tilde dt`` (instantaneous change of
    variables; Chen et al. 2018, eq. 39 of Song et al. 2021). The divergence is exact or
    Hutchinson's estimate with a fixed Rademacher probe per example (Grathwohl et al. 2019).
    ``"auto"`` is exact up to ``exact_max_dim`` dimensions.
    """

    def __init__(
        self,
        sde: SDE,
        solver: str = "rk45",
        n_steps: int = 100,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        t_min: float = 1e-5,
        trace: str = "auto",
        exact_max_dim: int = 8,
    ) -> None:
        if solver not in ODE_SOLVERS:
            raise ValueError(f"solver must be one of {ODE_SOLVERS}; got {solver!r}")
        if trace not in TRACES:
            raise ValueError(f"trace must be one of {TRACES}; got {trace!r}")
        if n_steps < 1 or rtol <= 0 or atol <= 0:
            raise ValueError(
                f"need n_steps >= 1, rtol > 0, atol > 0; got {n_steps}, {rtol}, {atol}"
            )
        self.sde, self.solver, self.n_steps = sde, solver, int(n_steps)
        self.rtol, self.atol, self.t_min = float(rtol), float(atol), float(t_min)
        self.trace, self.exact_max_dim = trace, int(exact_max_dim)
        self.nfe = 0

    def _integrate(self, f, y: Tensor, t0: float, t1: float) -> tuple[Tensor, int]:
        if self.solver == "rk4":
            return rk4(f, y, t0, t1, self.n_steps)
        return rk45(f, y, t0, t1, rtol=self.rtol, atol=self.atol)

    def drift(self, score: ScoreFn, x: Tensor, t: Tensor) -> Tensor:
        """``f_tilde(x, t) = f(x, t) - g(t)^2 / 2 score(x, t)``, shaped like ``x``."""
        f, g = self.sde.sde(x, t)
        return f - 0.5 * _expand(g, x) ** 2 * score(x, t)

    @torch.no_grad()
    def sample(
        self, score: ScoreFn, x: Tensor, generator: torch.Generator | None = None, callback=None
    ) -> Tensor:
        """Map prior draws ``x`` at ``t = 1`` to data at ``t_min`` (deterministic)."""
        shape = x.shape

        def field(t: float, y: Tensor) -> Tensor:
            xs = y.reshape(shape)
            return self.drift(score, xs, _full(xs, t)).flatten(1)

        y, self.nfe = self._integrate(field, x.flatten(1), 1.0, self.t_min)
        out = y.reshape(shape)
        if callback is not None:
            callback(0, out)
        return out

    def log_likelihood(
        self, score: ScoreFn, x: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """``log p(x)`` per example ``(batch,)`` in nats, of ``x`` ``(batch, ...)``."""
        shape, d = x.shape, x[0].numel()
        exact = self.trace == "exact" or (self.trace == "auto" and d <= self.exact_max_dim)
        probe = None
        if not exact:
            probe = torch.randint(0, 2, (shape[0], d), generator=generator, device=x.device)
            probe = probe.to(x.dtype) * 2 - 1

        def field(t: float, y: Tensor) -> Tensor:
            xs = y[:, :d]

            def flat_drift(z: Tensor) -> Tensor:
                z = z.reshape(shape)
                return self.drift(score, z, _full(z, t)).flatten(1)

            fx, div = divergence(flat_drift, xs, probe)
            return torch.cat([fx, div[:, None]], dim=1)

        y0 = torch.cat([x.detach().flatten(1), x.new_zeros(shape[0], 1)], dim=1)
        y1, self.nfe = self._integrate(field, y0, self.t_min, 1.0)
        prior = self.sde.prior_log_prob(y1[:, :d].reshape(shape))
        return prior + y1[:, d]


class DDIM:
    """DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", ICLR 2021,
    arXiv:2010.02502), eq. 12 with the variance of eq. 16.

    Given a noise predictor ``eps(x, t)``, the signal levels ``alphas_bar`` ``(K + 1,)`` of a
    decreasing-noise sub-sequence of the training timesteps (the last is the level the chain
    ends at: 1, the data, for DDPM) and the network times ``times`` ``(K,)`` of the first
    ``K``, each step predicts ``x0 = (x - sqrt(1 - a) eps) / sqrt(a)`` and moves to the next
    level ``a'``::

        x' = sqrt(a') x0 + sqrt(1 - a' - s^2) eps + s z,
        s = eta sqrt((1 - a') / (1 - a)) sqrt(1 - a / a')

    ``eta = 0`` is deterministic given the initial noise (the probability-flow ODE's
    first-order solver); ``eta = 1`` on every timestep is DDPM's ancestral sampler with the
    posterior variance ``beta~`` (Ho et al. 2020's second choice of ``sigma_t^2``). ``K``
    network evaluations.
    """

    def __init__(self, alphas_bar: Tensor, times: Tensor, eta: float = 0.0) -> None:
        alphas_bar, times = torch.as_tensor(alphas_bar), torch.as_tensor(times)
        if len(alphas_bar) != len(times) + 1 or len(times) < 1:
            raise ValueError(
                f"need K + 1 levels for K >= 1 times; got {len(alphas_bar)} and {len(times)}"
            )
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1] (0: deterministic, 1: ancestral); got {eta}")
        self.alphas_bar = alphas_bar.double()
        self.times, self.eta = times.double(), float(eta)
        self.nfe = 0

    def cost(self) -> int:
        return len(self.times)

    @torch.no_grad()
    def __call__(
        self, eps: ScoreFn, x: Tensor, generator: torch.Generator | None = None, callback=None
    ) -> Tensor:
        ab = self.alphas_bar.tolist()
        for j, t in enumerate(self.times.tolist()):
            a, a_next = ab[j], ab[j + 1]
            e = eps(x, _full(x, t))
            x0 = (x - (1 - a) ** 0.5 * e) / a**0.5
            s = self.eta * ((1 - a_next) / (1 - a) * (1 - a / a_next)) ** 0.5
            x = a_next**0.5 * x0 + max(1 - a_next - s**2, 0.0) ** 0.5 * e
            if s > 0:
                x = x + s * _noise(x, generator)
            if callback is not None:
                callback(j, x)
        self.nfe = self.cost()
        return x


class DPMSolver:
    """Multistep DPM-Solver of orders 1-3 for the probability-flow ODE of a VP diffusion
    (Lu, Zhou, Bao, Chen, Li & Zhu, "DPM-Solver: A Fast ODE Solver for Diffusion
    Probabilistic Model Sampling in Around 10 Steps", NeurIPS 2022, arXiv:2206.00927; the
    multistep form of "DPM-Solver++", arXiv:2211.01095, section 3.2 and Algorithm 2, in the
    noise-prediction parametrisation of their reference code).

    The ODE is solved exactly in its linear part in ``lambda = log(alpha / sigma)`` (half the
    log-SNR); the noise prediction is extrapolated from the last ``order`` evaluations, so
    every step costs one network evaluation. With ``h = lambda' - lambda``::

        order 1 (DDIM): x' = alpha'/alpha x - sigma' (e^h - 1) eps
        order 2: ... - sigma'/2 (e^h - 1) D1
        order 3: ... - sigma' phi_2 D1 - sigma' phi_3 D2,  phi_2 = (e^h - 1)/h - 1,
                 phi_3 = phi_2 / h - 1/2

    with ``D1``, ``D2`` the divided differences of the earlier predictions. The first steps
    use lower orders (warm-up), and with fewer than 10 steps so do the last ones (Lu et al.'s
    ``lower_order_final``). Times are uniform in ``lambda`` between ``t_start`` and ``t_end``
    (their "logSNR" spacing, recommended for low-dimensional data).

    ``schedule.marginal(t) -> (alpha(t), sigma(t))`` gives the VP marginal ``N(alpha x0,
    sigma^2)``; ``eps(x, t)`` is called at the schedule's (continuous) times.
    """

    def __init__(
        self,
        schedule,
        n_steps: int,
        order: int = 3,
        t_start: float = 1.0,
        t_end: float = 1e-3,
    ) -> None:
        if n_steps < 1 or order not in (1, 2, 3):
            raise ValueError(f"need n_steps >= 1 and order in 1, 2, 3; got {n_steps}, {order}")
        if not 0 < t_end < t_start:
            raise ValueError(f"need 0 < t_end < t_start; got {t_end}, {t_start}")
        self.schedule, self.n_steps, self.order = schedule, int(n_steps), int(order)
        self.t_start, self.t_end = float(t_start), float(t_end)
        self.nfe = 0

    def cost(self) -> int:
        return self.n_steps

    def _log_alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = self.schedule.marginal(t.double())
        return alpha.log(), sigma.log()

    def timesteps(self) -> Tensor:
        """``n_steps + 1`` times from ``t_start`` to ``t_end``, uniform in ``lambda``
        (``lambda(t)`` inverted on a fine grid: it decreases monotonically in ``t``)."""
        grid = torch.linspace(self.t_end, self.t_start, 100_001, dtype=torch.float64)
        log_alpha, log_sigma = self._log_alpha_sigma(grid)
        lam = log_alpha - log_sigma  # decreasing in t
        targets = torch.linspace(float(lam[-1]), float(lam[0]), self.n_steps + 1,
                                 dtype=torch.float64)  # fmt: skip
        # interpolate t(lambda) on the increasing sequence -lambda
        xs, ys = -lam, grid
        idx = torch.searchsorted(xs, -targets).clamp(1, len(xs) - 1)
        x0, x1, y0, y1 = xs[idx - 1], xs[idx], ys[idx - 1], ys[idx]
        times = y0 + (y1 - y0) * (-targets - x0) / (x1 - x0).clamp_min(1e-300)
        times[0], times[-1] = self.t_start, self.t_end
        return times

    @torch.no_grad()
    def __call__(
        self, eps: ScoreFn, x: Tensor, generator: torch.Generator | None = None, callback=None
    ) -> Tensor:
        times = self.timesteps()
        log_alpha, log_sigma = self._log_alpha_sigma(times)
        lam = (log_alpha - log_sigma).tolist()
        log_alpha, sigma = log_alpha.tolist(), log_sigma.exp().tolist()
        history: list[Tensor] = []  # the noise predictions at the last (up to 3) times
        for j in range(self.n_steps):
            history = [*history[-2:], eps(x, _full(x, float(times[j])))]
            order = min(self.order, j + 1)
            if self.n_steps < 10:  # lower_order_final
                order = min(order, self.n_steps - j)
            h = lam[j + 1] - lam[j]
            phi_1 = math.expm1(h)
            x = math.exp(log_alpha[j + 1] - log_alpha[j]) * x - sigma[j + 1] * phi_1 * history[-1]
            if order == 2:
                r0 = (lam[j] - lam[j - 1]) / h
                d1 = (history[-1] - history[-2]) / r0
                x = x - 0.5 * sigma[j + 1] * phi_1 * d1
            elif order == 3:
                r0, r1 = (lam[j] - lam[j - 1]) / h, (lam[j - 1] - lam[j - 2]) / h
                d1_0 = (history[-1] - history[-2]) / r0
                d1_1 = (history[-2] - history[-3]) / r1
                d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = phi_1 / h - 1.0
                phi_3 = phi_2 / h - 0.5
                x = x - sigma[j + 1] * phi_2 * d1 - sigma[j + 1] * phi_3 * d2
            if callback is not None:
                callback(j, x)
        self.nfe = self.cost()
        return x
