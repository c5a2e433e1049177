"""Figures for VAEs on images: interpolation strip, latent traversal grid, 2-D latent scatter.

Nothing here trains: pass a trained ``vae`` / ``beta-vae`` (images shaped ``(C, H, W)``; one
channel is drawn in grey). ``digits_labels(split)`` gives the class labels of ``digits`` and
``digits-binary`` in the order ``genzoo.load_dataset`` returns them, to colour the scatter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from genzoo.data.images import DIGITS_SPLIT_SIZES  # noqa: E402
from genzoo.models.vae.latent import interpolate, traverse  # noqa: E402
from genzoo.plotting import save_figure  # noqa: E402


def digits_labels(split: str = "test") -> np.ndarray:
    """Class labels 0..9 of the digits in ``split`` (the split of ``genzoo.load_dataset``)."""
    from sklearn.datasets import load_digits

    names = list(DIGITS_SPLIT_SIZES)
    if split not in names:
        raise ValueError(f"split must be one of {names}; got {split!r}")
    k = names.index(split)
    start = sum(list(DIGITS_SPLIT_SIZES.values())[:k])
    return load_digits().target[start : start + DIGITS_SPLIT_SIZES[split]]


def _image(x: torch.Tensor) -> np.ndarray:
    x = x.detach().cpu().float()
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).clamp(0, 1).numpy()


def plot_interpolation(
    model, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], path: str | Path, steps: int = 8
) -> Path:
    """One row per pair ``(x_a, x_b)``: ``x_a``, the decoded path between their codes, ``x_b``."""
    fig, axes = plt.subplots(len(pairs), steps + 2, figsize=(0.9 * (steps + 2), 0.95 * len(pairs)),
                             squeeze=False)  # fmt: skip
    for row, (a, b) in enumerate(pairs):
        images = [a, *interpolate(model, a, b, steps), b]
        for col, image in enumerate(images):
            ax = axes[row][col]
            ax.imshow(_image(image), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_title("x_a" if row == 0 else "", fontsize=7)
        axes[row][-1].set_title("x_b" if row == 0 else "", fontsize=7)
    fig.suptitle("latent interpolation (inputs at the ends)", fontsize=8)
    return save_figure(fig, path)


def plot_traversal(
    model,
    path: str | Path,
    x: torch.Tensor | None = None,
    dims: Sequence[int] | None = None,
    values: Sequence[float] = (-3, -2, -1, 0, 1, 2, 3),
) -> Path:
    """Latent traversal grid: row ``j`` varies dimension ``j`` over ``values`` around the code
    of ``x`` (the prior mean if ``None``)."""
    grid = traverse(model, x, dims, values)
    dims = list(range(model.latent_dim)) if dims is None else list(dims)
    size = (0.85 * len(values), 0.85 * len(dims))
    fig, axes = plt.subplots(len(dims), len(values), figsize=size, squeeze=False)
    for r, j in enumerate(dims):
        for c, v in enumerate(values):
            ax = axes[r][c]
            ax.imshow(_image(grid[r, c]), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{v:g}", fontsize=7)
        axes[r][0].set_ylabel(f"z{j}", fontsize=7)
    return save_figure(fig, path)


def plot_latent_scatter(
    model, x: torch.Tensor, labels: Sequence[int] | np.ndarray, path: str | Path
) -> Path:
    """Posterior means of ``x`` coloured by ``labels``; codes with more than 2 dimensions are
    projected on their first two principal components (the axes say which)."""
    z = model.encode(x).cpu().double().numpy()
    if z.shape[1] > 2:
        z, axes_names = PCA(2).fit_transform(z), ("PC 1", "PC 2")
    elif z.shape[1] == 2:
        axes_names = ("z0", "z1")
    else:
        z, axes_names = np.hstack([z, np.zeros_like(z)]), ("z0", "")
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    points = ax.scatter(z[:, 0], z[:, 1], c=np.asarray(labels), cmap="tab10", s=6)
    fig.colorbar(points, ax=ax, label="label")
    ax.set_xlabel(axes_names[0])
    ax.set_ylabel(axes_names[1])
    ax.set_title("posterior means E_q[z | x]", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
