"""Everything the benchmark measures on one trained model: likelihood, samples, speed, stability."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from genzoo.bench.grid import SHIPPED
from genzoo.data import DatasetInfo, dataset_info, load_dataset, true_entropy
from genzoo.metrics.frechet import digits_to_unit, frechet_digits_distance
from genzoo.metrics.likelihood import on_levels, to_model_scale
from genzoo.metrics.modes import mode_centres, mode_coverage
from genzoo.metrics.samples import (
    classifier_two_sample_accuracy,
    energy_distance,
    mmd_rbf,
    precision_recall,
)
from genzoo.models.capabilities import ClassGuided, SamplerChoice, StepSampler
from genzoo.workflow import evaluate

N_SAMPLES = 2000
#: Samples drawn for each evaluation during training (the final measurement uses N_SAMPLES).
N_TRACKED = 500
#: The sample-quality target of each kind of data, ``(metric, threshold)``, lower is better:
#: "time to target" is the training time until a run's samples first score below it.
#: Chosen so good models of the quick preset reach it and poor ones do not: on 8gaussians
#: the energy distance of a fitted GMM is about 0.003 and of a mode-dropping GAN 0.1-0.5; on
#: digits the Fréchet distance (genzoo's classifier) of test vs train is 3.5, of noise 113.
#: Binary digits have none: there the energy distance ranks independent per-pixel
#: Bernoullis above an RBM, so it would time the wrong thing. Keyed by what the dataset
#: declares: 2-D points, or data the digits feature classifier applies to.
QUALITY_TARGETS = {
    "2d": ("energy_distance", 0.02),
    "digits_features": ("frechet_digits", 30.0),
}


@torch.no_grad()
def sample_speed(
    model, n: int = 2000, seed: int = 0, c: torch.Tensor | None = None
) -> tuple[torch.Tensor, float]:
    """``n`` seeded samples (given the conditions ``c``, for a conditional model) and the
    samples drawn per second."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    given = {} if c is None else {"c": c.to(model.device)}
    tic = time.perf_counter()
    samples = model.sample(n, generator=generator, **given)
    seconds = time.perf_counter() - tic
    return samples.cpu().float(), n / max(seconds, 1e-9)


@torch.no_grad()
def log_prob_speed(model, x: torch.Tensor, c: torch.Tensor | None = None) -> float:
    """Examples scored per second by ``log_prob`` (given ``c``, for a conditional model)."""
    given = {} if c is None else {"c": c.to(model.device)}
    tic = time.perf_counter()
    model.log_prob(x.to(model.device, model.dtype), **given)
    return x.shape[0] / max(time.perf_counter() - tic, 1e-9)


def target_metric(metric: str, samples, reference, model, levels: int | None) -> float:
    """``metric`` ("frechet_digits" or "energy_distance") of raw model samples against raw
    test examples; discrete data are compared as levels (energy distance on ``levels / L``)."""
    if levels is not None:
        samples = on_levels(samples, model, levels)
    if metric == "frechet_digits":
        return frechet_digits_distance(digits_to_unit(samples), digits_to_unit(reference))
    scale = levels or 1
    return energy_distance(samples / scale, reference / scale)


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


def quality_target(dataset: str) -> tuple[str, float] | None:
    """The ``(metric, threshold)`` a run on ``dataset`` is timed against; ``None`` if none."""
    if dataset not in SHIPPED:  # a user's file: no threshold is known to mean "good" there
        return None
    info = dataset_info(dataset)
    if info.digits_features:
        return QUALITY_TARGETS["digits_features"]
    if info.shape == (2,):
        return QUALITY_TARGETS["2d"]
    return None


def quality_tracker(dataset: str, seed: int, n: int = N_TRACKED, conditional: bool = False):
    """An ``evaluate`` callback for the Trainer: the dataset's target metric on ``n`` seeded
    samples against ``n`` test examples (``None`` where the dataset has no target). Called
    with ``steps=k`` it scores a sampler run with ``k`` steps instead of its configured
    count. ``conditional``: the samples are drawn given the test examples' conditions."""
    target = quality_target(dataset)
    if target is None:
        return None
    metric, levels = target[0], dataset_info(dataset).levels
    if conditional:
        reference, c = load_dataset(dataset, split="test", n=n, seed=seed, condition=True)
    else:
        reference, c = load_dataset(dataset, split="test", n=n, seed=seed), None

    def sample_quality(
        model, steps: int | None = None, sampler: str | None = None
    ) -> dict[str, float]:
        generator = torch.Generator(device=model.device).manual_seed(seed)
        extra = {} if steps is None else {"steps": steps}  # a sampler's step count
        if sampler is not None:  # a score model's other sampler (ddim, dpm-solver)
            extra["sampler"] = sampler
        if c is not None:  # one sample per test example, given its condition
            extra["c"] = c.to(model.device)
        count = n if c is None else len(c)
        samples = model.sample(count, generator=generator, **extra).cpu().float()
        return {metric: target_metric(metric, samples, reference, model, levels)}

    return sample_quality


