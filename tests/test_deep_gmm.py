"""Deep Gaussian mixture (Viroli & McLachlan 2019): exact path-sum density and its fitting."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import genzoo
from genzoo.models.deep_gmm import DeepGaussianMixture, paths

TWO_D = {"n_components": [3, 2], "latent_dims": [1, 1], "strict_dims": False}


@pytest.fixture(scope="module")
def eight() -> tuple[torch.Tensor, torch.Tensor]:
    train = genzoo.load_dataset("8gaussians", split="train", n=1500, seed=0)
    test = genzoo.load_dataset("8gaussians", split="test", n=1500, seed=0)
    return train, test


def _perturbed(model: DeepGaussianMixture, scale: float = 0.3) -> DeepGaussianMixture:
    """Move every parameter off its initial value, so no term can cancel by accident."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def test_path_sum_equals_brute_force_mixture():
    x = torch.randn(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model = DeepGaussianMixture((4,), n_components=[3, 2], latent_dims=[2, 1]).double()
    model.initialize(x)
    _perturbed(model)
    layers = [[t.detach().numpy() for t in model.layer(i)] for i in range(model.n_layers)]
    terms = []
    for path in paths(model.n_components):  # (s_1, s_2): compose from the top down
        mean, cov, log_w = np.zeros(1), np.eye(1), 0.0
        for i in reversed(range(model.n_layers)):
            log_pi, eta, lam, psi = (a[path[i]] for a in layers[i])
            mean = eta + lam @ mean
            cov = lam @ cov @ lam.T + np.diag(psi)
            log_w += log_pi
        terms.append(log_w + multivariate_normal(mean, cov).logpdf(x.numpy()))
    expected = logsumexp(np.stack(terms), axis=0)
    assert len(terms) == 6
    got = model.log_prob(x).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_density_integrates_to_one_on_a_grid(eight):
    train, _ = eight
    model = genzoo.create("deep-gmm", data=train, **TWO_D).double()
    for _ in range(3):
        model.fit_step(train.double())
    axis = torch.linspace(-7, 7, 561, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    density = model.log_prob(grid).detach().exp().reshape(len(axis), len(axis))
    mass = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis)
    assert abs(float(mass) - 1.0) < 1e-3


def _gaussian_log_likelihood(train: torch.Tensor, test: torch.Tensor) -> float:
    """Held-out mean log-likelihood of the maximum-likelihood single Gaussian."""
    mean, cov = train.double().mean(0), torch.cov(train.double().T)
    return float(torch.distributions.MultivariateNormal(mean, cov).log_prob(test.double()).mean())


def test_fitted_model_beats_one_gaussian_held_out(eight):
    train, test = eight
    model = genzoo.create("deep-gmm", data=train, **{**TWO_D, "n_components": [4, 2]})
    genzoo.Trainer(steps=10, progress=False).fit(model, train)
    assert model.n_iter_ == 10 and math.isfinite(float(model.log_likelihood_))
    with torch.no_grad():
        fitted = float(model.log_prob(test).mean())
    assert fitted > _gaussian_log_likelihood(train, test) + 1.0  # measured: -2.83 vs -4.25


def test_stochastic_em_improves_held_out_from_a_poor_start():
    train = genzoo.load_dataset("moons", split="train", n=1500, seed=0)
    test = genzoo.load_dataset("moons", split="test", n=1500, seed=0)
    model = _perturbed(genzoo.create("deep-gmm", data=train, **TWO_D), scale=0.5)
    with torch.no_grad():
        before = float(model.log_prob(test).mean())
        for _ in range(15):
            model.fit_step(train)
        after = float(model.log_prob(test).mean())
    assert after > before + 1.0  # measured: -4.4 -> -2.7
    assert after > _gaussian_log_likelihood(train, test) + 0.3  # measured: -3.30


def test_one_layer_is_monotone_em_for_factor_analysers():
    x = genzoo.load_dataset("moons", split="train", n=800, seed=0).double()
    model = _perturbed(genzoo.create("deep-gmm", data=x, n_components=[5], latent_dims=[1]))
    model = model.double()
    with torch.no_grad():
        lls = [model.fit_step(x)["log_likelihood"] for _ in range(15)]
    assert all(b >= a - 1e-10 for a, b in zip(lls, lls[1:], strict=False)), lls
    assert lls[-1] > lls[0] + 0.1


def test_gradient_fit_improves_held_out(eight):
    train, test = eight
    model = genzoo.create("deep-gmm", data=train, fit="gradient", **TWO_D)
    assert model.players == ("model",)
    model = _perturbed(model, scale=0.5)
    with torch.no_grad():
        before = float(model.log_prob(test).mean())
    genzoo.Trainer(steps=60, batch_size=256, lr=1e-2, progress=False).fit(model, train)
    with torch.no_grad():
        assert float(model.log_prob(test).mean()) > before + 0.5


def test_samples_follow_the_model():
    x = torch.randn(400, 3, generator=torch.Generator().manual_seed(2)) * torch.tensor([3, 1, 0.5])
    model = genzoo.create("deep-gmm", data=x, n_components=[2, 2], latent_dims=[2, 1]).double()
    samples = model.sample(40_000, generator=torch.Generator().manual_seed(0))
    log_w, mean, cov = model.prior(0)
    w = log_w.exp()
    mix_mean = w @ mean
    centred = mean - mix_mean
    mix_cov = (w[:, None, None] * (cov + centred[:, :, None] * centred[:, None, :])).sum(0)
    assert torch.allclose(samples.mean(0), mix_mean, atol=0.08)
    assert torch.allclose(torch.cov(samples.T), mix_cov, atol=0.15, rtol=0.05)


def test_latent_dimensions_must_decrease():
    with pytest.raises(ValueError, match="r_1 > r_2"):
        DeepGaussianMixture((4,), n_components=[2, 2], latent_dims=[2, 2])
    with pytest.raises(ValueError, match="r_1"):
        DeepGaussianMixture((2,), n_components=[2, 2], latent_dims=[2, 1], strict_dims=False)
    model = DeepGaussianMixture((8,), n_components=[2, 2, 2])
    assert model.latent_dims == [4, 2, 1] and model.n_paths == 8
    assert len(list(itertools.product(*map(range, model.n_components)))) == model.n_paths
