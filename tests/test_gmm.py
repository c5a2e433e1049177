"""Gaussian mixture fitted by EM: the maths, agreement with scikit-learn, and the API."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import genzoo
from genzoo.errors import DataError, TrainingDiverged
from genzoo.models import gmm_math as gm
from genzoo.models.gmm_files import fit_gmm_memmap
from genzoo.models.mixtures import GaussianMixture

COVS = ["full", "diag", "tied", "spherical"]

TRUE_MEANS = torch.tensor([[-4.0, 0.0], [3.0, 3.0], [2.0, -4.0]], dtype=torch.float64)
TRUE_COVS = torch.tensor(
    [[[1.0, 0.5], [0.5, 0.8]], [[0.5, -0.2], [-0.2, 0.4]], [[0.3, 0.0], [0.0, 1.2]]],
    dtype=torch.float64,
)
TRUE_WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)


def toy_mixture(n: int, seed: int = 0) -> torch.Tensor:
    """n points (float64) from a 3-component 2-D Gaussian mixture with known parameters."""
    g = torch.Generator().manual_seed(seed)
    comp = torch.multinomial(TRUE_WEIGHTS, n, replacement=True, generator=g)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    chol = torch.linalg.cholesky(TRUE_COVS)
    return TRUE_MEANS[comp] + (chol[comp] @ z.unsqueeze(-1)).squeeze(-1)


def fitted(cov: str, n: int = 1500, k: int = 3, steps: int = 50, **kw) -> GaussianMixture:
    x = toy_mixture(n)
    model = GaussianMixture((2,), n_components=k, covariance_type=cov, tol=1e-8, **kw).double()
    model.initialize(x)
    return model.fit(x, max_iter=steps)


def full_covariances(model: GaussianMixture) -> torch.Tensor:
    """The model's covariances as k full (d,d) matrices, whatever its covariance type."""
    cov, (k, d) = model.covariances_, model.means_.shape
    if model.covariance_type == "diag":
        return torch.diag_embed(cov)
    if model.covariance_type == "tied":
        return cov.expand(k, d, d)
    if model.covariance_type == "spherical":
        return cov[:, None, None] * torch.eye(d, dtype=cov.dtype)
    return cov


