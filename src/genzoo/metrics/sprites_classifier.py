"""Sample quality for ``sprites``: a factor classifier, its Fréchet distance and factor accuracy.

The sprites counterpart of :mod:`genzoo.metrics.frechet` (digits). A small CNN that genzoo
trains itself, deterministically, on first use (about 20 s on one CPU thread) reads a 64x64
binary sprite and predicts its five factors with one head each: shape (3), scale (6),
orientation (40) and posX, posY (32 each). Its feature layer (256 features, the input of the
heads) gives

* :func:`frechet_sprites_distance`: the Fréchet distance between Gaussians fitted to the
  features of samples and of reference images (the formula of FID, Heusel et al. 2017; NOT
  FID: no Inception network, values comparable only within genzoo for the same ``RECIPE``);
* :func:`sprites_factor_accuracy`: for conditional samples, the share whose predicted factors
  match the factors asked for (definition in its docstring);
* :func:`sprites_sample_quality`: both for a model's own samples (what ``genzoo eval`` can
  report for sprites runs).

Orientation is only defined up to the sprite's symmetry: a square turned by 90 degrees (10
orientation steps) and an ellipse turned by 180 degrees (20 steps) are the same image (as in
dSprites, Matthey et al. 2017). The classifier is therefore trained on the *canonical*
orientation, ``k mod period(shape)`` (10, 20 and 40 steps for square, ellipse, heart), and
orientations are compared modulo that period.

Training data: ``RECIPE["n_train"]`` images of the ``train`` split of ``open_sprites`` (data
seed 0; the same split the models train on), rendered directly (no 377 MB cache file needed);
held-out accuracy is measured on the first 2,000 of the ``test`` split. With this ``RECIPE``
(measured 2026-12-07, torch 2.13 CPU, ``held_out_accuracy()``), exact / within one bin:

===========  =====  =========================================
factor       exact  within one bin
===========  =====  =========================================
shape        1.000  (categorical: exact only)
scale        0.992  1.000
orientation  0.946  0.995 (canonical orientation, circular)
posX         0.868  1.000
posY         0.865  1.000
all five     0.715  0.994
===========  =====  =========================================

The weights are cached as safetensors under ``cache_dir``, else the cache folder
(:func:`genzoo.io.cache_folder`), in a file whose name holds a hash of the recipe; a missing,
corrupt or mismatched file is retrained and replaced (:func:`genzoo.metrics.frechet.cached_model`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genzoo.errors import DataError
from genzoo.io import cache_folder
from genzoo.metrics.frechet import (
    _deterministic_cpu,
    cached_model,
    feature_statistics,
    frechet_distance,
)
from genzoo.metrics.likelihood import on_levels
from genzoo.validation import check_finite

__all__ = [
    "FACTOR_SIZES",
    "ORDINAL",
    "RECIPE",
    "SpritesClassifier",
    "frechet_sprites_distance",
    "held_out_accuracy",
    "sprites_cache_path",
    "sprites_classifier",
    "sprites_factor_accuracy",
    "sprites_features",
    "sprites_sample_quality",
]

IMAGE_SIZE = 64
#: Classes of each factor, in the order of ``genzoo.data.sprites.FACTOR_NAMES``.
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "posX", "posY")
#: Factors compared within ``tolerance`` bins (shape is categorical: exact).
ORDINAL: tuple[bool, ...] = (False, True, True, True, True)
#: Orientation steps after which each shape (square, ellipse, heart) looks the same again.
ORIENTATION_PERIOD: tuple[int, ...] = (10, 20, 40)

#: Everything that determines the classifier's weights; its hash names the cache file.
RECIPE: dict[str, object] = {
    "version": 1,
    "data": "sprites train split (data seed 0, full grid), first n_train, rendered directly",
    "targets": "factor classes; orientation canonical: k mod (10, 20, 40) for square/ellipse/heart",
    "architecture": "centre of mass, 28x28 window: conv3x3(1->32) relu maxpool2 conv3x3(32->32) "
    "relu maxpool2 | avgpool8 image | centre as 2x64 bumps -> linear(1824->128) relu, joined "
    "with the bumps (256 features) | 5 linear heads, pos heads start at nearest bin",
    "features": 128,
    "n_train": 10000,
    "optimizer": "adam",
    "lr": 2e-3,
    "epochs": 3,
    "batch_size": 64,
    "seed": 0,
    "dtype": "float32",
}


def _recipe_hash(recipe: dict[str, object]) -> str:
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


CROP = 28  # side of the window around the centre of mass that the convolutions read


def _centre_crop(x: Tensor) -> tuple[Tensor, Tensor]:
    """Centres of mass (n, 2) as (column, row) in pixels (the image centre for an empty
    image) and the ``CROP`` x ``CROP`` windows (n, 1, CROP, CROP) around their rounded value
    (zero padded outside the image)."""
    n = x.shape[0]
    img = x.reshape(n, IMAGE_SIZE, IMAGE_SIZE).clamp(min=0)
    grid = torch.arange(IMAGE_SIZE, dtype=img.dtype) + 0.5
    mass = img.sum(dim=(1, 2))
    safe = mass.clamp(min=1e-6)
    centre = torch.stack([(img.sum(1) * grid).sum(1) / safe, (img.sum(2) * grid).sum(1) / safe], 1)
    centre = torch.where(mass[:, None] > 1e-6, centre, torch.full_like(centre, IMAGE_SIZE / 2))
    half = CROP // 2
    padded = F.pad(img, (half, half, half, half))
    corner = centre.floor().long().clamp(0, IMAGE_SIZE - 1)  # top-left in padded coordinates
    offsets = torch.arange(CROP)
    rows = (corner[:, 1, None] + offsets)[:, :, None]
    cols = (corner[:, 0, None] + offsets)[:, None, :]
    crop = padded[torch.arange(n)[:, None, None], rows, cols]
    return centre, crop.unsqueeze(1)


def _place_code(centre: Tensor) -> Tensor:
    """Centres (n, 2) in pixels to (n, 128): each coordinate as 64 triangular bumps, one a
    pixel (linear interpolation between the two nearest pixel centres), so that a linear
    layer reads the position at sub-pixel precision."""
    bumps = torch.arange(IMAGE_SIZE, dtype=centre.dtype) + 0.5
    return F.relu(1 - (centre[:, :, None] - bumps).abs()).flatten(1)


class SpritesClassifier(nn.Module):
    """Reads a sprite through its centre of mass ``c`` and the 28x28 window around it: two
    3x3 convolutions (1 -> 32 -> 32 channels, ReLU, 2x2 max-pool each) on the window, an 8x8
    average-pooled copy of the whole image and ``c`` (64 triangular bumps a coordinate) go
    through a linear layer to ``features`` (ReLU); these joined with the bumps are the
    feature layer (``features + 128``), read by one linear head per factor. The window makes
    shape, scale and orientation translation invariant, so a few thousand images suffice.
    Inputs (n, 1, 64, 64) or (n, 4096) on the [0, 1] scale."""

    def __init__(self, features: int = 128) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.hidden = nn.Linear(32 * (CROP // 4) ** 2 + 64 + 2 * IMAGE_SIZE, features)
        self.heads = nn.ModuleList(nn.Linear(features + 2 * IMAGE_SIZE, k) for k in FACTOR_SIZES)
        # posX/posY start out reading the bin whose centre pixel is nearest the centre of
        # mass (exact for the symmetric square and ellipse); training corrects the rest.
        from genzoo.data.sprites import _centres

        centres = _centres(FACTOR_SIZES[3])
        nearest = np.abs(np.arange(IMAGE_SIZE)[None, :] - centres[:, None]).argmin(axis=0)
        start = torch.zeros(FACTOR_SIZES[3], IMAGE_SIZE)
        start[torch.from_numpy(nearest), torch.arange(IMAGE_SIZE)] = 5.0
        with torch.no_grad():
            for k, head in ((3, self.heads[3]), (4, self.heads[4])):
                offset = features + (k - 3) * IMAGE_SIZE
                head.weight[:, offset : offset + IMAGE_SIZE] = start

    def features(self, x: Tensor) -> Tensor:
        """(n, 1, 64, 64) or (n, 4096) -> (n, features)."""
        x = x.reshape(x.shape[0], 1, IMAGE_SIZE, IMAGE_SIZE)
        centre, crop = _centre_crop(x)
        coarse = F.avg_pool2d(x, 8).flatten(1)
        place = _place_code(centre)
        h = torch.cat([self.convs(crop).flatten(1), coarse, place], 1)
        return torch.cat([F.relu(self.hidden(h)), place], 1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Logits of each factor: a list of (n, size) in the order of ``FACTOR_SIZES``."""
        h = self.features(x)
        return [head(h) for head in self.heads]

    def predict(self, x: Tensor) -> Tensor:
        """The predicted factor classes (n, 5), int64 (orientation canonical)."""
        return torch.stack([logits.argmax(dim=1) for logits in self(x)], dim=1)


