"""2-D toy densities: what they are, seeded draws of them and their true log densities.

The samplers (:mod:`genzoo.data.toy_samplers`) follow FFJORD's ``inf_train_gen`` and draw
through the ``numpy.random.Generator`` passed in; the true densities
(:mod:`genzoo.data.toy_densities`) are computed in float64 and in log space, in closed form or
by quadrature. This module names the toys and is the way in to both.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genzoo.data._common import make_rng
from genzoo.data.toy_densities import toy_log_prob
from genzoo.data.toy_samplers import TOY_CONDITIONS, sample_toy, sample_toy_labelled

__all__ = [
    "DEFAULT_TOY_N",
    "TOY_DESCRIPTIONS",
    "TOY_ENTROPY",
    "TOY_CONDITIONS",
    "TOY_NAMES",
    "load_toy",
    "load_toy_labelled",
    "sample_toy",
    "toy_log_prob",
]

#: Reference entropies in nats, computed independently by quadrature to 1e-5 (midpoint rule
#: on boxes holding all but a negligible part of the mass, at two grid steps).
TOY_ENTROPY: dict[str, float] = {
    "swissroll": 2.66965,
    "circles": 3.26814,
    "moons": 2.39388,
    "8gaussians": 2.83188,
    "25gaussians": -2.01385,
    "rings": 2.62318,
    "pinwheel": 2.31779,
    "2spirals": 2.64545,
    "checkerboard": math.log(32.0),
}

TOY_DESCRIPTIONS: dict[str, str] = {
    "swissroll": "2-D swiss roll (sklearn make_swiss_roll, noise 1, columns 0 and 2, /5; FFJORD)",
    "circles": "two noisy concentric circles, radii 3 and 1.5 (sklearn make_circles x3; FFJORD)",
    "moons": "two interleaved half moons (sklearn make_moons, noise 0.1, x2; FFJORD)",
    "8gaussians": "8 Gaussians on a circle of radius 4/1.414 (FFJORD)",
    "25gaussians": "5x5 grid of small Gaussians (WGAN-GP, Gulrajani et al. 2017; FFJORD)",
    "rings": "four noisy concentric rings, radii 3, 2.25, 1.5, 0.75 (FFJORD)",
    "pinwheel": "five curved arms of a pinwheel (FFJORD)",
    "2spirals": "two interleaved spirals (FFJORD)",
    "checkerboard": "uniform on the black squares of a 4x4 checkerboard on [-4, 4]^2 (FFJORD)",
}

TOY_NAMES: tuple[str, ...] = tuple(TOY_ENTROPY)
#: Points drawn when ``n`` is not given.
DEFAULT_TOY_N = 10_000


def load_toy(name: str, split: str, n: int | None, seed: int) -> torch.Tensor:
    """``n`` points (default 10,000) of the toy ``name`` for ``split`` as a float tensor of
    torch's default dtype: a fresh draw seeded from ``seed``, the toy and the split."""
    x = sample_toy(name, n or DEFAULT_TOY_N, make_rng(seed, name, split))
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.get_default_dtype())


def load_toy_labelled(
    name: str, split: str, n: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The points of :func:`load_toy` (the same draws) and their labels, int64 ``(n,)``:
    the component or arm each point came from (:data:`TOY_CONDITIONS`)."""
    x, labels = sample_toy_labelled(name, n or DEFAULT_TOY_N, make_rng(seed, name, split))
    assert labels is not None, f"{name} has no labels"
    as_x = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.get_default_dtype())
    return as_x, torch.as_tensor(labels, dtype=torch.long)