def mixture_moments(model: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and covariance (d,d) of the whole mixture."""
    w, mu = model.weights_, model.means_
    cov = full_covariances(model)
    mean = w @ mu
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    return mean, second - torch.outer(mean, mean)


# -- EM maths -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,slack", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("cov", COVS)
def test_em_log_likelihood_never_decreases(cov, dtype, slack):
    x = toy_mixture(1500).to(dtype)
    # From random responsibilities all tied components start (almost) equal, a symmetric
    # fixed point EM barely leaves; a k-means++ start already sits near the optimum.
    init, progress = ("kmeans++", 0.005) if cov == "tied" else ("random", 0.05)
    model = GaussianMixture((2,), n_components=4, covariance_type=cov, init=init, tol=0)
    model = model.to(dtype)
    model.initialize(x)
    lls = [model.fit_step(x)["log_likelihood"] for _ in range(30)]
    diffs = np.diff(lls)
    assert diffs.min() >= -slack, diffs.min()
    assert lls[-1] > lls[0] + progress  # EM did make progress from the start


@pytest.mark.parametrize("cov", COVS)
def test_log_prob_matches_scipy(cov):
    from scipy.stats import multivariate_normal

    model = fitted(cov, steps=5)
    x = toy_mixture(50, seed=1)
    cov_mats = full_covariances(model)
    dens = sum(
        float(w) * multivariate_normal(m.numpy(), c.numpy()).pdf(x.numpy())
        for w, m, c in zip(model.weights_, model.means_, cov_mats, strict=True)
    )
    np.testing.assert_allclose(model.log_prob(x).numpy(), np.log(dens), rtol=1e-10)


@pytest.mark.parametrize("cov", COVS)
def test_log_prob_integrates_to_one(cov):
    model = fitted(cov, steps=10)
    ticks = torch.linspace(-12, 12, 481, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    cell = float(ticks[1] - ticks[0]) ** 2
    total = float(model.log_prob(grid).exp().sum()) * cell
    assert total == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("cov", COVS)
def test_sample_moments_match_the_mixture(cov):
    model = fitted(cov, steps=10)
    samples = model.sample(200_000, generator=torch.Generator().manual_seed(0))
    mean, covariance = mixture_moments(model)
    assert samples.shape == (200_000, 2)
    torch.testing.assert_close(samples.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(samples.T.cov(), covariance, atol=0.08, rtol=0.01)


def test_sample_is_reproducible_and_shaped_like_the_data():
    x = torch.rand(300, 1, 3, 3)
    model = genzoo.create("gmm", data=x, n_components=2, covariance_type="diag")
    a = model.sample(7, generator=torch.Generator().manual_seed(3))
    b = model.sample(7, generator=torch.Generator().manual_seed(3))
    assert a.shape == (7, 1, 3, 3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert model.log_prob(x).shape == (300,)


def test_recovers_true_parameters():
    x = toy_mixture(6000, seed=2)
    model = GaussianMixture((2,), n_components=3, tol=1e-6).double()
    model.initialize(x)
    model.fit(x, max_iter=200)
    assert model.converged
    dist = torch.cdist(model.means_, TRUE_MEANS)
    rows, cols = linear_sum_assignment(dist.numpy())
    torch.testing.assert_close(model.means_[rows], TRUE_MEANS[cols], atol=0.1, rtol=0)
    torch.testing.assert_close(model.weights_[rows], TRUE_WEIGHTS[cols], atol=0.02, rtol=0)
    torch.testing.assert_close(model.covariances_[rows], TRUE_COVS[cols], atol=0.1, rtol=0.1)


@pytest.mark.parametrize("cov", COVS)
def test_chunked_e_step_equals_one_chunk(cov):
    x = toy_mixture(1000)
    whole = GaussianMixture((2,), n_components=3, covariance_type=cov, chunk_size=10**6)
    chunked = GaussianMixture((2,), n_components=3, covariance_type=cov, chunk_size=300)
    whole, chunked = whole.double(), chunked.double()
    whole.initialize(x)
    chunked.initialize(x)  # k-means++ then Lloyd, also chunked: the same start
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(chunked.state_dict()[name], value)
    for _ in range(3):
        a, b = whole.fit_step(x), chunked.fit_step(x)
        assert a["log_likelihood"] == pytest.approx(b["log_likelihood"], rel=1e-12)
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(chunked.state_dict()[name], value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cov", COVS)
def test_float32_far_from_origin_is_accurate(cov):
    # Data at 1e4 with unit spread: raw moments sum x x^T would cancel badly in float32.
    x = toy_mixture(2000) + 1e4
    m32 = GaussianMixture((2,), n_components=3, covariance_type=cov).float()
    m64 = GaussianMixture((2,), n_components=3, covariance_type=cov).double()
    m64.initialize(x)
    m32.load_state_dict(m64.state_dict())
    for _ in range(10):
        a = m32.fit_step(x.float())["log_likelihood"]
        b = m64.fit_step(x)["log_likelihood"]
    assert a == pytest.approx(b, abs=2e-4)


def test_pure_functions_shapes():
    x, means = torch.randn(5, 3), torch.randn(4, 3)
    cov = torch.eye(3).expand(4, 3, 3) * 2.0
    full = gm.gaussian_log_prob_full(x, means, gm.precision_cholesky_full(cov))
    diag = gm.gaussian_log_prob_diag(x, means, gm.precision_cholesky_diag(torch.full((4, 3), 2.0)))
    assert full.shape == diag.shape == (5, 4)
    torch.testing.assert_close(full, diag)


# -- agreement with scikit-learn ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cov", COVS)
def test_held_out_likelihood_at_least_sklearn(cov, dtype):
    x_train, x_test = toy_mixture(2000, seed=3), toy_mixture(1000, seed=4)
    k, tol, reg, max_iter = 5, 1e-4, 1e-6, 100
    model = GaussianMixture((2,), n_components=k, covariance_type=cov, tol=tol, reg_covar=reg)
    model = model.to(dtype)
    model.initialize(x_train.to(dtype))
    sk = SkGaussianMixture(
        k, covariance_type=cov, tol=tol, reg_covar=reg, max_iter=max_iter, **model.sklearn_init()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(x_train.to(dtype).double().numpy())
    model.fit(x_train.to(dtype), max_iter=max_iter)
    ours = float(model.log_prob(x_test.to(dtype)).double().mean())
    theirs = float(sk.score(x_test.numpy()))
    assert ours >= theirs - 1e-3
    if dtype == torch.float64:  # the same algorithm from the same start: the same answer
        assert ours == pytest.approx(theirs, abs=1e-6)
        assert model.n_parameters == sk._n_parameters()
        assert model.bic(x_test) == pytest.approx(sk.bic(x_test.numpy()), rel=1e-6)
        assert model.aic(x_test) == pytest.approx(sk.aic(x_test.numpy()), rel=1e-6)
        np.testing.assert_allclose(
            model.predict_proba(x_test).numpy(), sk.predict_proba(x_test.numpy()), atol=1e-5
        )


# -- the model protocol --------------------------------------------------------------------------
def test_registered_with_the_protocol():
    info = {m.name: m for m in genzoo.list_models()}["gmm"]
    assert (info.family, info.density) == ("mixture", "exact")
    assert GaussianMixture.players == ()
    assert "Dempster" in GaussianMixture.__doc__ and "Arthur" in GaussianMixture.__doc__


def test_create_fit_step_loop_until_converged():
    x = toy_mixture(1000).float()
    model = genzoo.create("gmm", data=x, n_components=3, tol=1e-4)
    for _ in range(200):
        out = model.fit_step(x)
        if model.converged:
            break
    assert model.converged and out["converged"] == 1.0
    assert set(out) >= {"log_likelihood", "improvement"}
    assert model.loss(x).item() == pytest.approx(-model.log_prob(x).mean().item())


def test_fit_step_initialises_a_fresh_model():
    x = toy_mixture(500)
    model = GaussianMixture((2,), n_components=3).double()
    assert not model.initialized_
    model.fit_step(x)
    assert model.initialized_ and int(model.n_iter_) == 1


def test_n_init_keeps_the_best_start():
    x = toy_mixture(800)
    lls = []
    for n_init in (1, 4):
        model = GaussianMixture((2,), n_components=6, init="random", n_init=n_init).double()
        model.initialize(x)
        lls.append(model.fit_step(x)["log_likelihood"])
    assert lls[1] >= lls[0]


@pytest.mark.parametrize("cov", COVS)
def test_save_load_round_trip(cov, tmp_path):
    x = toy_mixture(500).float()
    model = genzoo.create("gmm", data=x, n_components=3, covariance_type=cov)
    for _ in range(3):
        model.fit_step(x)
    model.save(str(tmp_path))
    loaded = genzoo.load(str(tmp_path))
    assert isinstance(loaded, GaussianMixture) and loaded.covariance_type == cov
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))
    assert int(loaded.n_iter_) == 3
    # EM resumes where it stopped
    assert loaded.fit_step(x)["log_likelihood"] == pytest.approx(
        model.fit_step(x)["log_likelihood"], rel=1e-6
    )


# -- n_components="auto" -----------------------------------------------------------------------
def test_auto_chooses_k_by_bic_and_config_records_it(tmp_path):
    x = toy_mixture(1500).float()
    model = genzoo.create("gmm", data=x, n_components="auto", k_range=[1, 5])
    assert model.n_components == 3 and model.config["n_components"] == 3  # the true K
    assert min(model.bic_scores_, key=model.bic_scores_.get) == 3
    assert sorted(model.bic_scores_) == [1, 2, 3, 4, 5]
    # the kept parameters are those of the K=3 fit whose BIC was recorded
    assert model.bic(x) == pytest.approx(model.bic_scores_[3], rel=1e-5)
    assert model.weights_.shape == (3,) and model.covariances_.shape == (3, 2, 2)
    model.save(str(tmp_path))
    loaded = genzoo.load(str(tmp_path))
    assert loaded.n_components == 3 and loaded.config == model.config
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))


def test_auto_on_image_shaped_examples_chooses_as_on_flat_vectors():
    """Each candidate's BIC is taken on the examples in their own shape (it was taken on
    flat vectors, which an image model refuses: every K was skipped)."""
    x = toy_mixture(1500).float()
    flat = genzoo.create("gmm", data=x, n_components="auto", k_range=[1, 5])
    image = genzoo.create("gmm", data=x.reshape(-1, 1, 2, 1), n_components="auto", k_range=[1, 5])
    assert image.n_components == flat.n_components == 3
    assert image.bic_scores_ == pytest.approx(flat.bic_scores_)


def test_auto_before_initialisation_and_bad_k_range():
    model = GaussianMixture((2,), n_components="auto", k_range=(2, 4))
    assert model.weights_.shape == (4,)  # placeholder at the top of the range
    with pytest.raises(ValueError, match="k_range"):
        GaussianMixture((2,), n_components="auto", k_range=(3, 1))
    with pytest.raises(ValueError, match="'auto'"):
        GaussianMixture((2,), n_components="many")


@pytest.fixture
def one_thread():
    """Tiny mini-batches run fastest on one thread (and do not stall on a loaded box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- online EM -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cov", COVS)
def test_online_em_on_a_stream_nears_batch_em(cov, one_thread):
    x_train, x_test = toy_mixture(10_000, seed=3), toy_mixture(2000, seed=4)
    batch = GaussianMixture((2,), n_components=3, covariance_type=cov, tol=1e-6).double()
    batch.initialize(x_train[:300])
    stream = GaussianMixture((2,), n_components=3, covariance_type=cov).double()
    stream.load_state_dict({k: v.clone() for k, v in batch.state_dict().items()})
    batch.fit(x_train, max_iter=200)
    steps = [stream.online_step(part) for part in x_train.split(200)]  # one pass, 50 updates
    assert int(stream.n_updates_) == 50
    assert steps[0]["step_size"] == pytest.approx(2**-0.6)
    assert steps[-1]["step_size"] == pytest.approx(51**-0.6)
    ours = float(stream.log_prob(x_test).mean())
    best = float(batch.log_prob(x_test).mean())
    assert best - 0.01 < ours <= best + 1e-3


def test_online_fit_step_is_a_pass_of_mini_batches(one_thread):
    x = toy_mixture(3000)
    model = GaussianMixture((2,), n_components=3, online=True, online_batch=500).double()
    model.initialize(x)
    out = model.fit_step(x)
    assert int(model.n_updates_) == 6 and int(model.n_iter_) == 1
    assert set(out) >= {"log_likelihood", "improvement", "converged"}
    with pytest.raises(ValueError, match="kappa"):
        GaussianMixture((2,), kappa=0.4)


def test_state_saved_before_online_em_still_loads():
    x = toy_mixture(300)
    model = GaussianMixture((2,), n_components=2).double()
    model.initialize(x)
    state = {k: v for k, v in model.state_dict().items() if k != "n_updates_"}
    fresh = GaussianMixture((2,), n_components=2).double()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.log_prob(x), model.log_prob(x))


