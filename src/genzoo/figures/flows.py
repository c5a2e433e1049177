"""Figures for normalizing flows: the targets of Rezende & Mohamed (2015) and fits to them.

``plot_target_fits`` draws the layout of the paper's figure 3: one row per target energy,
the true density ``exp(-U)/Z`` first, then each fitted model's density on the same grid.
Nothing here trains: pass models fitted with ``genzoo.target_fitting.fit_target``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genzoo.data import targets  # noqa: E402
from genzoo.models.base import GenerativeModel  # noqa: E402
from genzoo.plotting import save_figure  # noqa: E402

#: The window of the paper's figure.
LIMIT = targets.WINDOW


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    axis = torch.linspace(-LIMIT, LIMIT, n, dtype=torch.float64)
    zz = torch.cartesian_prod(axis, axis)  # rows vary z1 slowest
    return axis, zz


@torch.no_grad()
def _density(model: GenerativeModel, points: torch.Tensor) -> torch.Tensor:
    log_p = model.log_prob(points.to(device=model.device, dtype=model.dtype))
    return log_p.double().exp().cpu()


def plot_target_fits(
    fits: Mapping[str, Sequence[tuple[str, GenerativeModel]]],
    path: str | Path,
    resolution: int = 200,
) -> Path:
    """Figure 3 of Rezende & Mohamed: per target, the truth then each model's density.

    ``fits`` maps a target name (``"u1"``..``"u4"``) to ``(label, model)`` pairs, e.g.
    ``{"u1": [("K = 2", m2), ("K = 8", m8), ("K = 32", m32)]}``. Densities are drawn on
    ``[-4, 4]^2`` with ``resolution`` points a side. Returns the path of the PNG.
    """
    axis, points = _grid(resolution)
    columns = 1 + max((len(v) for v in fits.values()), default=0)
    fig, axes = plt.subplots(
        len(fits), columns, figsize=(2.2 * columns, 2.2 * len(fits)), squeeze=False
    )
    extent = (-LIMIT, LIMIT, -LIMIT, LIMIT)
    for row, (target, models) in enumerate(fits.items()):
        truth = targets.log_prob(target, points).exp()
        panels = [("exp(-U)/Z", truth), *((label, _density(m, points)) for label, m in models)]
        for col in range(columns):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(panels):
                ax.axis("off")
                continue
            label, dens = panels[col]
            image = dens.reshape(resolution, resolution).T  # z1 across, z2 up
            ax.imshow(image.numpy(), origin="lower", extent=extent, cmap="viridis")
            ax.set_title(label, fontsize=8)
            if col == 0:
                ax.set_ylabel(target.upper())
    return save_figure(fig, path)


def plot_targets(path: str | Path, resolution: int = 200) -> Path:
    """The four target densities of table 1 side by side."""
    return plot_target_fits({name: [] for name in targets.list_targets()}, path, resolution)
