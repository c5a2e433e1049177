"""Fréchet distance between Gaussians fitted to classifier features of 8x8 digits.

This is **not FID**. FID (Heusel et al. 2017) uses the pool features of an Inception-v3
network trained on ImageNet. Here the features come from a tiny CNN that genzoo trains itself,
deterministically and in a few seconds of CPU, on the 1,000 digits of the ``train`` split of
``load_dataset("digits")`` with their labels (about 98% accurate on ``test``). Its values are
comparable only with other values from this module (same ``RECIPE``, whose hash names the
cache file), never with published FID numbers.

Images are taken on the ``[0, 1]`` scale that continuous models sample in: the grey level
``g`` in 0..16 maps to ``(g + 0.5) / 17``, the centre of its dequantisation interval
(``dequantize(x, 17)`` draws uniformly from ``[g / 17, (g + 1) / 17)``). ``digits_to_unit``
does that mapping. The classifier is trained on dequantised inputs, so it accepts both.

The trained weights are cached as safetensors (written atomically) under ``cache_dir``, else
the cache folder (:func:`genzoo.io.cache_folder`), in a file whose name holds a hash of the training
recipe. A missing, corrupt or mismatched file is retrained and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genzoo.errors import CheckpointError, DataError
from genzoo.io import cache_folder, load_state, read_tensors, write_tensors
from genzoo.validation import check_finite

__all__ = [
    "RECIPE",
    "DigitsClassifier",
    "cache_path",
    "cached_model",
    "classifier_features",
    "digits_classifier",
    "digits_to_unit",
    "feature_statistics",
    "frechet_digits_distance",
    "frechet_distance",
]

DIGITS_LEVELS = 17

#: Everything that determines the classifier's weights; its hash names the cache file, so
#: changing any entry (or the code's ``version``) retrains instead of loading stale weights.
RECIPE: dict[str, object] = {
    "version": 1,
    "data": "digits/train (first 1000 of sklearn load_digits), inputs (g + u) / 17",
    "augment": "all 9 one-pixel shifts, zero padded",
    "architecture": "conv3x3(1->32) relu maxpool2 | linear(512->64) relu | linear(64->10)",
    "channels": 32,
    "features": 64,
    "optimizer": "adam",
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "epochs": 10,
    "batch_size": 128,
    "seed": 0,
    "dtype": "float32",
}


def _recipe_hash() -> str:
    text = json.dumps(RECIPE, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def digits_to_unit(levels: Tensor) -> Tensor:
    """Grey levels 0..16 (n, ...) to the ``[0, 1]`` scale: ``(g + 0.5) / 17``."""
    dtype = levels.dtype if torch.is_floating_point(levels) else torch.get_default_dtype()
    return (levels.to(dtype) + 0.5) / DIGITS_LEVELS


class DigitsClassifier(nn.Module):
    """Tiny CNN: 3x3 conv (1 -> ``channels``), ReLU, 2x2 max-pool, linear to ``features``,
    ReLU (the feature layer), linear to 10 classes. Inputs (n, 1, 8, 8) or (n, 64)."""

    def __init__(self, channels: int = 32, features: int = 64, n_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.hidden = nn.Linear(channels * 16, features)
        self.head = nn.Linear(features, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """(n, 1, 8, 8) or (n, 64) on the [0, 1] scale -> (n, features)."""
        h = F.max_pool2d(F.relu(self.conv(x.reshape(x.shape[0], 1, 8, 8))), 2)
        return F.relu(self.hidden(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (n, 10)."""
        return self.head(self.features(x))


def _new_classifier() -> DigitsClassifier:
    """The untrained classifier of ``RECIPE``, initialised from its seed (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(RECIPE["seed"]))
        return DigitsClassifier(int(RECIPE["channels"]), int(RECIPE["features"])).to(torch.float32)


def cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``digits_classifier`` keeps its weights for the current ``RECIPE``."""
    return cache_folder(cache_dir) / f"digits-classifier-{_recipe_hash()}.safetensors"


