"""Disentanglement metrics: the beta-VAE metric and the mutual information gap (MIG).

Both score a representation ``z`` (a VAE's posterior means) against the known generative
factors of the data (the factor classes of ``sprites``), so they apply only to data whose
factors are known.

- beta-VAE metric (Higgins et al. 2017, "beta-VAE: Learning basic visual concepts with a
  constrained variational framework", section 3): pick a factor ``y`` uniformly; draw ``L``
  pairs of examples that share the value of factor ``y`` (every other factor drawn
  independently); average ``|z(x1) - z(x2)|`` over the pairs. A linear classifier (here a
  multinomial logistic regression on standardised inputs) predicts ``y`` from that average;
  the score is its accuracy on held-out points. A code in which each factor moves its own
  coordinates gets 1; chance is ``1 / K`` for ``K`` factors. It is lenient: a rotated (fully
  entangled) code still scores well above chance (0.86 for a random rotation of 5 factors),
  the weakness Kim & Mnih (2018) point out; MIG is not (0.09 for the same code).
- Mutual information gap (Chen et al. 2018, "Isolating sources of disentanglement in VAEs",
  eq. 6): each latent coordinate is discretised into ``bins`` equal-width bins; for each factor
  ``v_k``, ``I(z_j; v_k)`` (nats) for every coordinate ``j``; the gap between the largest and
  the second largest, divided by the factor's entropy ``H(v_k)``, averaged over the factors.
  1 when one coordinate alone determines each factor, 0 when two share it equally. The
  discretised estimate is the one of Locatello et al. (2019)'s ``disentanglement_lib``;
  factors with more values than ``bins`` cannot reach 1 (the bins lose information).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from genzoo.errors import DataError

__all__ = ["beta_vae_metric", "discrete_mutual_information", "mutual_information_gap"]


def _as_numpy(z: Any) -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().double().numpy()
    return np.asarray(z, dtype=np.float64)


def _check_factors(factors: np.ndarray, n: int) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or len(factors) != n:
        raise DataError(f"factors must be (n, K) factor classes for the {n} latent codes, "
                        f"got shape {factors.shape}")  # fmt: skip
    if not np.issubdtype(factors.dtype, np.integer) or factors.min() < 0:
        raise DataError("factors must hold non-negative integer classes (level numbers)")
    return factors.astype(np.int64)


def discretize(z: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each column of ``z`` cut into ``bins`` equal-width bins over its range: int64 ``(n, d)``
    (a constant column falls in bin 0)."""
    z = _as_numpy(z)
    low, high = z.min(axis=0), z.max(axis=0)
    width = np.where(high > low, high - low, 1.0)
    return np.clip(((z - low) / width * bins).astype(np.int64), 0, bins - 1)


def discrete_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """``I(a; b)`` in nats of two integer sequences, from their empirical joint distribution."""
    a = np.unique(np.asarray(a), return_inverse=True)[1].reshape(-1)
    b = np.unique(np.asarray(b), return_inverse=True)[1].reshape(-1)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / outer[nz])))


def _entropy(v: np.ndarray) -> float:
    p = np.bincount(np.unique(v, return_inverse=True)[1].reshape(-1)) / len(v)
    return float(-np.sum(p * np.log(p)))