# -- EM over a memory-mapped file ----------------------------------------------------------------
@pytest.mark.parametrize("cov", ["full", "spherical"])
def test_memmap_em_equals_in_memory_em(cov, tmp_path):
    x = toy_mixture(3000)
    path = tmp_path / "x.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(3000, 2))
    array[:] = x.numpy()
    array.flush()
    del array
    kw = {"covariance_type": cov, "tol": 1e-8}
    model = fit_gmm_memmap(path, 4, max_iter=20, chunk_rows=700, dtype=torch.float64, **kw)
    ref = GaussianMixture((2,), n_components=4, **kw).double()
    ref.initialize(x)
    ref.fit(x, max_iter=20)
    assert int(model.n_iter_) == int(ref.n_iter_) == 20
    assert float(model.log_likelihood_) == pytest.approx(float(ref.log_likelihood_), rel=1e-12)
    for name, value in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-10, atol=1e-12)


def test_memmap_initialises_on_a_spread_sample(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, toy_mixture(2000).float().numpy())
    model = fit_gmm_memmap(path, 3, max_iter=5, chunk_rows=512, init_rows=400)
    assert model.dtype == torch.float32 and int(model.n_iter_) >= 1
    assert float(model.log_likelihood_) > -3.6  # true mixture entropy is about -3.4 nats
    with pytest.raises(ValueError, match="online"):
        fit_gmm_memmap(path, 3, online=True)


