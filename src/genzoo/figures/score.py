"""Figures of the score family: Langevin trajectories, the score field, denoising sequences,
sample quality against the number of network evaluations, and classifier-free guidance's
trade-off of class accuracy against sample diversity.

The survey's picture of a score model is a compass: at every point an arrow toward the data.
``plot_score_field`` draws those arrows at one noise level; ``plot_langevin_trajectories``
follows particles along them (Song & Ermon 2019, figure 3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from genzoo.models.score.common import ScoreModel  # noqa: E402
from genzoo.plotting import save_figure  # noqa: E402


def _limits(data: Tensor | None, pad: float = 0.5) -> tuple[float, float, float, float]:
    if data is None:
        return -4.0, 4.0, -4.0, 4.0
    lo, hi = data.min(0).values - pad, data.max(0).values + pad
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def plot_score_field(
    model: ScoreModel,
    path: str | Path,
    level: float | Sequence[float],
    data: Tensor | None = None,
    grid: int = 25,
) -> Path:
    """Arrows of the learned score ``s(x, level)`` on a grid over 2-D data.

    ``level`` is the noise level ``sigma`` (data units) for ``ncsn`` and the time ``t`` for
    ``ddpm``/``score-sde``; a sequence of levels draws one panel each (large to small noise
    shows the annealing). Arrows are normalised; colour gives the log of the score's norm.
    """
    levels = [float(level)] if isinstance(level, int | float) else [float(v) for v in level]
    x0, x1, y0, y1 = _limits(data)
    xs, ys = np.meshgrid(np.linspace(x0, x1, grid), np.linspace(y0, y1, grid))
    points = torch.tensor(np.stack([xs.ravel(), ys.ravel()], 1), dtype=model.dtype)
    fig, axes = plt.subplots(1, len(levels), figsize=(4.5 * len(levels), 4.5), squeeze=False)
    for ax, lv in zip(axes[0], levels, strict=True):
        with torch.no_grad():
            s = model.score(points.to(model.device), lv).cpu().numpy()
        norm = np.linalg.norm(s, axis=1) + 1e-12
        if data is not None:
            ax.scatter(data[:, 0].cpu(), data[:, 1].cpu(), s=1, c="grey", alpha=0.2)
        ax.quiver(
            xs.ravel(), ys.ravel(), s[:, 0] / norm, s[:, 1] / norm, np.log(norm), cmap="viridis"
        )
        ax.set_title(f"{model.name} score field, level {lv:.3g}")
        ax.set_aspect("equal")
    return save_figure(fig, path)


def plot_langevin_trajectories(
    model: ScoreModel,
    path: str | Path,
    data: Tensor | None = None,
    n_particles: int = 12,
    n_frames: int = 200,
    seed: int = 0,
    skip: float = 0.5,
) -> Path:
    """Paths of a few particles through the model's sampler in 2-D, over the data.

    The first ``skip`` fraction of the chain (large noise, long jumps) is left out.
    """
    generator = torch.Generator(device=model.device).manual_seed(seed)
    frames = model.sample_trajectory(n_particles, generator, n_frames).cpu().numpy()
    frames = frames[int(skip * len(frames)) :]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if data is not None:
        ax.scatter(data[:, 0].cpu(), data[:, 1].cpu(), s=1, c="grey", alpha=0.2)
    for i in range(n_particles):
        ax.plot(frames[:, i, 0], frames[:, i, 1], lw=0.8, alpha=0.8)
        ax.scatter(frames[-1, i, 0], frames[-1, i, 1], s=12, c="k", zorder=3)
    x0, x1, y0, y1 = _limits(data, pad=1.5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(f"{model.name}: sampling trajectories ({model.last_nfe} evaluations)")
    ax.set_aspect("equal")
    return save_figure(fig, path)


def plot_denoising_sequence(
    model: ScoreModel, path: str | Path, n: int = 6, n_frames: int = 10, seed: int = 0
) -> Path:
    """Rows of images (one per sample) going from noise (left) to a sample (right)."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    frames = model.sample_trajectory(n, generator, n_frames).cpu().numpy()  # (F, n, C, H, W)
    f, h, w = frames.shape[0], frames.shape[-2], frames.shape[-1]
    fig, axes = plt.subplots(n, f, figsize=(0.7 * f, 0.7 * n), squeeze=False)
    for i in range(n):
        for j in range(f):
            axes[i, j].imshow(frames[j, i].reshape(-1, h, w)[0], cmap="gray_r", vmin=0, vmax=1)
            axes[i, j].axis("off")
    fig.suptitle(f"{model.name}: noise to digits")
    return save_figure(fig, path)


def quality_vs_steps(
    model: ScoreModel,
    reference: Tensor,
    steps: Sequence[int | None],
    metric: Callable[[Tensor, Tensor], float],
    n: int = 1000,
    seed: int = 0,
    sampler: str | None = None,
) -> list[dict[str, float]]:
    """Sample quality ``metric(samples, reference)`` as the sampler's step count varies.

    Each entry of ``steps`` is passed to ``model.sample(n, generator, steps=k)`` (``None``:
    the configured count), with ``sampler`` (e.g. ``"ddim"``, ``"dpm-solver"``; the
    configured one if None); the model is not changed. Returns rows
    ``{"steps": k, "nfe", "metric"}`` with ``nfe`` the network evaluations per sample.
    """
    rows = []
    chosen = {} if sampler is None else {"sampler": sampler}
    for k in steps:
        generator = torch.Generator(device=model.device).manual_seed(seed)
        with torch.no_grad():
            x = model.sample(n, generator, steps=k, **chosen)
        rows.append({"steps": k, "nfe": model.last_nfe, "metric": float(metric(x, reference))})
    return rows


