"""Every figure that applies to a trained run, drawn by one call (``genzoo figures RUN``).

A run folder knows its model and its dataset; from them this module picks the pictures a
person of the field would want to look at: samples (and the density in 2-D) for every
model, mode coverage on data with known modes, then one figure per capability the model
declares (``genzoo.models.capabilities``) that suits the data's shape — mixture ellipses and
responsibilities, filters, energy landscapes, score fields and Langevin paths, denoising
sequences, per-position surprisal, code sweeps, translations, style mixing, latent
interpolations, traversals and scatter. No model is named here: a new model that implements
a capability gets its figures. Nothing here trains.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from genzoo.data import DatasetInfo, dataset_info, load_dataset, text
from genzoo.io import RUN_INFO_FILE, load_model, read_json
from genzoo.metrics.likelihood import to_model_scale
from genzoo.models.base import GenerativeModel
from genzoo.models.capabilities import (
    Autoregressive,
    CodeConditioned,
    EnergyModel,
    HasFilters,
    LatentVariable,
    Mixture,
    NoiseConditional,
    StyleMixer,
    Translator,
)
from genzoo.plotting import plot_density, plot_samples

#: Test examples a figure may look at.
N_DATA = 2000
#: Densities a 2-D heat map is drawn for (a bound or nothing is not drawn as one).
DRAWN_DENSITIES = ("exact", "estimate", "unnormalized")

Figure = Callable[[GenerativeModel, DatasetInfo, Tensor, Path, int], list[Path]]


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
    if model.condition_kind is not None:
        return conditional_sample_figures(model, info, out, seed)
    data = figure_data(model, info, seed)
    with torch.no_grad():
        paths = sample_figures(model, info, data, out, seed)
    for draw in figures_for(model, info, data):
        paths.extend(draw(model, info, data, out, seed))
    return paths


def figure_data(model: GenerativeModel, info: DatasetInfo, seed: int = 0) -> Tensor:
    """Up to ``N_DATA`` test examples on the scale the model was trained on."""
    test = load_dataset(info.name, split="test", n=N_DATA, seed=seed)
    return to_model_scale(test, model, info.levels)


def data_shape_kind(model: GenerativeModel, data: Tensor) -> str:
    """What the figures go by: ``"text"`` (token ids), ``"image"`` ``(n, C, H, W)``,
    ``"points"`` (2-D points) or ``"vector"`` (anything else)."""
    if data.dtype == torch.long:
        return "text"
    if data.ndim == 4:
        return "image"
    return "points" if tuple(model.data_shape) == (2,) else "vector"


@torch.no_grad()
def sample_figures(
    model: GenerativeModel, info: DatasetInfo, data: Tensor, out: Path, seed: int
) -> list[Path]:
    """Samples (eight decoded lines in ``samples.txt`` for text) and, in 2-D, the density
    heat map; ``data`` (test examples at the model's scale) are drawn under point samples.
    The benchmark's cells and ``genzoo figures`` both draw them here."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    shape = data_shape_kind(model, data)
    if shape == "text":  # text: samples are read, not plotted
        lines = text.tokenizer_for(info.name).decode_batch(model.sample(8, generator).cpu().long())
        path = out / "samples.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return [path]
    n = 64 if shape == "image" else N_DATA
    samples = model.sample(n, generator=generator).cpu().float()
    reference = data.cpu() if data.ndim == 2 else None
    paths = [plot_samples(samples, out / "samples.png", reference=reference, title=model.name)]
    if shape == "points" and model.density in DRAWN_DENSITIES:
        title = f"{model.name} density ({model.density})"
        paths.append(plot_density(model, out / "density.png", title=title))
    return paths


@torch.no_grad()
def conditional_sample_figures(
    model: GenerativeModel, info: DatasetInfo, out: Path, seed: int
) -> list[Path]:
    """A conditional model's samples given conditions (its family figures, drawn for
    unconditional models, are not): images class by class along the grid (a class
    condition), other data given the test split's own conditions, drawn over that data."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    test, c = load_dataset(info.name, split="test", n=N_DATA, seed=seed, condition=True)
    data = to_model_scale(test, model, info.levels)
    if data_shape_kind(model, data) == "image" and model.n_classes:
        n = 64
        c = torch.arange(n) * model.n_classes // n  # class by class along the grid
    else:
        n = len(c)
    samples = model.sample(n, generator=generator, c=c.to(model.device)).cpu().float()
    reference = data.cpu() if data.ndim == 2 else None
    title = f"{model.name} given its {info.condition.name if info.condition else 'condition'}"
    return [plot_samples(samples, out / "samples.png", reference=reference, title=title)]


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


def figures_for(model: GenerativeModel, info: DatasetInfo, data: Tensor) -> list[Figure]:
    """The figures beyond samples that apply to ``model`` on ``data``: mode coverage where the
    dataset declares known modes, then every row of ``CATALOGUE`` whose capability the
    model has and whose data shapes (``None``: any) hold ``data``'s."""
    shape = data_shape_kind(model, data)
    chosen: list[Figure] = [_modes] if info.has_known_modes else []
    for capability, shapes, draw in CATALOGUE:
        if isinstance(model, capability) and (shapes is None or shape in shapes):
            chosen.append(draw)
    return chosen


def _mixture(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.mixtures import plot_component_ellipses, plot_responsibilities

    return [
        plot_component_ellipses(model, data, out / "ellipses.png", title=model.name),
        plot_responsibilities(model, data, out / "responsibilities.png", title=model.name),
    ]


def _filters(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.energy import plot_rbm_filters

    weight = model.filters().detach().cpu().T  # (data_dim, n_units): one column per unit
    return [plot_rbm_filters(weight, out / "filters.png", data.shape[-2:])]


def _energy_landscape(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.energy import plot_energy_landscape

    return [plot_energy_landscape(model, out / "energy.png")]


def _score_field(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.score import plot_langevin_trajectories, plot_score_field

    return [
        plot_score_field(model, out / "score_field.png", model.noise_levels(), data=data),
        plot_langevin_trajectories(model, out / "trajectories.png", data=data, seed=seed),
    ]


def _denoising(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.score import plot_denoising_sequence

    return [plot_denoising_sequence(model, out / "denoising.png", seed=seed)]


def _surprisal(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.autoregressive import plot_surprisal

    tokenizer = text.tokenizer_for(info.name) if data.dtype == torch.long else None
    return [plot_surprisal(model, data[:8], out / "surprisal.png", tokenizer=tokenizer)]


def _codes(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.gans import plot_infogan_codes

    return [plot_infogan_codes(model, out / "codes.png", seed=seed)]


def _translations(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.gans import plot_translations

    return [plot_translations(model, data, out / "translations.png")]


def _style_mixing(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.gans import plot_style_mixing

    return [plot_style_mixing(model, out / "style_mixing.png", seed=seed)]


@torch.no_grad()
def _modes(model, info, data, out, seed) -> list[Path]:
    from genzoo.figures.gans import plot_mode_coverage
    from genzoo.metrics.modes import mode_centres

    centres, std = mode_centres(info.name)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    samples = model.sample(N_DATA, generator=generator).cpu()
    return [plot_mode_coverage(samples, centres, std, out / "modes.png", title=model.name)]


def _latents(model, info, data, out, seed) -> list[Path]:
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
    if info.name in ("digits", "digits-binary"):  # the digits' labels colour the scatter
        labels = digits_labels("test")[: len(data)]
        paths.append(plot_latent_scatter(model, data, labels, out / "latent_scatter.png"))
    return paths


#: ``(capability, data shapes or None for any, figure)``: what ``figures_for`` draws.
CATALOGUE: tuple[tuple[type, tuple[str, ...] | None, Figure], ...] = (
    (Mixture, ("points",), _mixture),
    (HasFilters, ("image",), _filters),
    (EnergyModel, ("points",), _energy_landscape),
    (NoiseConditional, ("points",), _score_field),
    (NoiseConditional, ("image",), _denoising),
    (Autoregressive, None, _surprisal),
    (CodeConditioned, ("image",), _codes),
    (Translator, None, _translations),
    (StyleMixer, ("image",), _style_mixing),
    (LatentVariable, ("image",), _latents),
)