def time_to_target(evaluations: list[dict[str, float]], dataset: str) -> float | None:
    """Training seconds until the tracked metric first met the dataset's target."""
    target = quality_target(dataset)
    if target is None:
        return None
    key, threshold = f"eval/{target[0]}", target[1]
    for row in evaluations:
        if key in row and math.isfinite(row[key]) and row[key] <= threshold:
            return float(row["time"])
    return None


def quality_vs_sampling_steps(model, tracker, steps: tuple[int, ...]) -> list[dict[str, float]]:
    """The tracked quality metric and network evaluations per sample for each sampler step
    count in ``steps`` and for the configured one (last), on the trained model. Step counts
    the sampler cannot take (an adaptive ODE solver sets its own) are left out; a model
    that is no ``StepSampler`` gives no points."""
    if not isinstance(model, StepSampler):
        return []
    adaptive = model.sampling_cost().get("nfe_per_sample") is None
    points = []
    for k in (None,) if adaptive else (*steps, None):
        quality = tracker(model, steps=k)
        points.append({"steps": k, "nfe": float(model.last_nfe), **quality})
    return points


#: Network evaluations per sample at which the few-step samplers are scored (issue 19), and
#: the samples scored (against as many test examples). The quick preset stops at 50, on 200
#: digits: a digits U-Net evaluation on 500 rows takes about 50 ms of one core, so the full
#: sweep costs about 3 minutes per digits cell and the quick one about 5 s (2-D data: 500
#: samples in both; fewer make the energy distance too noisy to rank the samplers).
FAST_SAMPLER_NFE = {"full": (10, 20, 50, 100, 1000), "quick": (10, 20, 50)}
FAST_SAMPLER_N = {"full": N_TRACKED, "quick": 200}


def fast_sampler_quality(model, dataset: str, seed: int, quick: bool) -> list[dict[str, Any]]:
    """``quality_vs_samplers`` at the preset's ``FAST_SAMPLER_NFE`` on ``FAST_SAMPLER_N``
    seeded samples of digits (``N_TRACKED`` of other data), given the test examples'
    conditions for a conditional model."""
    preset = "quick" if quick else "full"
    if not isinstance(model, SamplerChoice) or "ddim" not in model.samplers:
        return []
    conditional = model.condition_kind is not None
    n = FAST_SAMPLER_N[preset] if dataset_info(dataset).digits_features else N_TRACKED
    tracker = quality_tracker(dataset, seed, n, conditional)
    if tracker is None:
        return []
    return quality_vs_samplers(model, tracker, FAST_SAMPLER_NFE[preset])


