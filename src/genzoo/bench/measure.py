"""Everything the benchmark measures on one trained model: likelihood, samples, speed, stability."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from genzoo.data import dataset_info, load_dataset
from genzoo.metrics.frechet import digits_to_unit, frechet_digits_distance
from genzoo.metrics.modes import mode_centres, mode_coverage
from genzoo.metrics.samples import energy_distance, mmd_rbf, precision_recall
from genzoo.workflow import evaluate

N_SAMPLES = 2000
MODE_DATASETS = ("8gaussians", "25gaussians")


@torch.no_grad()
def sample_speed(model, n: int = 2000, seed: int = 0) -> tuple[torch.Tensor, float]:
    """``n`` seeded samples and the samples drawn per second."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    tic = time.perf_counter()
    samples = model.sample(n, generator=generator)
    seconds = time.perf_counter() - tic
    return samples.cpu().float(), n / max(seconds, 1e-9)


@torch.no_grad()
def log_prob_speed(model, x: torch.Tensor) -> float:
    """Examples scored per second by ``log_prob``."""
    tic = time.perf_counter()
    model.log_prob(x.to(model.device, model.dtype))
    return x.shape[0] / max(time.perf_counter() - tic, 1e-9)


def on_levels(samples: torch.Tensor, model, levels: int) -> torch.Tensor:
    """Samples as integer levels: a continuous model's ``(x + u) / L`` maps back to ``x``."""
    if model.data_kind == "continuous":
        return (samples * levels).floor().clamp(0, levels - 1)
    return samples


def loss_oscillation(history: list[dict[str, float]]) -> float:
    """Mean absolute step-to-step change of the logged losses over the second half of
    training, relative to their spread: near 0 for a smooth descent, large for a GAN-style
    tug of war."""
    keys = [k for k in (history[0] if history else {}) if k not in ("step", "time")]
    keys = [k for k in keys if not k.startswith("diag/")]
    tail = history[len(history) // 2 :]
    if len(tail) < 3 or not keys:
        return float("nan")
    values = []
    for key in keys:
        series = torch.tensor([row[key] for row in tail if key in row], dtype=torch.float64)
        scale = series.abs().mean() + 1e-8
        values.append(float((series[1:] - series[:-1]).abs().mean() / scale))
    return sum(values) / len(values)


def measure(model, dataset: str, seed: int, history: list[dict[str, float]]) -> dict[str, Any]:
    """All metrics of one trained model on the test split of ``dataset``."""
    info = dataset_info(dataset)
    test = load_dataset(dataset, split="test", n=N_SAMPLES, seed=seed)
    row: dict[str, Any] = {}
    row.update(evaluate(model, dataset, n=N_SAMPLES, seed=seed))
    samples, row["samples_per_second"] = sample_speed(model, min(N_SAMPLES, len(test)), seed)
    row["loss_oscillation"] = loss_oscillation(history)
    row["nfe_per_sample"] = getattr(model, "last_nfe", None) or ""
    if info.kind == "text":  # distances between token-id vectors mean nothing
        return _finite(row)
    reference = test
    if info.levels is not None:  # compare discrete data on one scale: levels / L in [0, 1)
        samples = on_levels(samples, model, info.levels) / info.levels
        reference = test / info.levels
    if dataset == "digits":  # features of genzoo's own digits classifier (not FID)
        row["frechet_digits"] = frechet_digits_distance(
            digits_to_unit(samples * info.levels), digits_to_unit(test)
        )
    row["mmd"] = mmd_rbf(samples, reference)
    row["energy_distance"] = energy_distance(samples, reference)
    row.update(precision_recall(reference, samples))
    if model.density != "none":
        scored = test
        if info.levels is not None and model.data_kind == "continuous":
            scored = (test + 0.5) / info.levels
        row["log_prob_per_second"] = log_prob_speed(model, scored)
    if dataset in MODE_DATASETS:
        centres, std = mode_centres(dataset)
        coverage = mode_coverage(samples, centres, std)
        row["modes_covered"] = coverage["modes_covered"]
        row["n_modes"] = coverage["n_modes"]
        row["high_quality_share"] = coverage["high_quality_share"]
    return _finite(row)


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
