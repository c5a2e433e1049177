"""Pictures people would rather look at than read: samples, densities, loss curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from torch import Tensor  # noqa: E402


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders made as needed) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_samples(
    samples: Tensor | np.ndarray,
    path: str | Path,
    reference: Tensor | np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Scatter plot for vectors (first two coordinates), an image grid for images."""
    x = np.asarray(samples.detach().cpu() if isinstance(samples, Tensor) else samples)
    if x.ndim >= 3:
        return plot_image_grid(x, path, title)
    fig, ax = plt.subplots(figsize=(4, 4))
    if reference is not None:
        ref = np.asarray(reference.cpu() if isinstance(reference, Tensor) else reference)
        ref_second = ref[:, 1] if ref.shape[1] > 1 else np.zeros(len(ref))
        ax.scatter(ref[:, 0], ref_second, s=1, alpha=0.3, c="grey", label="data")
    second = x[:, 1] if x.shape[1] > 1 else np.zeros(len(x))
    ax.scatter(x[:, 0], second, s=1, alpha=0.5, c="C0", label="samples")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    if reference is not None:
        ax.legend(loc="upper right", markerscale=6, fontsize=7)
    return save_figure(fig, path)


def plot_image_grid(images: np.ndarray, path: str | Path, title: str = "") -> Path:
    """A square grid of greyscale images shaped ``(n, [1,] H, W)``."""
    images = images.reshape(images.shape[0], *images.shape[-2:])
    n = images.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, w = images.shape[1:]
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = image
    fig, ax = plt.subplots(figsize=(0.5 * cols + 1, 0.5 * rows + 1))
    ax.imshow(canvas, cmap="gray_r", interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title)
    return save_figure(fig, path)


@torch.no_grad()
def plot_density(
    model,
    path: str | Path,
    bounds: tuple[float, float] = (-4.0, 4.0),
    resolution: int = 200,
    title: str = "",
) -> Path:
    """Heat map of ``exp(model.log_prob)`` on a 2-D grid."""
    axis = torch.linspace(bounds[0], bounds[1], resolution)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([xx.flatten(), yy.flatten()], dim=1).to(model.device, model.dtype)
    density = model.log_prob(grid).exp().reshape(resolution, resolution).cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(density, origin="lower", extent=(*bounds, *bounds), cmap="magma")
    ax.set_title(title)
    ax.set_axis_off()
    return save_figure(fig, path)


def plot_losses(history: Sequence[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Every logged term against the step, one line each."""
    fig, ax = plt.subplots(figsize=(5, 3))
    keys = [k for k in (history[0] if history else {}) if k not in ("step", "time")]
    steps = [row["step"] for row in history]
    for key in keys:
        ax.plot(steps, [row.get(key, np.nan) for row in history], label=key)
    ax.set_xlabel("step")
    ax.set_title(title)
    if keys:
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_quality_vs_time(rows: Sequence[dict], path: str | Path) -> Path:
    """Sample coverage against training seconds, one panel per dataset, one point per run."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for row in (r for r in rows if r["dataset"] == dataset):
            ax.scatter(float(row["train_seconds"]), float(row["coverage"]), s=18)
            ax.annotate(row["model"], (float(row["train_seconds"]), float(row["coverage"])),
                        fontsize=7, xytext=(3, 2), textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("training seconds")
        ax.set_ylabel("coverage (higher is better)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(dataset)
    return save_figure(fig, path)


def plot_quality_curves(
    curves: dict[str, dict[str, list[tuple[float, float]]]],
    targets: dict[str, tuple[str, float]],
    path: str | Path,
    xlabel: str = "training seconds",
) -> Path:
    """Sample quality against ``xlabel`` (training seconds, network evaluations per sample):
    one panel per dataset, one line per model, the dataset's target as a grey line (lower is
    better)."""
    datasets = list(curves)
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.5), squeeze=False)
    colours, styles = plt.get_cmap("tab10").colors, ("-", "--", ":")
    for ax, dataset in zip(axes[0], datasets, strict=True):
        metric, threshold = targets[dataset]
        for i, (model, points) in enumerate(sorted(curves[dataset].items())):
            seconds, values = zip(*points, strict=True)
            ax.plot(seconds, values, marker=".", lw=1, label=model,
                    color=colours[i % 10], ls=styles[i // 10 % 3])  # fmt: skip
        ax.axhline(threshold, color="k", lw=1.5, alpha=0.4, label=f"target {threshold:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{metric} (lower is better)")
        ax.set_title(dataset)
        ax.legend(fontsize=6, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save_figure(fig, path)
