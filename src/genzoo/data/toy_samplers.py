"""Seeded samplers of the 2-D toys, and the geometry (centres, radii, curves) they share with
:mod:`genzoo.data.toy_densities`.

The samplers follow the conventions of the normalizing-flow literature, i.e. FFJORD's
``inf_train_gen`` (Grathwohl et al., "FFJORD: Free-form continuous dynamics for scalable
reversible generative models", ICLR 2019), and for ``25gaussians`` the grid of WGAN-GP
(Gulrajani et al., "Improved training of Wasserstein GANs", NeurIPS 2017). Unlike those scripts,
every draw goes through the ``numpy.random.Generator`` that is passed in; no global state is used.

Each sampler also returns what its generator knows about a point, where the toy has it: the
Gaussian a point came from (8gaussians, 25gaussians), the arm (moons, pinwheel, 2spirals),
the circle or ring (circles, rings), from the same draws, so the points are the same whether
or not the labels are asked for (:data:`TOY_CONDITIONS` names them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Array = np.ndarray
#: A sampler's points (n, 2) and, where the toy has them, their labels (n,) int64.
Labelled = tuple[Array, Array | None]

#: What the label of a point is, and how many values it takes, per toy that has one.
TOY_CONDITIONS: dict[str, tuple[str, int]] = {
    "moons": ("the moon a point lies on (sklearn make_moons' label)", 2),
    "circles": ("the circle a point lies on: 0 outer, 1 inner (make_circles' label)", 2),
    "rings": ("the ring a point lies on, 0 outermost to 3 innermost", 4),
    "8gaussians": ("the Gaussian a point was drawn from", 8),
    "25gaussians": ("the Gaussian of the grid a point was drawn from, row by row", 25),
    "pinwheel": ("the arm of the pinwheel a point lies on", 5),
    "2spirals": ("the spiral a point lies on", 2),
}


def _seed_for_sklearn(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _balanced_labels(n: int, k: int, rng: np.random.Generator) -> Array:
    """``n`` labels in ``0..k-1``, as equal in number as possible, in random order."""
    return rng.permutation(np.arange(n) % k)


def _sample_swissroll(n: int, rng: np.random.Generator) -> Labelled:
    from sklearn.datasets import make_swiss_roll  # lazily: sklearn costs a second at import

    x, _ = make_swiss_roll(n, noise=1.0, random_state=_seed_for_sklearn(rng))
    return x[:, [0, 2]] / 5.0, None


def _sample_circles(n: int, rng: np.random.Generator) -> Labelled:
    from sklearn.datasets import make_circles

    x, y = make_circles(n, factor=0.5, noise=0.08, random_state=_seed_for_sklearn(rng))
    return x * 3.0, y


def _sample_moons(n: int, rng: np.random.Generator) -> Labelled:
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.1, random_state=_seed_for_sklearn(rng))
    return x * 2.0 + np.array([-1.0, -0.2]), y


def centres_8gaussians() -> Array:
    s = 1.0 / math.sqrt(2.0)
    c = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    return c * 4.0


def _sample_8gaussians(n: int, rng: np.random.Generator) -> Labelled:
    centres = centres_8gaussians()
    idx = rng.integers(0, 8, size=n)
    return (rng.standard_normal((n, 2)) * 0.5 + centres[idx]) / 1.414, idx


def centres_25gaussians() -> Array:
    g = np.arange(-2, 3, dtype=np.float64)
    return np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2) * 2.0


def _sample_25gaussians(n: int, rng: np.random.Generator) -> Labelled:
    # WGAN-GP cycles through the grid, so each centre gets the same number of points.
    centres = centres_25gaussians()
    idx = _balanced_labels(n, 25, rng)
    return (rng.standard_normal((n, 2)) * 0.05 + centres[idx]) / 2.828, idx


RING_RADII = (1.0, 0.75, 0.5, 0.25)


def _sample_rings(n: int, rng: np.random.Generator) -> Labelled:
    # FFJORD: n//4 evenly spaced angles on each of the three outer rings, the rest on the inner.
    counts = [n // 4] * 3
    counts.append(n - sum(counts))
    parts = []
    for radius, m in zip(RING_RADII, counts, strict=True):
        angle = np.linspace(0.0, 2.0 * np.pi, m, endpoint=False)
        parts.append(radius * np.stack([np.cos(angle), np.sin(angle)], axis=1))
    # the labels ride along as a third column: one permutation of the rows, as before
    ring = np.repeat(np.arange(len(RING_RADII)), counts).astype(np.float64)
    rows = rng.permutation(np.concatenate([np.concatenate(parts), ring[:, None]], axis=1))
    x = rows[:, :2] * 3.0
    return x + rng.normal(scale=0.08, size=x.shape), rows[:, 2].astype(np.int64)


PIN_RADIAL, PIN_TANGENTIAL, PIN_ARMS, PIN_RATE = 0.3, 0.1, 5, 0.25


def _sample_pinwheel(n: int, rng: np.random.Generator) -> Labelled:
    labels = _balanced_labels(n, PIN_ARMS, rng)
    f = rng.standard_normal((n, 2)) * np.array([PIN_RADIAL, PIN_TANGENTIAL])
    f[:, 0] += 1.0
    angle = 2.0 * np.pi * labels / PIN_ARMS + PIN_RATE * np.exp(f[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    # FFJORD's einsum("ti,tij->tj") with rotations [[c, -s], [s, c]]: y = f rotated by -angle.
    y = np.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], axis=1)
    return 2.0 * y, labels


SPIRAL_TMAX = 540.0 * 2.0 * np.pi / 360.0  # 3 pi


def spiral_curve(t: Array) -> Array:
    """First arm before the uniform jitter, the noise and the division by 3."""
    return np.stack([-np.cos(t) * t, np.sin(t) * t], axis=-1)


def _sample_2spirals(n: int, rng: np.random.Generator) -> Labelled:
    arm = _balanced_labels(n, 2, rng)  # FFJORD puts n/2 points on each arm
    t = np.sqrt(rng.uniform(size=n)) * SPIRAL_TMAX
    d = spiral_curve(t) + rng.uniform(size=(n, 2)) * 0.5  # independent jitter per coordinate
    d[arm == 1] *= -1.0
    x = d / 3.0
    return x + rng.standard_normal(x.shape) * 0.1, arm


def _sample_checkerboard(n: int, rng: np.random.Generator) -> Labelled:
    x1 = rng.uniform(size=n) * 4.0 - 2.0
    x2 = rng.uniform(size=n) - rng.integers(0, 2, size=n) * 2.0
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2.0, None


SAMPLERS: dict[str, Callable[[int, np.random.Generator], Labelled]] = {
    "swissroll": _sample_swissroll,
    "circles": _sample_circles,
    "moons": _sample_moons,
    "8gaussians": _sample_8gaussians,
    "25gaussians": _sample_25gaussians,
    "rings": _sample_rings,
    "pinwheel": _sample_pinwheel,
    "2spirals": _sample_2spirals,
    "checkerboard": _sample_checkerboard,
}


def sample_toy(name: str, n: int, rng: np.random.Generator) -> Array:
    """Draw ``n`` points of the toy ``name`` as a float64 array shaped (n, 2)."""
    return sample_toy_labelled(name, n, rng)[0]


def sample_toy_labelled(name: str, n: int, rng: np.random.Generator) -> Labelled:
    """Draw ``n`` points of the toy ``name`` (float64, (n, 2)) with their labels ((n,) int64,
    see :data:`TOY_CONDITIONS`; ``None`` for a toy without them); the points are those of
    :func:`sample_toy` with the same generator state."""
    x, labels = SAMPLERS[name](n, rng)
    x = np.asarray(x, dtype=np.float64)
    return x, None if labels is None else np.asarray(labels, dtype=np.int64)