def _new_classifier(recipe: dict[str, object]) -> SpritesClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(recipe["seed"]))
        return SpritesClassifier(int(recipe["features"])).to(torch.float32)


def sprites_cache_path(
    cache_dir: str | os.PathLike | None = None, recipe: dict[str, object] | None = None
) -> Path:
    """Where ``sprites_classifier`` keeps its weights for ``recipe`` (default ``RECIPE``)."""
    tag = _recipe_hash(RECIPE if recipe is None else recipe)
    return cache_folder(cache_dir) / f"sprites-classifier-{tag}.safetensors"


def _canonical(classes: np.ndarray) -> np.ndarray:
    """Factor classes (n, 5) with the orientation reduced modulo the shape's period."""
    out = np.array(classes, dtype=np.int64, copy=True)
    out[:, 2] %= np.asarray(ORIENTATION_PERIOD)[out[:, 0]]
    return out


def _render(index: np.ndarray) -> tuple[Tensor, np.ndarray]:
    """Images (n, 1, 64, 64) float32 and factor classes (n, 5) of full-grid rows ``index``,
    rendered directly from one template per (shape, scale, orientation) used."""
    from genzoo.data import sprites

    grid = sprites.FULL_GRID
    classes = grid.classes(index)
    _, scales, angles, _, _ = grid.factor_values()
    centres = sprites._centres(grid.positions)
    half = sprites._HALF
    out = np.zeros((len(index), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    keys = classes[:, 0] * 1000 + classes[:, 1] * 100 + classes[:, 2]
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        shape, scale_k, angle_k = classes[rows[0], :3]
        template = sprites.render_template(
            int(shape), float(scales[scale_k]), float(angles[angle_k])
        )
        for r in rows:
            cx, cy = centres[classes[r, 3]], centres[classes[r, 4]]
            out[r, cy - half : cy + half + 1, cx - half : cx + half + 1] = template
    return torch.from_numpy(out).unsqueeze(1), classes


def _split_rows(split: str, n: int) -> np.ndarray:
    from genzoo.data import sprites

    return sprites.split_index(len(sprites.FULL_GRID), split, seed=0, n=n)


def _train(recipe: dict[str, object]) -> SpritesClassifier:
    """Train the classifier of ``recipe`` from scratch on one CPU thread, deterministically."""
    from tqdm.auto import tqdm

    x, classes = _render(_split_rows("train", int(recipe["n_train"])))
    y = torch.from_numpy(_canonical(classes))
    batch, epochs = int(recipe["batch_size"]), int(recipe["epochs"])
    with _deterministic_cpu():
        model = _new_classifier(recipe)
        generator = torch.Generator().manual_seed(int(recipe["seed"]))
        opt = torch.optim.Adam(model.parameters(), lr=float(recipe["lr"]))
        steps = epochs * math.ceil(len(x) / batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, float(recipe["lr"]), total_steps=steps)
        bar = tqdm(total=steps, desc="training the sprites classifier", leave=False)
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x), batch):
                idx = order[i : i + batch]
                logits = model(x[idx])
                loss = sum(F.cross_entropy(lg, y[idx, k]) for k, lg in enumerate(logits))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update()
        bar.close()
    return model.eval()