def _digits_with_labels(split: str) -> tuple[Tensor, Tensor]:
    """Grey levels (n, 1, 8, 8) float32 and labels (n,) int64 of a digits split."""
    from sklearn.datasets import load_digits

    from genzoo.data.images import DIGITS_SPLIT_SIZES, load_digits_split

    sizes = list(DIGITS_SPLIT_SIZES)
    start = sum(DIGITS_SPLIT_SIZES[s] for s in sizes[: sizes.index(split)])
    labels = load_digits().target[start : start + DIGITS_SPLIT_SIZES[split]]
    x = torch.as_tensor(load_digits_split(split), dtype=torch.float32)
    return x, torch.as_tensor(np.asarray(labels), dtype=torch.int64)


@contextmanager
def _deterministic_cpu():
    """One thread, deterministic kernels, a private global RNG and gradients on, whatever the
    caller's grad mode (the first use is often inside ``torch.no_grad``); all restored
    afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(threads)


def _shifted(x: Tensor) -> Tensor:
    """The 9 one-pixel shifts (zero padded) of images (n, 1, 8, 8), stacked: (9 n, 1, 8, 8)."""
    padded = F.pad(x, (1, 1, 1, 1))
    return torch.cat(
        [padded[:, :, 1 + dy : 9 + dy, 1 + dx : 9 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    )


def _train() -> DigitsClassifier:
    """Train the classifier of ``RECIPE`` from scratch (a few seconds on one CPU thread)."""
    x, y = _digits_with_labels("train")
    x, y = _shifted(x), y.repeat(9)
    batch = int(RECIPE["batch_size"])
    with _deterministic_cpu():
        model = _new_classifier()
        generator = torch.Generator().manual_seed(int(RECIPE["seed"]))
        opt = torch.optim.Adam(
            model.parameters(), lr=float(RECIPE["lr"]), weight_decay=float(RECIPE["weight_decay"])
        )
        for _ in range(int(RECIPE["epochs"])):
            order = torch.randperm(len(x), generator=generator)
            u = torch.rand(x.shape, generator=generator, dtype=torch.float32)
            inputs = (x + u) / DIGITS_LEVELS
            for i in range(0, len(x), batch):
                idx = order[i : i + batch]
                loss = F.cross_entropy(model(inputs[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return model.eval()


def _load(path: Path, new: Callable[[], nn.Module] = _new_classifier) -> nn.Module | None:
    """The cached model (``new()`` with the file's weights), or None when the file is missing,
    corrupt, does not fit or holds non-finite weights."""
    if not path.is_file():
        return None
    model = new()
    try:
        state = read_tensors(path)
        load_state(model, state, str(path))
    except CheckpointError:
        return None
    if not all(torch.isfinite(v).all() for v in state.values()):
        return None
    return model.eval()


def cached_model(
    path: Path,
    new: Callable[[], nn.Module],
    train: Callable[[], nn.Module],
    recipe: dict[str, object],
    what: str,
) -> nn.Module:
    """The model cached at ``path`` (weights into ``new()``), else ``train()`` now and cache
    it there as safetensors (atomically, the ``recipe`` in the metadata). A missing, corrupt
    or mismatched file is retrained and replaced; a cache that cannot be written only warns.
    Parameters come back frozen (``requires_grad=False``), the model in eval mode.
    Shared by the metric classifiers (``digits_classifier``, ``sprites_classifier``)."""
    model = _load(path, new)
    if model is None:
        model = train().eval()
        try:
            write_tensors(
                path, model.state_dict(), metadata={"recipe": json.dumps(recipe, sort_keys=True)}
            )
        except OSError as err:  # a read-only or full disk costs a retraining next time, no more
            warnings.warn(f"could not cache the {what} at {path}: {err}", stacklevel=3)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def digits_classifier(cache_dir: str | os.PathLike | None = None) -> DigitsClassifier:
    """The deterministic digits classifier of ``RECIPE``, from the cache or trained now.

    Trained on the ``train`` split only: the 9 one-pixel shifts of each digit, dequantised
    afresh each epoch to ``[0, 1]``, Adam on mini-batches in a seeded order, fixed seeds, one
    thread, deterministic kernels (the global RNG and thread settings are restored after).
    About 98% accuracy on the ``test`` split, about 3 s of CPU. The weights are cached as
    safetensors at ``cache_path(cache_dir)``; a corrupt or mismatched cache file is retrained
    and replaced; a cache that cannot be written only warns.
    Parameters are frozen (``requires_grad=False``) and the model is in eval mode on the CPU.
    """
    model = cached_model(
        cache_path(cache_dir), _new_classifier, _train, RECIPE, "digits classifier"
    )
    assert isinstance(model, DigitsClassifier)
    return model


def classifier_features(x: Tensor, model: nn.Module, batch_size: int = 4096) -> Tensor:
    """Penultimate-layer features (n, k) of images (n, 1, 8, 8) or (n, 64) on the [0, 1] scale.

    Computed on the CPU in float32 without gradients; returned as float64.
    """
    x = torch.as_tensor(x)
    if x.ndim < 2 or x[0].numel() != 64:
        raise DataError(
            f"classifier_features expects 8x8 images shaped (n, 1, 8, 8) or (n, 64), "
            f"got shape {tuple(x.shape)}"
        )
    check_finite(x, what="images given to classifier_features")
    x = x.detach().reshape(x.shape[0], 64).to("cpu", torch.float32)
    with torch.no_grad():
        out = [model.features(chunk) for chunk in x.split(batch_size)]
    return torch.cat(out).double()


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (k,) and unbiased covariance (k, k) in float64 of features (n, k), n >= 2."""
    f = torch.as_tensor(features).double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise DataError(f"feature_statistics needs features shaped (n >= 2, k), got {f.shape}")
    mu = f.mean(dim=0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2).

    ``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2))`` (Dowson & Landau 1982), the
    formula of FID (Heusel et al. 2017). ``mu`` (k,), ``cov`` (k, k). The trace of the matrix
    square root is computed as ``tr((S1 cov2 S1)^(1/2))`` with ``S1 = cov1^(1/2)``, which has the
    same eigenvalues as ``cov1 cov2`` but is symmetric: two eigen-decompositions in float64,
    negative round-off eigenvalues clipped to 0, so singular covariances need no eps and the
    result is real. Clipped at 0 from below.
    """
    m1, m2 = (np.asarray(torch.as_tensor(m).double().cpu(), dtype=np.float64) for m in (mu1, mu2))
    c1, c2 = (np.asarray(torch.as_tensor(c).double().cpu(), dtype=np.float64) for c in (cov1, cov2))
    k = m1.shape[0]
    if m1.shape != (k,) or m2.shape != (k,) or c1.shape != (k, k) or c2.shape != (k, k):
        raise DataError(
            f"frechet_distance needs means (k,) and covariances (k, k), got {m1.shape}, "
            f"{c1.shape}, {m2.shape}, {c2.shape}"
        )
    if not all(np.isfinite(a).all() for a in (m1, m2, c1, c2)):
        raise DataError("frechet_distance got non-finite means or covariances")
    s1 = _psd_sqrt(c1)
    middle = s1 @ c2 @ s1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = m1 - m2
    value = float(diff @ diff) + float(np.trace(c1) + np.trace(c2)) - 2.0 * tr_sqrt
    return max(value, 0.0)


def frechet_digits_distance(
    samples: Tensor, reference: Tensor, cache_dir: str | os.PathLike | None = None
) -> float:
    """Fréchet distance between digits-classifier features of ``samples`` and ``reference``.

    NOT FID: there is no Inception network; the features are the 64-d penultimate layer of a
    tiny CNN that genzoo trains on the 1,000 training digits (``digits_classifier``). Values are
    comparable only within genzoo, for the same ``RECIPE``. Lower is better; the estimate is
    biased upwards for small samples, so compare values computed with equal sample sizes.

    ``samples`` (n, 1, 8, 8) or (n, 64) and ``reference`` (m, ...) with n, m >= 2, both on the
    [0, 1] scale (grey level g as ``(g + 0.5) / 17``, see ``digits_to_unit``). For reference
    (this ``RECIPE``, reference = the 1,000 training digits): the 447 test digits score about
    3.5 (dequantised: 3.6), 1,000 uniform-noise images about 113, the training digits with
    their 64 pixels shuffled about 182.
    """
    model = digits_classifier(cache_dir)
    stats_s = feature_statistics(classifier_features(samples, model))
    stats_r = feature_statistics(classifier_features(reference, model))
    return frechet_distance(*stats_s, *stats_r)
