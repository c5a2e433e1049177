"""Figures for Gaussian mixtures: component ellipses, BIC/AIC over K, responsibilities.

They take fitted mixtures (any model with the ``Mixture`` capability: ``gmm``, or
``deep-gmm``, whose components are its paths) or scores already computed; nothing here
trains. Ellipses are drawn at 1, 2 and 3 standard
deviations: the set {x : (x - mu)^T Sigma^-1 (x - mu) = s^2} of each component.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from torch import Tensor  # noqa: E402

from genzoo.models.capabilities import Mixture  # noqa: E402
from genzoo.plotting import save_figure  # noqa: E402


@torch.no_grad()
def mixture_components(model: Mixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, d) and full covariances (K, d, d) of a mixture, as float64
    numpy (``model.components()``: a ``gmm``'s of any covariance type, a ``deep-gmm``'s
    paths)."""
    weights, means, covs = (t.detach().double().cpu().numpy() for t in model.components())
    return weights, means, covs


def _to_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64)


def plot_component_ellipses(
    model: Mixture, data: Tensor | np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """2-D data with each component's 1, 2 and 3 sigma ellipses, line width ~ its weight."""
    x = _to_numpy(data).reshape(len(data), -1)
    if x.shape[1] != 2:
        raise ValueError(f"component ellipses need 2-D data, got {x.shape[1]} dimensions")
    weights, means, covs = mixture_components(model)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(x[:, 0], x[:, 1], s=2, c="grey", alpha=0.3, linewidths=0)
    top = weights.max()
    for k, (w, mu, cov) in enumerate(zip(weights, means, covs, strict=True)):
        evals, evecs = np.linalg.eigh(cov)  # ascending
        angle = np.degrees(np.arctan2(evecs[1, 1], evecs[0, 1]))  # of the major axis
        color = f"C{k % 10}"
        for s in (1, 2, 3):
            width, height = 2 * s * np.sqrt(evals[::-1].clip(min=0))
            ax.add_patch(
                Ellipse(
                    mu,
                    width,
                    height,
                    angle=angle,
                    fill=False,
                    color=color,
                    lw=0.5 + 2.0 * w / top,
                    alpha=1.0 - 0.25 * (s - 1),
                )
            )
        ax.plot(*mu, "+", color=color, ms=6)
    ax.set_title(title or f"{len(weights)} components: 1, 2, 3 sigma")
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    return save_figure(fig, path)


def plot_information_criteria(
    bic: Mapping[int, float],
    path: str | Path,
    aic: Mapping[int, float] | None = None,
    chosen: int | None = None,
    title: str = "",
) -> Path:
    """BIC (and AIC) against K, the chosen K (lowest BIC unless given) marked."""
    if not bic:
        raise ValueError("no BIC scores to plot")
    ks = sorted(bic)
    chosen = min(bic, key=bic.get) if chosen is None else chosen
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(ks, [bic[k] for k in ks], "o-", color="C0", label="BIC")
    if aic:
        ka = sorted(aic)
        ax.plot(ka, [aic[k] for k in ka], "s--", color="C1", label="AIC")
    ax.axvline(chosen, color="C3", lw=1, ls=":")
    if chosen in bic:
        ax.plot([chosen], [bic[chosen]], "*", color="C3", ms=14, label=f"chosen K = {chosen}")
    ax.set_xlabel("K (components)")
    ax.set_ylabel("criterion (lower is better)")
    ax.set_xticks(ks)
    ax.legend(fontsize=7)
    ax.set_title(title or "information criteria over K")
    return save_figure(fig, path)


@torch.no_grad()
def plot_responsibilities(
    model: Mixture,
    data: Tensor | np.ndarray,
    path: str | Path,
    n_bars: int = 200,
    title: str = "",
) -> Path:
    """Soft assignments: points coloured by the responsibility-weighted mix of component
    colours (2-D data only), and one stacked bar per point (up to ``n_bars`` points, sorted
    by most probable component)."""
    x = torch.as_tensor(_to_numpy(data)).to(model.device, model.dtype)
    resp = _to_numpy(model.predict_proba(x))  # (n, K)
    k = resp.shape[1]
    colors = np.array([matplotlib.colors.to_rgb(f"C{j % 10}") for j in range(k)])  # (K, 3)
    flat = _to_numpy(data).reshape(len(resp), -1)
    two_d = flat.shape[1] == 2
    fig, axes = plt.subplots(1, 2 if two_d else 1, figsize=(9 if two_d else 5, 3.8), squeeze=False)
    if two_d:
        ax = axes[0][0]
        ax.scatter(flat[:, 0], flat[:, 1], s=4, c=(resp @ colors).clip(0, 1), linewidths=0)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title("points coloured by soft assignment", fontsize=9)
    ax = axes[0][-1]
    pick = np.linspace(0, len(resp) - 1, min(n_bars, len(resp))).astype(int)
    part = resp[pick]
    part = part[np.lexsort((-part.max(1), part.argmax(1)))]
    ax.stackplot(np.arange(len(part)), part.T, colors=colors, linewidth=0)
    ax.set_xlim(-0.5, len(part) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("example (sorted by most probable component)")
    ax.set_ylabel("p(component | x)")
    ax.set_title("responsibilities", fontsize=9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