def sprites_classifier(
    cache_dir: str | os.PathLike | None = None, recipe: dict[str, object] | None = None
) -> SpritesClassifier:
    """The deterministic sprites factor classifier of ``recipe`` (default ``RECIPE``), from
    the cache or trained now (about 20 s of one CPU thread; seeded order, one thread,
    deterministic kernels, the global RNG and thread settings restored after). A smaller
    ``recipe`` (e.g. fewer ``n_train`` or ``epochs``) serves tests. Frozen, eval mode, CPU."""
    recipe = dict(RECIPE if recipe is None else recipe)
    model = cached_model(
        sprites_cache_path(cache_dir, recipe),
        lambda: _new_classifier(recipe),
        lambda: _train(recipe),
        recipe,
        "sprites classifier",
    )
    assert isinstance(model, SpritesClassifier)
    return model


def _as_images(x: Tensor, what: str) -> Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 2 or x[0].numel() != IMAGE_SIZE * IMAGE_SIZE:
        raise DataError(f"{what} must be 64x64 sprites shaped (n, 1, 64, 64) or (n, 4096), "
                        f"got shape {tuple(x.shape)}")  # fmt: skip
    check_finite(x, what=what)
    return x.detach().reshape(x.shape[0], IMAGE_SIZE * IMAGE_SIZE).to("cpu", torch.float32)


