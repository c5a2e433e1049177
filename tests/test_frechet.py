"""Tests of genzoo.metrics.frechet: the Gaussian Fréchet distance and the digits classifier."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from genzoo.data import load_dataset
from genzoo.errors import DataError
from genzoo.metrics.frechet import (
    _digits_with_labels,
    _load,
    cache_path,
    classifier_features,
    digits_classifier,
    digits_to_unit,
    feature_statistics,
    frechet_digits_distance,
    frechet_distance,
)

# ------------------------------------------------------------------------ Fréchet distance


def _random_gaussian(k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, k, generator=g, dtype=torch.float64)
    return torch.randn(k, generator=g, dtype=torch.float64), a @ a.T / k + 0.1 * torch.eye(k)


def test_frechet_distance_of_a_gaussian_with_itself_is_zero() -> None:
    mu, cov = _random_gaussian(20, seed=1)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians() -> None:
    g = torch.Generator().manual_seed(2)
    mu1, mu2 = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(2))
    v1, v2 = (torch.rand(5, generator=g, dtype=torch.float64) + 0.1 for _ in range(2))
    expected = float((mu1 - mu2).pow(2).sum() + (v1.sqrt() - v2.sqrt()).pow(2).sum())
    got = frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2))
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_frechet_distance_is_symmetric_and_handles_singular_covariances() -> None:
    mu1, cov1 = _random_gaussian(8, seed=3)
    mu2, _ = _random_gaussian(8, seed=4)
    low_rank = torch.zeros(8, 8, dtype=torch.float64)
    low_rank[:3, :3] = cov1[:3, :3]  # rank 3: sqrtm would need regularising
    d12 = frechet_distance(mu1, cov1, mu2, low_rank)
    d21 = frechet_distance(mu2, low_rank, mu1, cov1)
    assert np.isfinite(d12) and d12 == pytest.approx(d21, rel=1e-8)
    # the scipy route (sqrtm of the product, eps fallback, real part) agrees
    import scipy.linalg

    c1, c2 = cov1.numpy(), low_rank.numpy()
    covmean = scipy.linalg.sqrtm(c1 @ c2)
    if not np.isfinite(covmean).all():
        offset = np.eye(8) * 1e-6
        covmean = scipy.linalg.sqrtm((c1 + offset) @ (c2 + offset))
    ref = float(((mu1 - mu2) ** 2).sum()) + np.trace(c1 + c2 - 2 * covmean.real)
    assert d12 == pytest.approx(ref, rel=1e-5, abs=1e-5)


def test_frechet_distance_rejects_mismatched_shapes() -> None:
    mu, cov = _random_gaussian(4, seed=5)
    with pytest.raises(DataError):
        frechet_distance(mu, cov, mu[:3], cov[:3, :3])


# ---------------------------------------------------------------------- digits classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One classifier trained from scratch in a fresh cache folder, with its training time."""
    cache = tmp_path_factory.mktemp("frechet_cache")
    start = time.perf_counter()
    model = digits_classifier(cache)
    return cache, model, time.perf_counter() - start


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_classifier_is_accurate_on_the_test_split(trained) -> None:
    _, model, _ = trained
    x, y = _digits_with_labels("test")
    with torch.no_grad():
        accuracy = float((model(digits_to_unit(x)).argmax(dim=1) == y).double().mean())
    assert accuracy > 0.9


def test_classifier_cache_is_used(trained) -> None:
    cache, model, train_seconds = trained
    path = cache_path(cache)
    assert path.is_file() and path.suffix == ".safetensors"
    assert path.name.startswith("digits-classifier-")
    start = time.perf_counter()
    again = digits_classifier(cache)
    assert time.perf_counter() - start < train_seconds / 5
    assert again is not model
    for k, v in _state(model).items():
        assert torch.equal(v, again.state_dict()[k])


def _same_file_content(a, b) -> None:
    """Equal tensors and metadata (safetensors orders metadata keys at random, so the bytes of
    two writes of the same content may differ in the header)."""
    from safetensors import safe_open

    with safe_open(str(a), framework="pt") as fa, safe_open(str(b), framework="pt") as fb:
        assert fa.metadata() == fb.metadata()
        assert set(fa.keys()) == set(fb.keys())
        for key in fa.keys():  # noqa: SIM118 (safe_open API)
            assert torch.equal(fa.get_tensor(key), fb.get_tensor(key)), key


def test_corrupt_cache_is_retrained_identically_and_replaced(trained, tmp_path) -> None:
    """Also the determinism check: retraining in another folder gives bit-identical weights."""
    cache, model, _ = trained
    good = cache_path(cache).read_bytes()
    path = cache_path(tmp_path)
    path.write_bytes(good[:100])  # truncated
    before = torch.get_rng_state()
    retrained = digits_classifier(tmp_path)
    assert torch.equal(before, torch.get_rng_state())  # the global RNG is left alone
    for k, v in _state(model).items():
        assert torch.equal(v, retrained.state_dict()[k])
    _same_file_content(path, cache_path(cache))
    # other kinds of damage are detected as well (without paying for another training)
    path.write_text("not a safetensors file")
    assert _load(path) is None
    path.write_bytes(good.replace(b"conv.weight", b"conv.wrongs"))
    assert _load(path) is None


def test_classifier_features_accept_both_shapes(trained) -> None:
    _, model, _ = trained
    x = digits_to_unit(load_dataset("digits", "val", n=10))
    f_img = classifier_features(x, model)
    f_flat = classifier_features(x.reshape(10, 64), model)
    assert f_img.shape == (10, 64) and f_img.dtype == torch.float64
    assert torch.equal(f_img, f_flat)
    with pytest.raises(DataError):
        classifier_features(torch.zeros(3, 7), model)
    with pytest.raises(DataError):
        feature_statistics(f_img[:1])


def test_frechet_digits_distance_orders_real_noise_and_shuffled(trained) -> None:
    cache, _, _ = trained
    train = digits_to_unit(load_dataset("digits", "train"))
    test = digits_to_unit(load_dataset("digits", "test"))
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(train.shape, generator=g, dtype=train.dtype)
    shuffled = train.reshape(len(train), 64)[:, torch.randperm(64, generator=g)]
    d_real = frechet_digits_distance(test, train, cache_dir=cache)
    d_noise = frechet_digits_distance(noise, train, cache_dir=cache)
    d_shuffled = frechet_digits_distance(shuffled, train, cache_dir=cache)
    assert d_real < 10
    assert d_noise > 10 * d_real and d_shuffled > 10 * d_real
