"""What a model can do besides the protocol of ``genzoo.models.base``, declared by having it.

Every model samples; some also have a latent space, mixture components, filters, an energy,
a noise-conditional score, per-position probabilities, codes, a translation or styles. Each
such capability is a small runtime-checkable protocol: a model has it when it has the
members, and the figures, the benchmark, the tests and the CLI ask
``isinstance(model, Capability)`` instead of branching on a model's name or family. A new
model gets the figures and measurements of a capability by implementing its members; nothing
outside the model's own file changes.

``isinstance`` checks that the members exist, not their signatures: the docstrings below are
the contract (shapes, units), and the capability tests call every member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class StepSampler(Protocol):
    """A sampler run for a chosen number of steps, which says what a run costs.

    ``sample(n, generator, steps=k)`` runs ``k`` steps for this call only (``None``: the
    configured count), without changing the model; ``sampling_cost(steps)`` says beforehand
    how many network evaluations per sample that takes (``{"nfe_per_sample": None, ...}`` for
    an adaptive solver, which sets its own step count); ``last_nfe`` holds the evaluations per
    sample the last ``sample`` made. Why: the benchmark reports evaluations per sample and
    draws sample quality against the step count (score models, diffusion).
    """

    last_nfe: int

    def sample(
        self, n: int, generator: torch.Generator | None = None, steps: int | None = None
    ) -> Tensor: ...

    def sampling_cost(self, steps: int | None = None) -> dict[str, Any]: ...


@runtime_checkable
class LatentVariable(Protocol):
    """A model with a latent code per example: ``encode(x) -> z``, ``decode(z) -> x``.

    ``encode``: ``(n, *data_shape) -> (n, latent_dim)``, a representative code (the posterior
    mean of a VAE); ``decode``: ``(n, latent_dim) -> (n, *data_shape)``, a representative
    example (the decoder's mean). Why: interpolations, latent traversals and latent scatter
    plots (``genzoo.figures.vae``) need nothing else.
    """

    latent_dim: int

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, z: Tensor) -> Tensor: ...


@runtime_checkable
class Mixture(Protocol):
    """A finite mixture of Gaussians over the data, with soft assignments.

    ``components()`` gives weights ``(K,)`` (summing to 1), means ``(K, D)`` and full
    covariances ``(K, D, D)`` in data units, whatever the model stores (a diagonal GMM's
    variances, a deep GMM's paths); ``predict_proba(x)``: ``(n, *data_shape) -> (n, K)``, the
    posterior ``p(k | x)`` in the order of ``components()``. Why: component ellipses and
    responsibility plots (``genzoo.figures.mixtures``).
    """

    def components(self) -> tuple[Tensor, Tensor, Tensor]: ...

    def predict_proba(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class HasFilters(Protocol):
    """A model whose first layer has one receptive field per unit over the data.

    ``filters()``: ``(n_units, data_dim)``, unit ``j``'s weights on the flattened example (an
    RBM's columns of ``W``; a deep model's first layer). Why: the filter grid of Hinton's
    RBM pictures, drawn for image data (``genzoo.figures.energy.plot_rbm_filters``).
    """

    def filters(self) -> Tensor: ...


@runtime_checkable
class EnergyModel(Protocol):
    """A model given by an energy over the data: ``p(x) proportional to exp(-E(x))``.

    ``energy(x)``: ``(n, *data_shape) -> (n,)``; ``energy_box()``: ``(low, high)``, each
    ``(data_dim,)``, the box in data units where the energy is meant to be read (and, in 2-D,
    normalised). A joint energy ``E(v, h)`` of visible and hidden units is not this (no
    ``energy_box``). Why: energy landscapes in 2-D (``genzoo.figures.energy``).
    """

    def energy(self, x: Tensor) -> Tensor: ...

    def energy_box(self) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class NoiseConditional(Protocol):
    """A score model: ``score(x, level)`` estimates ``grad_x log p_level(x)`` at a noise level.

    ``score``: ``(n, *data_shape) -> (n, *data_shape)``; ``level`` is whatever indexes the
    model's noise (a standard deviation ``sigma`` in data units for NCSN, a diffusion time
    ``t`` in ``(0, 1]`` for DDPM and score SDEs). ``noise_levels()`` gives three levels the
    model was trained at, much noise to little, so a figure need not know which kind of level
    it is; ``sample_trajectory(n, generator, n_frames)`` gives ``(n_frames, n, *data_shape)``
    snapshots of the sampler, noise to data. Why: score fields, Langevin paths and
    denoising sequences (``genzoo.figures.score``).
    """

    def score(self, x: Tensor, level: Any) -> Tensor: ...

    def noise_levels(self) -> list[float]: ...

    def sample_trajectory(
        self, n: int, generator: torch.Generator | None = None, n_frames: int = 8
    ) -> Tensor: ...


@runtime_checkable
class SamplerChoice(Protocol):
    """A model with several samplers, chosen per call.

    ``samplers`` names them, the default first; ``sample(n, generator, steps=k,
    sampler=NAME)`` runs one; ``sampling_cost(steps, sampler)`` says what a run costs and
    raises ``ValueError`` for a step count that sampler cannot take. Why: the benchmark draws
    sample quality against network evaluations for each sampler (ancestral, DDIM,
    DPM-Solver).
    """

    samplers: tuple[str, ...]

    def sampling_cost(
        self, steps: int | None = None, sampler: str | None = None
    ) -> dict[str, Any]: ...


@runtime_checkable
class ClassGuided(Protocol):
    """A model sampled with classifier-free guidance (Ho & Salimans 2022) when built with a
    class condition: ``sample(n, generator, c=labels, guidance=w)``, ``w = 0`` the
    unconditional model, 1 the conditional one (``guidance``: the configured scale, ``None``
    for 1). Why: the benchmark's guidance sweep (class accuracy and diversity against ``w``).
    """

    guidance: float | None


@runtime_checkable
class Autoregressive(Protocol):
    """A model that scores each scalar given the ones before it.

    ``log_prob_terms(x)``: ``(n, *data_shape) -> (n, D)``, ``log P(x_i | x_<i)`` in nats, in
    the model's order; their sum over ``i`` is ``log_prob(x)``. Why: per-pixel and per-token
    surprisal maps (``genzoo.figures.autoregressive``).
    """

    def log_prob_terms(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class CodeConditioned(Protocol):
    """A generator driven by noise plus interpretable codes (InfoGAN).

    ``n_categories`` (0: none) and ``n_continuous`` codes; ``draw_latent(n, generator)``:
    noise ``(n, latent_dim)``; ``generate_with_codes(z, categories (n,) long, continuous
    (n, n_continuous), ema)``: examples ``(n, *data_shape)`` (``ema=True``: the averaged
    weights where the model keeps them). Why: code traversals (``genzoo.figures.gans``).
    """

    n_categories: int
    n_continuous: int

    def draw_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def generate_with_codes(
        self, z: Tensor, categories: Tensor, continuous: Tensor, ema: bool = False
    ) -> Tensor: ...


@runtime_checkable
class Translator(Protocol):
    """A model of two domains side by side that maps examples of one to the other (CycleGAN).

    ``split(x)``: ``(n, *data_shape) -> (a, b)``, each ``(n, *domain_shape)``;
    ``translate(x, "AB" | "BA")``: examples of the first domain to the second. Why:
    translation and cycle figures (``genzoo.figures.gans.plot_translations``).
    """

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]: ...

    def translate(self, x: Tensor, direction: str = "AB") -> Tensor: ...


@runtime_checkable
class StyleMixer(Protocol):
    """A style-based generator: one style per layer, each may come from another latent.

    ``n_styles`` layers; ``draw_latent(n, generator)``: ``(n, latent_dim)``;
    ``mix_styles(z, z_mix, crossover, generator)``: examples with the styles of layers
    ``< crossover`` from ``z`` and the rest from ``z_mix`` (``crossover = n_styles``: ``z``
    alone). Why: style-mixing grids (``genzoo.figures.gans.plot_style_mixing``).
    """

    n_styles: int

    def draw_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def mix_styles(
        self, z: Tensor, z_mix: Tensor, crossover: int, generator: torch.Generator | None = None
    ) -> Tensor: ...


#: Every capability, in the order reports list them.
CAPABILITIES: tuple[type, ...] = (
    StepSampler,
    LatentVariable,
    Mixture,
    HasFilters,
    EnergyModel,
    NoiseConditional,
    SamplerChoice,
    ClassGuided,
    Autoregressive,
    CodeConditioned,
    Translator,
    StyleMixer,
)


def capabilities(model: object) -> list[str]:
    """The names of the capabilities ``model`` has, e.g. ``["Mixture"]``."""
    return [c.__name__ for c in CAPABILITIES if isinstance(model, c)]


def model_facts(model: Any) -> dict[str, Any]:
    """What this model (not its class) is, JSON-ready: its density kind and the kinds its
    class may have, the data it models (continuous or discrete), what it is conditioned on
    (``condition_kind``: ``"discrete"``, ``"continuous"`` or ``None``), its optimisers
    (players; none for a model that fits itself) and its capabilities. ``genzoo eval``
    reports them."""
    players: Sequence[str] = model.players
    return {
        "density": model.density,
        "density_kinds": list(type(model).density_kinds),
        "data_kind": model.data_kind,
        "condition_kind": model.condition_kind,
        "players": list(players),
        "capabilities": capabilities(model),
    }