def sprites_features(x: Tensor, model: SpritesClassifier, batch_size: int = 1024) -> Tensor:
    """Penultimate features (n, 256) as float64 of sprites (n, 1, 64, 64) or (n, 4096) on
    the [0, 1] scale (0/1 pixels or Bernoulli means), on the CPU without gradients."""
    x = _as_images(x, "images given to sprites_features")
    with torch.no_grad():
        return torch.cat([model.features(chunk) for chunk in x.split(batch_size)]).double()


def frechet_sprites_distance(
    samples: Tensor,
    reference: Tensor,
    cache_dir: str | os.PathLike | None = None,
    recipe: dict[str, object] | None = None,
) -> float:
    """Fréchet distance between sprites-classifier features of ``samples`` and ``reference``.

    ``|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2))`` (Dowson & Landau 1982; the formula of
    FID, Heusel et al. 2017) on the 256-d penultimate features of ``sprites_classifier``. NOT
    FID; comparable only within genzoo for the same ``RECIPE``. Lower is better; biased upwards
    for small samples, so compare values of equal sample sizes (n, m >= 2; n > 256 for a
    full-rank covariance). Images (n, 1, 64, 64) or (n, 4096) on the [0, 1] scale. For
    reference (this ``RECIPE``; 2,000 test-split images as the reference, 2,000 images
    compared): 2,000 other real (train-split) images about 17 (9 with 4,000 vs 4,000: the
    small-sample bias), the test images rolled 8 pixels right about 63, blurred by a 3x3 mean
    filter about 600, Bernoulli noise of the same pixel density about 3,900, uniform noise
    about 18,000.
    """
    model = sprites_classifier(cache_dir, recipe)
    stats_s = feature_statistics(sprites_features(samples, model))
    stats_r = feature_statistics(sprites_features(reference, model))
    return frechet_distance(*stats_s, *stats_r)


def _factor_classes(factors: Tensor | np.ndarray) -> np.ndarray:
    """Factor classes (n, 5) from classes (integer dtype) or factor values (float dtype: shape
    id, scale 0.5..1, angle in radians, posX, posY in 0..1; the full grid's nearest level)."""
    f = np.asarray(torch.as_tensor(factors).cpu())
    if f.ndim != 2 or f.shape[1] != 5:
        raise DataError(f"sprites factors must be shaped (n, 5), got {f.shape}")
    if np.issubdtype(f.dtype, np.integer):
        classes = f.astype(np.int64)
    else:
        if not np.isfinite(f).all():
            raise DataError("sprites factor values must be finite")
        from genzoo.data import sprites

        levels = sprites.FULL_GRID.factor_values()
        cols = []
        for k, v in enumerate(levels):
            target = f[:, k] % (2 * np.pi) if k == 2 else f[:, k]
            dist = np.abs(target[:, None] - v[None, :])
            if k == 2:  # circular
                dist = np.minimum(dist, 2 * np.pi - dist)
            cols.append(dist.argmin(axis=1))
        classes = np.stack(cols, axis=1)
    if (classes < 0).any() or (classes >= np.asarray(FACTOR_SIZES)).any():
        raise DataError(f"sprites factor classes must lie in 0..size-1 for sizes {FACTOR_SIZES}")
    return classes


