"""Every figure that applies to a trained run, drawn by one call (``genzoo figures RUN``).

A run folder knows its model and its dataset; from them this module picks the pictures a
person of the field would want to look at: samples (and the density in 2-D) for every
model, then the family's own figures — mixture ellipses and responsibilities, RBM filters,
energy landscapes, score fields and Langevin paths, denoising sequences, per-pixel
surprisal, InfoGAN code sweeps, CycleGAN translations, StyleGAN style mixing, mode
coverage, VAE interpolations, traversals and latent scatter. Nothing here trains.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from genzoo.bench.measure import to_model_scale
from genzoo.data import dataset_info, load_dataset, text
from genzoo.io import load_model, read_json
from genzoo.models.base import GenerativeModel
from genzoo.plotting import plot_density, plot_samples
from genzoo.train.trainer import RUN_INFO_FILE

#: Test examples a figure may look at.
N_DATA = 2000


def run_figures(run: str | Path, out: str | Path | None = None, seed: int = 0) -> list[Path]:
    """Draw every figure that applies to the trained run in ``run`` into ``out`` (default
    ``run/figures``); return the paths written."""
    run = Path(run)
    model = load_model(run).eval()
    run_info = read_json(run / RUN_INFO_FILE) if (run / RUN_INFO_FILE).exists() else {}
    out = Path(out) if out is not None else run / "figures"
    if "target" in run_info:  # fitted to an unnormalised density (genzoo train --target)
        return _target_figures(model, run_info["target"], out, seed)
    dataset = run_info.get("dataset")
    if dataset is None:
        raise FileNotFoundError(f"{run} has no {RUN_INFO_FILE} naming its dataset: point "
                                "genzoo figures at a folder written by genzoo train")  # fmt: skip
    info = dataset_info(dataset)
    test = load_dataset(dataset, split="test", n=N_DATA, seed=seed)
    data = to_model_scale(test, model, info.levels if info else None)
    with torch.no_grad():
        paths = _common(model, dataset, data, out, seed)
    for draw in _family_figures(model, data):
        paths.extend(draw(model, dataset, data, out, seed))
    return paths


def _common(model, dataset, data, out, seed) -> list[Path]:
    """Samples (decoded text for text models) and, in 2-D, the density."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    if data.dtype == torch.long:  # text: samples are read, not plotted
        lines = text.tokenizer_for(dataset).decode_batch(model.sample(8, generator).cpu().long())
        path = out / "samples.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return [path]
    n = 64 if data.ndim == 4 else N_DATA
    samples = model.sample(n, generator=generator).cpu().float()
    reference = data.cpu() if data.ndim == 2 else None
    paths = [plot_samples(samples, out / "samples.png", reference=reference, title=model.name)]
    if tuple(model.data_shape) == (2,) and model.density in ("exact", "estimate", "unnormalized"):
        paths.append(plot_density(model, out / "density.png", title=f"{model.name} density"))
    return paths


@torch.no_grad()
def _target_figures(model: GenerativeModel, target: str, out: Path, seed: int) -> list[Path]:
    """Samples and the learned density of a flow fitted to target ``target`` (no data)."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    samples = model.sample(N_DATA, generator=generator).cpu().float()
    title = f"{model.name} fitted to {target}"
    return [
        plot_samples(samples, out / "samples.png", title=title),
        plot_density(model, out / "density.png", title=title),
    ]


Figure = Callable[[GenerativeModel, str, Tensor, Path, int], list[Path]]


def _family_figures(model: GenerativeModel, data: Tensor) -> list[Figure]:
    """The family-specific figures that apply to ``model`` on data shaped like ``data``."""
    planar, image = tuple(model.data_shape) == (2,), data.ndim == 4
    chosen: list[Figure] = []
    if model.family == "mixture" and planar:
        chosen.append(_mixture)
    if model.name in ("rbm", "gb-rbm", "dbn", "dbm") and image:
        chosen.append(_filters)
    if model.name in ("ebm", "mdsm-ebm") and planar:
        chosen.append(_energy_landscape)
    if model.family == "score":
        chosen.append(_score_planar if planar else _denoising if image else _none)
    if model.family == "autoregressive":
        chosen.append(_surprisal)
    if model.name == "infogan" and image:
        chosen.append(_infogan)
    if model.name == "cyclegan":
        chosen.append(_translations)
    if model.name == "stylegan" and image:
        chosen.append(_style_mixing)
    if model.family == "gan" and planar:
        chosen.append(_modes)
    if model.name in ("vae", "beta-vae") and image:
        chosen.append(_vae_latents)
    return chosen


def _none(*_) -> list[Path]:
    return []


def _mixture(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.mixtures import plot_component_ellipses, plot_responsibilities

    return [
        plot_component_ellipses(model, data, out / "ellipses.png", title=model.name),
        plot_responsibilities(model, data, out / "responsibilities.png", title=model.name),
    ]


def _filters(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.energy import plot_rbm_filters

    first = {"rbm": "rbm", "gb-rbm": "rbm", "dbm": "bottom"}.get(model.name)
    layer = model.layers[0] if first is None else getattr(model, first)
    return [plot_rbm_filters(layer.weight.detach().cpu(), out / "filters.png", data.shape[-2:])]


def _energy_landscape(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.energy import plot_energy_landscape

    return [plot_energy_landscape(model, out / "energy.png")]


def _score_planar(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.score import plot_langevin_trajectories, plot_score_field

    if model.name == "ncsn":
        sigmas = model.sigmas.tolist()
        levels = [sigmas[0], sigmas[len(sigmas) // 2], sigmas[-1]]
    else:  # diffusion time: much noise, some, little
        levels = [0.9, 0.3, 0.05]
    return [
        plot_score_field(model, out / "score_field.png", levels, data=data),
        plot_langevin_trajectories(model, out / "trajectories.png", data=data, seed=seed),
    ]


def _denoising(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.score import plot_denoising_sequence

    return [plot_denoising_sequence(model, out / "denoising.png", seed=seed)]


def _surprisal(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.autoregressive import plot_surprisal

    tokenizer = text.tokenizer_for(dataset) if data.dtype == torch.long else None
    return [plot_surprisal(model, data[:8], out / "surprisal.png", tokenizer=tokenizer)]


def _infogan(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.gans import plot_infogan_codes

    return [plot_infogan_codes(model, out / "codes.png", seed=seed)]


def _translations(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.gans import plot_translations

    return [plot_translations(model, data, out / "translations.png")]


def _style_mixing(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.gans import plot_style_mixing

    return [plot_style_mixing(model, out / "style_mixing.png", seed=seed)]


def _modes(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.gans import plot_mode_coverage
    from genzoo.metrics.modes import mode_centres

    if dataset not in ("8gaussians", "25gaussians"):
        return []
    centres, std = mode_centres(dataset)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    samples = model.sample(N_DATA, generator=generator).cpu()
    return [plot_mode_coverage(samples, centres, std, out / "modes.png", title=model.name)]


def _vae_latents(model, dataset, data, out, seed) -> list[Path]:
    from genzoo.figures.vae import (
        digits_labels,
        plot_interpolation,
        plot_latent_scatter,
        plot_traversal,
    )

    pairs = [(data[2 * i], data[2 * i + 1]) for i in range(4)]
    paths = [
        plot_interpolation(model, pairs, out / "interpolation.png"),
        plot_traversal(model, out / "traversal.png", x=data[:1]),
    ]
    if dataset in ("digits", "digits-binary"):
        labels = digits_labels("test")[: len(data)]
        paths.append(plot_latent_scatter(model, data, labels, out / "latent_scatter.png"))
    return paths
