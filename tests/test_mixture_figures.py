"""Figures of genzoo.figures.mixtures: files written, non-empty PNGs, numbers checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import genzoo
from genzoo.figures import mixtures as fig

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def fitted():
    x = genzoo.load_dataset("8gaussians", split="train", n=600, seed=0)
    gmm = genzoo.create("gmm", data=x, n_components=4).fit(x, max_iter=20)
    deep = genzoo.create(
        "deep-gmm", data=x, n_components=[2, 2], latent_dims=[1, 1], strict_dims=False
    )
    return x, gmm, deep


def _is_png(path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:4] == PNG


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical"])
def test_components_are_full_covariances(covariance_type):
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    model = genzoo.create("gmm", data=x, n_components=3, covariance_type=covariance_type)
    weights, means, covs = fig.mixture_components(model)
    assert covs.shape == (3, 2, 2) and means.shape == (3, 2)
    # the mixture density rebuilt from the components equals the model's
    dens = sum(
        w * multivariate_normal(m, c).pdf(x.numpy())
        for w, m, c in zip(weights, means, covs, strict=True)
    )
    np.testing.assert_allclose(np.log(dens), model.log_prob(x).numpy(), rtol=1e-4, atol=1e-4)


def test_ellipses_and_responsibilities_are_written(fitted, tmp_path):
    x, gmm, deep = fitted
    for name, model in (("gmm", gmm), ("deep", deep)):
        assert _is_png(fig.plot_component_ellipses(model, x, tmp_path / f"{name}_ell.png"))
        assert _is_png(fig.plot_responsibilities(model, x, tmp_path / f"{name}_resp.png"))
    with pytest.raises(ValueError, match="2-D"):
        fig.plot_component_ellipses(gmm, torch.zeros(5, 3), tmp_path / "no.png")


def test_information_criteria_curve_is_written(fitted, tmp_path):
    x, _, _ = fitted
    bic, aic = {}, {}
    for k in (1, 2, 4, 8):
        model = genzoo.create("gmm", data=x, n_components=k).fit(x, max_iter=30)
        bic[k], aic[k] = model.bic(x), model.aic(x)
    assert min(bic, key=bic.get) == 8  # eight separated modes
    assert _is_png(fig.plot_information_criteria(bic, tmp_path / "bic.png", aic=aic))