def mutual_information_gap(
    z: Any, factors: np.ndarray, bins: int = 20, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """MIG (Chen et al. 2018) of the codes ``z`` ``(n, d)`` against the factor classes
    ``factors`` ``(n, K)``: ``{"mig": mean gap, "mig_per_factor": {name: gap},
    "mutual_information": (K, d) nats}``. Factors with one value (zero entropy) are left out.
    Needs ``d >= 2``."""
    z = _as_numpy(z)
    if z.ndim != 2 or z.shape[1] < 2:
        raise DataError(f"MIG needs codes (n, d) with d >= 2, got shape {z.shape}")
    factors = _check_factors(factors, len(z))
    names = list(names or [f"factor{k}" for k in range(factors.shape[1])])
    codes = discretize(z, bins)
    mi = np.array(
        [[discrete_mutual_information(codes[:, j], f) for j in range(z.shape[1])]
         for f in factors.T]
    )  # fmt: skip
    gaps: dict[str, float] = {}
    for k, f in enumerate(factors.T):
        h = _entropy(f)
        if h <= 0:
            continue
        top = np.sort(mi[k])[::-1]
        gaps[names[k]] = float((top[0] - top[1]) / h)
    if not gaps:
        raise DataError("every factor has a single value: MIG needs factors that vary")
    return {"mig": float(np.mean(list(gaps.values()))), "mig_per_factor": gaps,
            "mutual_information": mi.tolist()}  # fmt: skip


def beta_vae_metric(
    encode: Callable[[np.ndarray], Any],
    factor_sizes: Sequence[int],
    n_train: int = 500,
    n_test: int = 300,
    pairs: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """The beta-VAE metric (Higgins et al. 2017) of the representation ``encode``.

    ``encode(classes)`` maps factor classes ``(m, K)`` (int64, ``classes[:, k] <
    factor_sizes[k]``) to the codes ``(m, d)`` of the examples with those factors (for
    sprites: render or read the images, then take the encoder's means). Each of the
    ``n_train + n_test`` points averages ``|z1 - z2|`` over ``pairs`` pairs sharing one
    factor, drawn uniformly among the factors with more than one value. Returns
    ``{"beta_vae_accuracy": held-out accuracy, "beta_vae_train_accuracy", "chance"}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sizes = np.asarray(factor_sizes, dtype=np.int64)
    varying = np.flatnonzero(sizes > 1)
    if len(varying) < 2:
        raise DataError("the beta-VAE metric needs at least 2 factors with several values")
    if min(n_train, n_test, pairs) < 1:
        raise DataError("n_train, n_test and pairs must be positive")
    rng = np.random.default_rng(seed)
    total = n_train + n_test
    fixed = rng.choice(varying, size=total)
    first = rng.integers(0, sizes, size=(total, pairs, len(sizes)))
    second = rng.integers(0, sizes, size=(total, pairs, len(sizes)))
    rows = np.arange(total)
    second[rows, :, fixed] = first[rows, :, fixed]  # the pair shares factor y
    both = np.concatenate([first.reshape(-1, len(sizes)), second.reshape(-1, len(sizes))])
    z = _as_numpy(encode(both))
    if z.ndim != 2 or len(z) != len(both):
        raise DataError(f"encode must return (m, d) codes for m = {len(both)} factor rows, "
                        f"got shape {z.shape}")  # fmt: skip
    z1, z2 = z[: len(z) // 2], z[len(z) // 2 :]
    features = np.abs(z1 - z2).reshape(total, pairs, -1).mean(axis=1)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(features[:n_train], fixed[:n_train])
    return {
        "beta_vae_accuracy": float(classifier.score(features[n_train:], fixed[n_train:])),
        "beta_vae_train_accuracy": float(classifier.score(features[:n_train], fixed[:n_train])),
        "chance": 1.0 / len(varying),
    }


def encode_means(
    model: Any, x: torch.Tensor, batch_size: int = 512, levels: int | None = None
) -> np.ndarray:
    """A model's codes of ``x`` (its ``encode``: a VAE's posterior means), in batches,
    float64 ``(n, latent_dim)``. ``levels``: ``x`` holds that many integer levels, which a
    continuous model (a Gaussian decoder, trained on dequantised data) sees as the bin
    centres, the scale it was trained on."""
    from genzoo.metrics.likelihood import to_model_scale

    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = to_model_scale(x[start : start + batch_size], model, levels)
            batch = batch.to(device=model.device, dtype=model.dtype)
            parts.append(_as_numpy(model.encode(batch)))
    return np.concatenate(parts)


def sprites_disentanglement(
    model: Any,
    dataset: str = "sprites",
    n: int = 5000,
    seed: int = 0,
    n_train: int = 300,
    n_test: int = 200,
    pairs: int = 32,
) -> dict[str, Any]:
    """The beta-VAE metric and MIG of ``model.encode`` (a VAE's posterior means) on
    ``sprites`` or the original dSprites file (``dataset``): MIG over the first ``n``
    examples of the test split (``seed`` picks it), the beta-VAE metric over pairs drawn from
    the whole factor grid (as in Higgins et al. 2017) with ``n_train``/``n_test`` points of
    ``pairs`` pairs each. Returns ``{"mig", "mig_per_factor", "beta_vae_accuracy",
    "beta_vae_train_accuracy", "chance", "n_mig", "latent_dim"}``."""
    from genzoo.data import open_dataset
    from genzoo.data.sprites import FACTOR_NAMES, SpritesDataset

    data = open_dataset(dataset, split="test", n=n, seed=seed)
    if not isinstance(data, SpritesDataset):
        raise DataError(f"{dataset} has no known factors: disentanglement is measured on "
                        "sprites or the original dSprites file")  # fmt: skip
    levels = 2  # binary images: a continuous model saw them dequantised, (x + u) / 2
    z = encode_means(model, data.images(np.arange(len(data))), levels=levels)
    result = {"latent_dim": int(z.shape[1]), "n_mig": int(len(z))}
    mig = mutual_information_gap(z, data.factor_classes, names=FACTOR_NAMES)
    result.update({k: v for k, v in mig.items() if k != "mutual_information"})
    sizes = data.factor_sizes

    def encode(classes: np.ndarray) -> np.ndarray:
        index = np.ravel_multi_index(tuple(np.asarray(classes).T), sizes)
        return encode_means(model, data.grid_images(index), levels=levels)

    result.update(beta_vae_metric(encode, sizes, n_train, n_test, pairs, seed))
    return result