def plot_quality_vs_steps(
    curves: dict[str, list[dict[str, float]]], path: str | Path, metric_name: str = "MMD"
) -> Path:
    """One line per sampler/model: metric against network evaluations per sample (log x)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, rows in curves.items():
        ax.plot([r["nfe"] for r in rows], [r["metric"] for r in rows], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per sample")
    ax.set_ylabel(metric_name)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def within_class_diversity(x: Tensor, labels: Tensor, max_per_class: int = 500) -> float:
    """Mean Euclidean distance between two examples of the same class, averaged over the
    classes present (examples flattened; at most ``max_per_class`` of each): how spread the
    samples of one condition are. The same number of the data is the reference."""
    flat, labels = x.detach().flatten(1).double().cpu(), labels.detach().cpu()
    values = []
    for k in labels.unique().tolist():
        rows = flat[labels == k][:max_per_class]
        m = len(rows)
        if m > 1:
            values.append(float(torch.cdist(rows, rows).sum()) / (m * (m - 1)))
    if not values:
        raise ValueError("within_class_diversity needs at least two examples of one class")
    return sum(values) / len(values)


def guidance_sweep(
    model: ScoreModel,
    weights: Sequence[float],
    classify: Callable[[Tensor], Tensor],
    n_per_class: int = 200,
    classes: Sequence[int] | None = None,
    seed: int = 0,
    steps: int | None = None,
    extra: dict[str, Callable[[Tensor, Tensor], float]] | None = None,
    features: Callable[[Tensor], Tensor] | None = None,
) -> list[dict[str, float]]:
    """Class accuracy and sample diversity of a class-conditional score model as the
    classifier-free guidance scale ``w`` varies (Ho & Salimans 2022, figures 4-5; their
    ``w`` is this ``w - 1``: 0 here is the unconditional model, 1 the conditional one).

    For each ``w``, ``n_per_class`` samples of every class in ``classes`` (all of them when
    None) are drawn with ``model.sample(n, generator, c=labels, guidance=w)`` from the same
    seeded generator (the same noise for every ``w``), and scored: ``accuracy``, the share
    whose ``classify(samples)`` (predicted classes, ``(n,)``; -1 for none) is the class
    asked for; ``diversity``, ``within_class_diversity`` (of ``features(samples)`` when
    given, e.g. images on the [0, 1] scale); each ``extra`` metric of ``(samples,
    labels)``; and ``nfe``, network evaluations per sample. The model is not changed.
    Returns one row per weight.
    """
    if not model.n_classes:
        raise ValueError(f"{model.name} was built without a class condition: no guidance")
    chosen = list(range(model.n_classes)) if classes is None else [int(k) for k in classes]
    labels = torch.tensor(chosen).repeat_interleave(int(n_per_class))
    rows = []
    for w in weights:
        generator = torch.Generator(device=model.device).manual_seed(seed)
        with torch.no_grad():
            x = model.sample(len(labels), generator, steps=steps, c=labels, guidance=float(w))
            predicted = torch.as_tensor(classify(x)).cpu()
        x = x.cpu()
        row = {
            "guidance": float(w),
            "accuracy": float((predicted == labels).double().mean()),
            "diversity": within_class_diversity(x if features is None else features(x), labels),
            "nfe": float(model.last_nfe),
        }
        for name, metric in (extra or {}).items():
            row[name] = float(metric(x, labels))
        rows.append(row)
    return rows


def plot_guidance_tradeoff(
    rows: Sequence[dict[str, float]],
    path: str | Path,
    data_diversity: float | None = None,
    title: str = "classifier-free guidance",
    chance: float | None = None,
) -> Path:
    """Two panels from ``guidance_sweep``'s rows: class accuracy and within-class diversity
    against the guidance scale ``w`` (left; 0 unconditional, 1 conditional), and accuracy
    against diversity, each point labelled with its ``w`` (right). ``data_diversity`` (the
    data's own ``within_class_diversity``) and ``chance`` (1 / classes) are drawn as
    reference lines."""
    w = [r["guidance"] for r in rows]
    accuracy = [r["accuracy"] for r in rows]
    diversity = [r["diversity"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    left.plot(w, accuracy, "o-", color="C0", label="class accuracy")
    left.set_xlabel("guidance scale w (0: unconditional, 1: conditional)")
    left.set_ylabel("class accuracy", color="C0")
    left.set_ylim(0, 1.02)
    if chance is not None:
        left.axhline(chance, color="C0", ls=":", lw=1, label="chance")
    twin = left.twinx()
    twin.plot(w, diversity, "s--", color="C1", label="within-class diversity")
    twin.set_ylabel("within-class diversity", color="C1")
    if data_diversity is not None:
        twin.axhline(data_diversity, color="C1", ls=":", lw=1, label="data's diversity")
    handles = left.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    left.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="center right")
    right.plot(diversity, accuracy, "o-", color="C2")
    for wi, d, a in zip(w, diversity, accuracy, strict=True):
        right.annotate(f"w={wi:g}", (d, a), textcoords="offset points", xytext=(4, -10),
                       fontsize=7)  # fmt: skip
    if data_diversity is not None:
        right.axvline(data_diversity, color="C1", ls=":", lw=1)
    right.margins(x=0.15, y=0.1)
    right.set_xlabel("within-class diversity")
    right.set_ylabel("class accuracy")
    right.set_title("accuracy against diversity", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
