"""Figures for autoregressive models: the chain of conditionals made visible.

``plot_surprisal`` draws, for a few examples, how many bits each scalar costs given those
before it (``-log2 P(x_i | x_<i)``): pixels as a heat map for images, a strip per sequence for
text. ``plot_image_samples`` draws a grid of samples next to data. Nothing here trains.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genzoo.data.text import Tokenizer  # noqa: E402
from genzoo.models.autoregressive.common import DiscreteModel  # noqa: E402
from genzoo.plotting import save_figure  # noqa: E402


@torch.no_grad()
def surprisal(model: DiscreteModel, x: torch.Tensor) -> torch.Tensor:
    """Bits of every scalar given the ones before it: ``(n, *data_shape) -> (n, D)``, CPU."""
    return (-model.log_prob_terms(x) / math.log(2)).double().cpu()


def plot_surprisal(
    model: DiscreteModel,
    x: torch.Tensor,
    path: str | Path,
    tokenizer: Tokenizer | None = None,
) -> Path:
    """Per-scalar bits of up to 8 examples; images as heat maps, sequences as strips.

    With a ``tokenizer`` the characters/words are written on the strips. Returns the PNG path.
    """
    x = x[:8]
    bits = surprisal(model, x)
    n = len(x)
    if len(model.data_shape) == 3:  # images (n, 1, H, W): the example above its surprisal
        fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3), squeeze=False)
        for i in range(n):
            axes[0][i].imshow(x[i, 0].cpu().numpy(), cmap="gray_r")
            heat = axes[1][i].imshow(bits[i].view(model.data_shape[1:]).numpy(), cmap="magma")
            for ax in (axes[0][i], axes[1][i]):
                ax.set_xticks([])
                ax.set_yticks([])
            axes[1][i].set_title(f"{float(bits[i].sum()):.0f} bits", fontsize=8)
        fig.colorbar(heat, ax=axes[1].tolist(), shrink=0.8, label="bits")
    else:
        width = max(6.0, 0.22 * bits.shape[1])
        fig, ax = plt.subplots(figsize=(width, 0.45 * n + 1))
        heat = ax.imshow(bits.numpy(), aspect="auto", cmap="magma")
        if tokenizer is not None:
            for i in range(n):
                for j, token in enumerate(x[i].tolist()):
                    label = tokenizer.tokens[token].replace("\n", "\\n")
                    ax.text(j, i, label, ha="center", va="center", fontsize=6, color="cyan")
        ax.set_xlabel("position")
        ax.set_ylabel("example")
        fig.colorbar(heat, ax=ax, label="bits")
    fig.suptitle(f"{model.name}: -log2 P(x_i | x_<i)")
    return save_figure(fig, path)


def plot_image_samples(
    model: DiscreteModel, data: torch.Tensor, path: str | Path, n: int = 16, seed: int = 0
) -> Path:
    """Data (top row) and seeded samples (below) of a model of ``(n, 1, H, W)`` images."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        samples = model.sample(n, generator=generator).cpu()
    rows = [data[:n].cpu(), samples]
    fig, axes = plt.subplots(2, n, figsize=(0.8 * n, 1.8), squeeze=False)
    for r, images in enumerate(rows):
        for i in range(n):
            image = images[i, 0].float().numpy()
            axes[r][i].imshow(image, cmap="gray_r", vmin=0, vmax=model.levels - 1)
            axes[r][i].axis("off")
    axes[0][0].set_title("data", fontsize=8, loc="left")
    axes[1][0].set_title(f"{model.name} samples", fontsize=8, loc="left")
    return save_figure(fig, path)
