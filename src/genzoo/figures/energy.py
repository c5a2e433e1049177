"""Figures for energy-based models: chains over time, 2-D energy landscapes, RBM filters.

Nothing here trains: pass fitted models (``genzoo.create`` + ``genzoo.Trainer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from genzoo.models.energy.langevin import grid  # noqa: E402
from genzoo.plotting import save_figure  # noqa: E402


def plot_chains(states: Sequence[Tensor], path: str | Path, titles: Sequence[str] = ()) -> Path:
    """Gibbs or Langevin chains over time: one panel per recorded state.

    ``states`` are ``(n, 2)`` point clouds (scatter plots) or ``(n, 1, h, w)`` images (the
    first 8 of each state, one row per state).
    """
    images = states[0].ndim == 4
    k = len(states)
    if images:
        fig, axes = plt.subplots(k, 8, figsize=(8, k), squeeze=False)
        for r, s in enumerate(states):
            for c in range(8):
                axes[r][c].imshow(s[c, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
                axes[r][c].axis("off")
            axes[r][0].set_title(titles[r] if r < len(titles) else f"t{r}", fontsize=7, loc="left")
        return save_figure(fig, path)
    fig, axes = plt.subplots(1, k, figsize=(2.2 * k, 2.4), squeeze=False)
    for c, s in enumerate(states):
        s = s.detach().cpu()
        axes[0][c].scatter(s[:, 0], s[:, 1], s=2, alpha=0.5)
        axes[0][c].set_title(titles[c] if c < len(titles) else f"step {c}", fontsize=8)
        axes[0][c].set_xticks([])
        axes[0][c].set_yticks([])
    return save_figure(fig, path)


@torch.no_grad()
def plot_energy_landscape(model, path: str | Path, resolution: int = 200) -> Path:
    """A 2-D energy model's energy ``E(x)`` and density ``exp(-E) / Z`` over its box
    (``EnergyModel``: ``energy`` and ``energy_box``)."""
    low, high = model.energy_box()
    points, _ = grid(low, high, resolution)
    energy = model.energy(points).cpu().reshape(resolution, resolution).T
    density = model.log_prob(points).exp().cpu().reshape(resolution, resolution).T
    extent = (low[0].item(), high[0].item(), low[1].item(), high[1].item())
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    for ax, image, title in ((axes[0], energy, "energy E(x)"), (axes[1], density, "exp(-E)/Z")):
        ax.imshow(image.numpy(), origin="lower", extent=extent, cmap="viridis")
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def plot_rbm_filters(weight: Tensor, path: str | Path, image_shape: Sequence[int] = (8, 8)) -> Path:
    """The receptive field of each hidden unit: columns of ``W`` ``(n_visible, n_hidden)``."""
    w = weight.detach().cpu()
    n = w.shape[1]
    cols = min(n, 16)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6, rows * 0.6), squeeze=False)
    for j in range(rows * cols):
        ax = axes[j // cols][j % cols]
        ax.axis("off")
        if j < n:
            f = w[:, j].reshape(*image_shape)
            ax.imshow(f.numpy(), cmap="RdBu_r", vmin=-f.abs().max(), vmax=f.abs().max())
    return save_figure(fig, path)