def quality_vs_samplers(model, tracker, nfes: tuple[int, ...]) -> list[dict[str, Any]]:
    """The tracked quality metric of a VP score model's own stochastic sampler (``ddpm``'s
    ancestral, ``score-sde``'s predictor-corrector), DDIM (eta = 0) and DPM-Solver (order
    3) at each number of network evaluations per sample in ``nfes`` (the native sampler at
    the step count nearest below, when a step costs several; left out when it is the
    probability-flow ODE). Empty for a model without the few-step samplers."""
    if not isinstance(model, SamplerChoice) or "ddim" not in model.samplers:
        return []
    samplers = model.samplers
    points = []
    native = () if samplers[0] == "ode" else (samplers[0],)  # an adaptive ODE sets its own
    per_step = 1 if not native else model.sampling_cost(1)["nfe_per_sample"] or 1
    for sampler in (*native, "ddim", "dpm-solver"):
        for nfe in nfes:
            steps = max(1, nfe // per_step) if sampler == samplers[0] else nfe
            try:
                model.sampling_cost(steps, sampler)
            except ValueError:
                continue  # e.g. more DDIM steps than DDPM has timesteps
            quality = tracker(model, steps=steps, sampler=sampler)
            points.append({"sampler": sampler, "steps": steps, "nfe": float(model.last_nfe),
                           **quality})  # fmt: skip
    return points


def measure(model, dataset: str, seed: int, history: list[dict[str, float]]) -> dict[str, Any]:
    """All metrics of one trained model on the test split of ``dataset``."""
    info = dataset_info(dataset)
    c = None
    if model.condition_kind is not None:  # samples given the test examples' conditions
        test, c = load_dataset(dataset, split="test", n=N_SAMPLES, seed=seed, condition=True)
    else:
        test = load_dataset(dataset, split="test", n=N_SAMPLES, seed=seed)
    row: dict[str, Any] = {}
    row.update(evaluate(model, dataset, n=N_SAMPLES, seed=seed))
    samples, row["samples_per_second"] = sample_speed(model, min(N_SAMPLES, len(test)), seed, c)
    if c is not None and model.condition_kind == "discrete":
        row.update(sample_class_accuracy(samples, c, model, info))
    row["loss_oscillation"] = loss_oscillation(history)
    row["nfe_per_sample"] = (model.last_nfe if isinstance(model, StepSampler) else 0) or ""
    if info.kind == "text":  # distances between token-id vectors mean nothing
        return _finite(row)
    if info.digits_features:  # features of genzoo's own digits classifier (not FID)
        row["frechet_digits"] = target_metric("frechet_digits", samples, test, model, info.levels)
    reference = test
    if info.levels is not None:  # compare discrete data on one scale: levels / L in [0, 1)
        samples = on_levels(samples, model, info.levels) / info.levels
        reference = test / info.levels
    row.update(sample_metrics(samples, reference, seed))
    if model.density != "none":
        scored = to_model_scale(test, model, info.levels)
        row["log_prob_per_second"] = log_prob_speed(model, scored, c)
    row.update(mode_metrics(samples, info))
    return _finite(row)


def sample_class_accuracy(
    samples: torch.Tensor, c: torch.Tensor, model, info: DatasetInfo
) -> dict[str, Any]:
    """How often a class-conditional model's samples are of the class asked for: on digits,
    genzoo's digits classifier's prediction (``genzoo.metrics.frechet``); on the mixture toys,
    the mode nearest each sample (``mode_centres``, ordered as the component labels). With
    its chance level ``1 / K``; empty on other data."""
    n_classes = info.condition.n_classes if info.condition is not None else 0
    c = c.cpu().long()
    predicted = predicted_classes(samples, model, info)
    if predicted is None:
        return {}
    return {
        "sample_class_accuracy": float((predicted == c).double().mean()),
        "sample_class_accuracy_chance": 1.0 / n_classes if n_classes else float("nan"),
    }


#: Guidance scales of the benchmark's guidance sweep (0 unconditional, 1 conditional).
GUIDANCE_SCALES = {"full": (0.0, 1.0, 1.5, 2.0, 3.0, 5.0), "quick": (0.0, 1.0, 2.0, 4.0)}
#: Samples per class of each guidance scale (digits: 10 classes; 8gaussians: 8).
GUIDANCE_PER_CLASS = {"full": 50, "quick": 10}


def guidance_tradeoff(model, dataset: str, seed: int, quick: bool) -> dict[str, Any] | None:
    """Class accuracy and within-class diversity of a class-conditional score model's samples
    against the classifier-free guidance scale (``genzoo.figures.score.guidance_sweep``; Ho
    & Salimans 2022, figures 4-5), on data whose samples can be classified (digits, the
    mixture toys): ``{"rows", "data_diversity", "chance"}``, or None where that does not
    apply. Diversity on digits is measured on the [0, 1] pixel scale."""
    from genzoo.figures.score import guidance_sweep, within_class_diversity

    info = dataset_info(dataset)
    if model.condition_kind != "discrete" or not isinstance(model, ClassGuided):
        return None
    if not (info.digits_features or info.has_known_modes):
        return None

    def unit(x: torch.Tensor) -> torch.Tensor:
        if not info.digits_features:
            return x
        return digits_to_unit(on_levels(x, model, info.levels) if info.levels else x)

    preset = "quick" if quick else "full"
    rows = guidance_sweep(model, GUIDANCE_SCALES[preset],
                          lambda x: predicted_classes(x, model, info),
                          n_per_class=GUIDANCE_PER_CLASS[preset], seed=seed,
                          features=unit)  # fmt: skip
    n = model.n_classes * GUIDANCE_PER_CLASS[preset]
    test, c = load_dataset(dataset, split="test", n=n, seed=seed, condition=True)
    data_unit = digits_to_unit(test) if info.digits_features else test
    return {
        "rows": rows,
        "data_diversity": within_class_diversity(data_unit, c),
        "chance": 1.0 / model.n_classes,
    }


def predicted_classes(samples: torch.Tensor, model, info: DatasetInfo) -> torch.Tensor | None:
    """The class of each sample ``(n,)``: on digits, genzoo's digits classifier's prediction;
    on the mixture toys, the nearest mode (``mode_centres``, ordered as the component
    labels); ``None`` on other data."""
    samples = samples.cpu()
    if info.digits_features:
        from genzoo.metrics.frechet import digits_classifier

        images = digits_to_unit(on_levels(samples, model, info.levels) if info.levels else samples)
        with torch.no_grad():
            logits = torch.cat([digits_classifier()(part.float()) for part in images.split(4096)])
        return logits.argmax(1)
    if info.has_known_modes:
        centres, _ = mode_centres(info.name)
        centres_t = torch.as_tensor(centres, dtype=torch.float64)
        return torch.cdist(samples.double().reshape(len(samples), -1), centres_t).argmin(1)
    return None


def logistic_reference(dataset: str, seed: int = 0) -> dict[str, Any]:
    """A discriminative classifier on the split the cells use: scikit-learn's
    ``LogisticRegression`` trained on the training split's examples and conditions, its
    accuracy on ``N_SAMPLES`` test examples (the reference of the generative classifiers'
    Bayes-rule accuracy). Empty where the condition is no class."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    info = dataset_info(dataset)
    if info.condition is None or info.condition.kind != "discrete":
        return {}
    x, c = load_dataset(dataset, split="train", seed=seed, condition=True)
    x_test, c_test = load_dataset(dataset, split="test", n=N_SAMPLES, seed=seed, condition=True)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(x.reshape(len(x), -1).double().numpy(), c.numpy())
    predicted = classifier.predict(x_test.reshape(len(x_test), -1).double().numpy())
    return {
        "model": "LogisticRegression (scikit-learn, discriminative)",
        "bayes_accuracy": float((torch.as_tensor(predicted) == c_test).double().mean()),
        "n_train": int(len(x)),
        "n_test": int(len(x_test)),
    }


def sample_metrics(samples: torch.Tensor, reference: torch.Tensor, seed: int) -> dict[str, Any]:
    """Distances between ``samples`` and ``reference`` on one scale: MMD², energy distance,
    precision/recall/coverage and the classifier two-sample accuracy."""
    row: dict[str, Any] = {
        "mmd": mmd_rbf(samples, reference),
        "energy_distance": energy_distance(samples, reference),
    }
    row.update(precision_recall(reference, samples))
    row["c2st_accuracy"] = classifier_two_sample_accuracy(samples, reference, seed=seed)
    held_out = 2 * (min(len(samples), len(reference)) // 2)  # its test half, both classes
    row["c2st_accuracy_stderr"] = 0.5 / math.sqrt(held_out)  # at chance (Lopez-Paz & Oquab)
    return row


def reference_row(dataset: str, seed: int = 0) -> dict[str, Any]:
    """What a perfect model would score: the validation split measured against the test split
    with the sample metrics of ``measure`` (and the true entropy in the NLL column where the
    data's density is known). Empty for text, where sample distances mean nothing."""
    info = dataset_info(dataset)
    if info.kind == "text":
        return {}
    held_out = load_dataset(dataset, split="val", n=N_SAMPLES, seed=seed)
    test = load_dataset(dataset, split="test", n=N_SAMPLES, seed=seed)
    row: dict[str, Any] = {"measure": "held-out data"}
    if info.has_true_density:
        row["nll"] = true_entropy(dataset)
    if info.digits_features:
        row["frechet_digits"] = frechet_digits_distance(
            digits_to_unit(held_out), digits_to_unit(test)
        )
    scale = info.levels or 1
    row.update(sample_metrics(held_out / scale, test / scale, seed))
    row.update(mode_metrics(held_out, info))
    return _finite(row)


def mode_metrics(samples: torch.Tensor, info: DatasetInfo) -> dict[str, Any]:
    """Modes reached and the high-quality share on data with known modes (the Gaussian-mixture
    toys); empty elsewhere."""
    if not info.has_known_modes:
        return {}
    centres, std = mode_centres(info.name)
    coverage = mode_coverage(samples, centres, std)
    return {k: coverage[k] for k in ("modes_covered", "n_modes", "high_quality_share")}


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
