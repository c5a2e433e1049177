"""Mode coverage on Gaussian mixtures: how many modes a sampler reaches, and how precisely.

The criteria of the mode-collapse literature (Metz et al., "Unrolled generative adversarial
networks", ICLR 2017; Srivastava et al., "VEEGAN", NeurIPS 2017; Lin et al., "PacGAN",
NeurIPS 2018): a sample is *high quality* when it lies within ``n_std`` (3) standard
deviations of its nearest mode centre; a mode is *covered* when at least ``min_count``
high-quality samples fall to it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genzoo.errors import DataError


def mode_centres(dataset: str) -> tuple[np.ndarray, float]:
    """Mode centres ``(k, 2)`` and per-coordinate noise std of a mixture toy, as sampled.

    ``8gaussians``: ``(±1, 0), (0, ±1), (±1/√2, ±1/√2)`` times 4, all divided by 1.414, std
    ``0.5 / 1.414``. ``25gaussians``: the grid ``{-2..2}^2`` times 2 divided by 2.828, std
    ``0.05 / 2.828``.
    """
    if dataset == "8gaussians":
        s = 1.0 / math.sqrt(2.0)
        c = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
        return c * 4.0 / 1.414, 0.5 / 1.414
    if dataset == "25gaussians":
        g = np.arange(-2, 3, dtype=np.float64)
        grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
        return grid * 2.0 / 2.828, 0.05 / 2.828
    raise ValueError(f"no known modes for {dataset!r}; choose '8gaussians' or '25gaussians'")


def mode_coverage(
    samples: torch.Tensor | np.ndarray,
    centres: torch.Tensor | np.ndarray,
    std: float,
    n_std: float = 3.0,
    min_count: int = 1,
) -> dict[str, float | int | list[int]]:
    """Modes covered and the share of high-quality samples.

    Args:
        samples: ``(n, d)`` points.
        centres: ``(k, d)`` mode centres.
        std: the modes' isotropic standard deviation.
        n_std: a sample is high quality within ``n_std * std`` of its nearest centre.
        min_count: high-quality samples a mode needs to count as covered.

    Returns:
        ``modes_covered`` (int), ``n_modes`` (k), ``high_quality_share`` (in [0, 1]) and
        ``counts`` (high-quality samples per mode, a list of k ints).
    """
    x = np.asarray(samples.detach().cpu() if isinstance(samples, torch.Tensor) else samples,
                   dtype=np.float64)  # fmt: skip
    c = np.asarray(centres.detach().cpu() if isinstance(centres, torch.Tensor) else centres,
                   dtype=np.float64)  # fmt: skip
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1] or len(x) == 0:
        raise DataError(f"need samples (n, d) and centres (k, d) with n > 0; got shapes "
                        f"{x.shape} and {c.shape}")  # fmt: skip
    if not np.isfinite(x).all():
        raise DataError("samples hold NaN or infinite values: the sampler has diverged")
    if std <= 0 or n_std <= 0 or min_count < 1:
        raise ValueError(f"need std > 0, n_std > 0, min_count >= 1; got {std}, {n_std}, "
                         f"{min_count}")  # fmt: skip
    distance = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=-1)  # (n, k)
    nearest = distance.argmin(1)
    good = distance[np.arange(len(x)), nearest] <= n_std * std
    counts = np.bincount(nearest[good], minlength=len(c))
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "n_modes": len(c),
        "high_quality_share": float(good.mean()),
        "counts": [int(k) for k in counts],
    }