def _matches(pred: np.ndarray, asked: np.ndarray, tolerance: int) -> np.ndarray:
    """Boolean (n, 5): factor k of each image matches (see ``sprites_factor_accuracy``)."""
    asked = _canonical(asked)
    period = np.asarray(ORIENTATION_PERIOD)[asked[:, 0]]
    diff = np.abs(pred - asked)
    turn = diff[:, 2] % period
    diff[:, 2] = np.minimum(turn, period - turn)  # circular, modulo the asked shape's symmetry
    tol = np.where(np.asarray(ORDINAL), tolerance, 0)
    return diff <= tol


def sprites_factor_accuracy(
    samples: Tensor,
    factors: Tensor | np.ndarray,
    tolerance: int = 1,
    cache_dir: str | os.PathLike | None = None,
    recipe: dict[str, object] | None = None,
) -> dict[str, float]:
    """Share of conditional samples whose predicted factors match the factors asked for.

    ``samples`` (n, 1, 64, 64) or (n, 4096) on [0, 1]; ``factors`` (n, 5) the factors each
    was asked for, as classes (integer dtype) or as the values the sprites dataset gives as
    its condition (float dtype). The classifier predicts each factor; a factor *matches* when
    shape is equal, and scale, posX, posY are within ``tolerance`` bins (default 1), and the
    orientation is within ``tolerance`` steps circularly modulo the asked shape's symmetry
    period (10, 20, 40 steps for square, ellipse, heart). Returns the share per factor (keys
    ``FACTOR_NAMES``) and ``"all"``, the share matching on all five. Bounded by the
    classifier's own accuracy on real images (module docstring: 0.994 for ``"all"`` with
    tolerance 1, 0.715 with tolerance 0).
    """
    x = _as_images(samples, "samples given to sprites_factor_accuracy")
    asked = _factor_classes(factors)
    if len(asked) != len(x):
        raise DataError(f"got {len(x)} samples but {len(asked)} rows of factors; give one each")
    if tolerance < 0:
        raise DataError(f"tolerance must be >= 0 bins, got {tolerance}")
    model = sprites_classifier(cache_dir, recipe)
    with torch.no_grad():
        pred = torch.cat([model.predict(chunk) for chunk in x.split(1024)]).numpy()
    ok = _matches(pred, asked, tolerance)
    out = {name: float(ok[:, k].mean()) for k, name in enumerate(FACTOR_NAMES)}
    out["all"] = float(ok.all(axis=1).mean())
    return out


def held_out_accuracy(
    n: int = 2000,
    cache_dir: str | os.PathLike | None = None,
    recipe: dict[str, object] | None = None,
) -> dict[str, dict[str, float]]:
    """The classifier's accuracy on the first ``n`` images of the sprites ``test`` split:
    ``{"exact": {...}, "within_one": {...}}`` per factor and ``"all"`` (the module table)."""
    x, classes = _render(_split_rows("test", n))
    return {
        "exact": sprites_factor_accuracy(x, classes, 0, cache_dir, recipe),
        "within_one": sprites_factor_accuracy(x, classes, 1, cache_dir, recipe),
    }


def sprites_sample_quality(
    model: torch.nn.Module,
    reference: Tensor,
    condition: Tensor | None = None,
    n: int = 2000,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    recipe: dict[str, object] | None = None,
) -> dict[str, object]:
    """Sample quality of a generative model of sprites (what ``genzoo eval`` reports).

    Draws ``min(n, len(reference))`` samples (``model.sample``, seeded; given the first
    conditions of ``condition`` when the model is conditional) and returns
    ``frechet_sprites``, their :func:`frechet_sprites_distance` to as many ``reference``
    images, and, with ``condition`` (the factor values or classes, (m, 5)),
    ``factor_accuracy``: :func:`sprites_factor_accuracy` of the samples for the conditions
    they were asked for (tolerance one bin).
    """
    m = min(n, len(reference))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if condition is None:
            samples = model.sample(m, generator=generator)
        else:
            samples = model.sample(m, generator=generator, c=condition[:m])
    # a continuous model samples (x + u) / L on the dequantised scale: score its levels, as
    # the data are binary (raw samples and levels had scored 8,273 and 15,447 for one Glow)
    samples = on_levels(samples, model, 2).reshape(m, -1)
    out: dict[str, object] = {
        "frechet_sprites": frechet_sprites_distance(samples, reference[:m], cache_dir, recipe)
    }
    if condition is not None:
        out["factor_accuracy"] = sprites_factor_accuracy(
            samples, condition[:m], 1, cache_dir, recipe
        )
    return out
