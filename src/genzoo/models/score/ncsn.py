"""NCSN: a noise-conditional score network sampled by annealed Langevin dynamics.

References:
    Vincent, "A Connection Between Score Matching and Denoising Autoencoders",
    Neural Computation 2011.
    Song & Ermon, "Generative Modeling by Estimating Gradients of the Data Distribution",
    NeurIPS 2019 (arXiv:1907.05600).
    Song & Ermon, "Improved Techniques for Training Score-Based Generative Models",
    NeurIPS 2020 (arXiv:2006.09011).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.errors import DensityUnavailable
from genzoo.models.score.common import NoiseFn, ScoreModel
from genzoo.models.score.samplers import AnnealedLangevin
from genzoo.models.score.sde import geometric_sigmas, max_pairwise_distance
from genzoo.registry import register_model


@register_model("ncsn", family="score")
class NCSN(ScoreModel):
    """Noise-conditional score network with annealed Langevin sampling (no density).

    One network ``s(x, sigma) = -eps_hat(x, log sigma) / sigma`` is trained at every level of
    a geometric sequence ``sigma_1 > ... > sigma_L`` by denoising score matching weighted by
    ``lambda(sigma) = sigma^2`` (eq. 5-6), and sampled by annealed Langevin dynamics
    (Algorithm 1, see ``samplers.AnnealedLangevin``). The improved techniques of Song & Ermon
    (2020) are options: ``sigma_max=None`` sets ``sigma_1`` to the largest distance between
    training examples (technique 1), ``denoise`` adds the final Tweedie step, ``ema`` keeps
    averaged weights (technique 5). The scores define no normalised density.

    Class-conditional (``n_classes``), the network also reads the class, dropped to the null
    class with probability ``p_uncond`` in training, and sampling class ``c`` follows the
    guided score ``s(x, sigma, null) + w (s(x, sigma, c) - s(x, sigma, null))``
    (classifier-free guidance scale ``w``: 0 unconditional, 1 conditional, the default; see
    ``genzoo.models.score.common``).

    Arguments:
        data_shape: shape of one example.
        n_levels: number of noise levels ``L``.
        sigma_max: ``sigma_1`` in standardised units; ``None`` reads it from the data.
        sigma_min: ``sigma_L``.
        n_steps_each: Langevin steps per level ``T``.
        step_lr: ``epsilon``, the step size at the last level (``alpha_i = eps sigma_i^2 /
            sigma_L^2``).
        denoise: end with ``x + sigma_L^2 s(x, sigma_L)``.
        network, hidden, depth, channels, activation, ema, standardize: see ``ScoreModel``.

    Example:
        >>> import genzoo, torch
        >>> x = genzoo.load_dataset("8gaussians", n=500)
        >>> model = genzoo.create("ncsn", data=x, hidden=32, n_steps_each=5)
        >>> model.sample(4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 2])
        >>> model.sampling_cost()["nfe_per_sample"]
        51
    """

    density = "none"

    def __init__(
        self,
        data_shape: Sequence[int],
        n_levels: int = 10,
        sigma_max: float | None = None,
        sigma_min: float = 0.01,
        n_steps_each: int = 100,
        step_lr: float = 5e-5,
        denoise: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)
        if sigma_max is not None and sigma_max <= sigma_min:
            raise ValueError(f"need sigma_max > sigma_min (or None); got {sigma_max}, {sigma_min}")
        # Placeholder sigma_1 until initialize reads it from the data; saved as a buffer.
        start = 1.0 if sigma_max is None else float(sigma_max)
        self.register_buffer(
            "sigmas", geometric_sigmas(max(start, 2 * sigma_min), sigma_min, n_levels)
        )
        self.sigma_max, self.sigma_min = sigma_max, float(sigma_min)
        self.sampler = AnnealedLangevin(self.sigmas, n_steps_each, step_lr, denoise)

    def initialize(self, data: Tensor, c: Any = None) -> None:
        """Standardise, then set ``sigma_1`` to the largest pairwise distance if asked (and
        record the class frequencies of ``c``, for a class-conditional model)."""
        super().initialize(data, c=c)
        if self.sigma_max is None:
            sigma_1 = max_pairwise_distance(self.to_latent(self.check_input(data)))
            sigmas = geometric_sigmas(
                max(sigma_1, 2 * self.sigma_min), self.sigma_min, len(self.sigmas)
            )
            self.sigmas.copy_(sigmas)

    def score(
        self,
        x: Tensor,
        sigma: Tensor | float,
        averaged: bool = True,
        c: Any = None,
        guidance: float | None = None,
    ) -> Tensor:
        """``grad_x log p_sigma(x)`` in data units, for ``x`` ``(batch, *data_shape)``; given
        the class ``c`` of a conditional model, its score guided at scale ``guidance`` (the
        config's if None: 1, the class's own score, unless built with another)."""
        y = self.to_latent(x)
        sigma = torch.as_tensor(sigma, device=y.device, dtype=y.dtype).expand(y.shape[0])
        labels = self.labels(c, y.shape[0])
        noise = self.noise_fn(labels, self._guidance_for(guidance, labels), averaged)
        return self._score_of(noise)(y, sigma / self.scale) / self.scale

    def noise_levels(self) -> list[float]:
        """The largest, middle and smallest trained ``sigma`` (``NoiseConditional``)."""
        sigmas = self.sigmas.tolist()
        return [sigmas[0], sigmas[len(sigmas) // 2], sigmas[-1]]

    @staticmethod
    def _score_of(noise: NoiseFn) -> NoiseFn:
        """The score ``-eps~(y, log sigma) / sigma`` at level ``sigma`` of a noise predictor."""
        return lambda y, sigma: -noise(y, sigma.log()) / sigma.reshape(-1, *([1] * (y.ndim - 1)))

    def loss(self, batch: Tensor, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        """Denoising score matching over all levels, weighted by ``sigma^2`` (eq. 6).

        ``lambda(sigma) l(theta; sigma) = 1/2 E |sigma s(x + sigma z, sigma) + z|^2
        = 1/2 E |z - eps_hat|^2``, averaged over levels drawn uniformly per example. Given
        the classes ``c``, each is dropped to the null class with probability ``p_uncond``.
        """
        y = self.to_latent(self.check_input(batch))
        classes = self.check_condition(c, y.shape[0])
        level = torch.randint(len(self.sigmas), (y.shape[0],), device=y.device)
        sigma = self.sigmas[level]
        z = torch.randn_like(y)
        noisy = y + sigma.reshape(-1, *([1] * (y.ndim - 1))) * z
        eps = self.predict_noise(noisy, sigma.log(), labels=self.drop_labels(classes))
        return {"dsm": 0.5 * (eps - z).square().flatten(1).sum(1).mean()}

    def _langevin(self, steps: int | None) -> AnnealedLangevin:
        """The configured sampler, or a copy with ``steps`` Langevin steps per level."""
        self.sampler.sigmas = self.sigmas
        if steps is None:
            return self.sampler
        s = self.sampler
        return AnnealedLangevin(self.sigmas, self._check_steps(steps), s.step_lr, s.denoise)

    @property
    def samplers(self) -> tuple[str, ...]:
        return ("annealed-langevin",)

    def sampling_cost(
        self, steps: int | None = None, sampler: str | None = None
    ) -> dict[str, int | str | None]:
        """``L * steps (+1)`` evaluations; ``steps`` is ``n_steps_each`` (configured if None)."""
        self._sampler_options(sampler, None, None)
        cost = self._langevin(steps).cost()
        return {"sampler": "annealed-langevin", "nfe_per_sample": cost, "steps": cost}

    def _sample(self, n: int, generator, callback, steps=None, noise=None, **how: Any) -> Tensor:
        sampler = self._langevin(steps)
        # Start from N(0, sigma_1^2 I) around the (standardised) data mean.
        y = self._noise((n, *self.data_shape), generator) * self.sigmas[0]
        y = sampler(self._score_of(noise or self.noise_fn(None)), y, generator, callback)
        self.last_nfe = sampler.nfe
        return y

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Refused: the noise-conditional scores define no normalised density (nor, given a
        class, a conditional one)."""
        self.labels(c, len(self.check_input(x)))
        raise DensityUnavailable(
            "ncsn learns scores (gradients of log densities) at each noise level, which fix "
            "no normalised density (density='none'); use the probability-flow ODE likelihood "
            "of 'score-sde' or 'ddpm', or sample metrics such as MMD, instead"
        )
