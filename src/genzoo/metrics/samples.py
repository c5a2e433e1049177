"""Sample-quality metrics that need no downloaded weights: two-sample distances and k-NN
precision/recall, all pure functions of two tensors of examples (flattened to vectors).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).double()


def median_bandwidth(x: Tensor, y: Tensor, max_points: int = 2000) -> float:
    """The median heuristic: median pairwise distance of the pooled sample (Gretton et al. 2012)."""
    pooled = torch.cat([_flat(x)[:max_points], _flat(y)[:max_points]])
    d = torch.cdist(pooled, pooled)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)].median())


def mmd_rbf(x: Tensor, y: Tensor, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with an RBF kernel (Gretton et al. 2012, eq. 3).

    ``x`` (n, ...) and ``y`` (m, ...); ``bandwidth`` defaults to the median heuristic.
    Near 0 (and possibly slightly negative) when both samples come from one distribution.
    """
    x, y = _flat(x), _flat(y)
    h = bandwidth or median_bandwidth(x, y)
    gamma = 1.0 / (2.0 * h * h)
    kxx = torch.exp(-gamma * torch.cdist(x, x).pow(2))
    kyy = torch.exp(-gamma * torch.cdist(y, y).pow(2))
    kxy = torch.exp(-gamma * torch.cdist(x, y).pow(2))
    n, m = len(x), len(y)
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (Székely & Rizzo 2013), U-statistics."""
    x, y = _flat(x), _flat(y)
    n, m = len(x), len(y)
    exy = torch.cdist(x, y).mean()
    exx = torch.cdist(x, x).sum() / (n * (n - 1))
    eyy = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * exy - exx - eyy)


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance over random directions (Bonneel et al. 2015).

    Both samples are resampled to the same size by quantiles along each projection.
    """
    x, y = _flat(x), _flat(y)
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(x.shape[1], n_projections, generator=generator, dtype=x.dtype)
    directions /= directions.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ directions, dim=0)
    py, _ = torch.sort(y @ directions, dim=0)
    q = torch.linspace(0, 1, max(len(x), len(y)), dtype=x.dtype)
    qx = torch.quantile(px, q, dim=0)
    qy = torch.quantile(py, q, dim=0)
    return float((qx - qy).abs().mean())


def _kth_neighbour_radius(x: Tensor, k: int) -> Tensor:
    """Distance from each point of ``x`` to its k-th nearest other point of ``x``."""
    d = torch.cdist(x, x)
    return d.topk(k + 1, dim=1, largest=False).values[:, k]


def precision_recall(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage
    (Naeem et al. 2020) from k-NN balls, on raw features.

    precision: share of fakes inside some real k-NN ball; recall: share of reals inside some
    fake k-NN ball; knn_density: mean number of real balls holding a fake, divided by k;
    coverage: share of real balls holding at least one fake.
    """
    real, fake = _flat(real), _flat(fake)
    r_real = _kth_neighbour_radius(real, k)
    r_fake = _kth_neighbour_radius(fake, k)
    d = torch.cdist(real, fake)  # (n_real, n_fake)
    inside_real = d <= r_real[:, None]
    inside_fake = d <= r_fake[None, :]
    return {
        "precision": float(inside_real.any(dim=0).double().mean()),
        "recall": float(inside_fake.any(dim=1).double().mean()),
        "knn_density": float(inside_real.double().sum(dim=0).mean() / k),
        "coverage": float(inside_real.any(dim=1).double().mean()),
    }