# -- errors --------------------------------------------------------------------------------------
def test_bad_arguments_name_the_choices():
    with pytest.raises(ValueError, match="'full'.*'diag'"):
        GaussianMixture((2,), covariance_type="ful")
    with pytest.raises(ValueError, match="kmeans\\+\\+"):
        GaussianMixture((2,), init="kmeans")
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixture((2,), n_components=0)
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianMixture((2,), reg_covar=-1.0)
    with pytest.raises(ValueError, match="tol"):
        GaussianMixture((2,), tol=math.nan)


def test_more_components_than_examples():
    with pytest.raises(DataError, match="n_components=8 is more than the 5 examples"):
        genzoo.create("gmm", data=torch.randn(5, 2), n_components=8)


def test_wrong_input_dimensions():
    x = toy_mixture(100).float()
    model = genzoo.create("gmm", data=x, n_components=2)
    with pytest.raises(DataError, match="built for examples shaped \\(2,\\)"):
        model.log_prob(torch.randn(10, 3))
    with pytest.raises(DataError):
        model.fit_step(torch.randn(10))
    with pytest.raises(DataError, match="NaN"):
        model.initialize(torch.full((10, 2), math.nan))


def test_every_em_step_stops_on_a_non_finite_log_likelihood():
    """Batch, chunked and online EM share one guard: bad data are the data's fault
    (``DataError``), a broken fit is ``TrainingDiverged`` naming the step."""
    x = toy_mixture(300)
    bad = x.clone()
    bad[7, 0] = math.nan
    for fit in (
        lambda m, data: m.fit_step(data),
        lambda m, data: m.fit_step_chunks(data.split(100)),
        lambda m, data: m.online_step(data),
    ):
        model = GaussianMixture((2,), n_components=3).double()
        model.initialize(x)
        with pytest.raises(DataError, match="NaN"):
            fit(model, bad)
        model.means_.fill_(math.nan)  # a fit gone wrong on finite data
        with pytest.raises(TrainingDiverged, match="EM (step|update) 1: the log-likelihood"):
            fit(model, x)


def test_sampling_survives_a_covariance_rounded_out_of_positive_definite():
    """A component on two points at scale 1e6 (found by hypothesis): its float32 covariance
    is not positive definite after rounding; samples stay finite and on its line."""
    from genzoo.models.gmm_math import sampling_scale

    cov = torch.tensor([[[1e-6, 0.0], [0.0, 1e-6]],
                        [[9.7656e10, -7.8125e10], [-7.8125e10, 6.2500e10]]])  # fmt: skip
    scale = sampling_scale(cov)
    assert torch.isfinite(scale).all()
    assert torch.allclose(scale @ scale.transpose(-1, -2), cov, rtol=1e-3, atol=1e-3 * 1e11)
    assert torch.equal(scale[0], torch.linalg.cholesky(cov[0]))
