"""The score family: exact-score checks of the samplers and the ODE likelihood, trained checks.

Closed forms used: for data ``N(mu, s^2 I)`` perturbed by ``N(0, sigma^2 I)`` the optimal
denoising score is ``-(x - mu) / (s^2 + sigma^2)``; for a Gaussian mixture the noised density
is the mixture with every variance increased by ``sigma^2``.
"""

from __future__ import annotations

import math

import pytest
import torch

import genzoo
from genzoo.models.score import (
    DDPM,
    NCSN,
    VESDE,
    VPSDE,
    AnnealedLangevin,
    DDPMAncestral,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
    ScoreSDE,
    divergence,
    geometric_sigmas,
    rk4,
    rk45,
)

MEANS = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
WEIGHTS = torch.tensor([0.2, 0.3, 0.5])
STD = 0.3


def mixture_sample(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    return MEANS[k] + STD * torch.randn(n, 2, generator=g)


def mixture_score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact score of the mixture convolved with ``N(0, sigma^2 I)``, ``(n, 2), (n,)``."""
    var = (STD**2 + sigma**2)[:, None, None]  # (n, 1, 1)
    diff = MEANS[None] - x[:, None]  # (n, K, 2)
    logits = WEIGHTS.log()[None] - diff.square().sum(-1) / (2 * var[..., 0])
    resp = logits.softmax(-1)[..., None]  # (n, K, 1)
    return (resp * diff / var).sum(1)


def mode_weights(x: torch.Tensor) -> torch.Tensor:
    nearest = torch.cdist(x, MEANS).argmin(1)
    return torch.bincount(nearest, minlength=len(MEANS)).double() / len(x)


def mmd(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased squared MMD with a sum of RBF kernels (bandwidths 0.5, 1, 2, 4)."""

    def k(a, b):
        d2 = torch.cdist(a, b).square()
        return sum(torch.exp(-d2 / (2 * h**2)) for h in (0.5, 1.0, 2.0, 4.0))

    n, m = len(x), len(y)
    kxx = (k(x, x).sum() - k(x, x).diagonal().sum()) / (n * (n - 1))
    kyy = (k(y, y).sum() - k(y, y).diagonal().sum()) / (m * (m - 1))
    return float(kxx + kyy - 2 * k(x, y).mean())


def gaussian_score(mu: torch.Tensor, s: float, sde):
    """Exact score of ``p_t`` for data ``N(mu, s^2 I)`` under ``sde``: a function of (x, t)."""

    def score(x, t):
        m, sigma = sde.marginal(t)
        var = (m**2 * s**2 + sigma**2)[:, None]
        return -(x - m[:, None] * mu) / var

    return score


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, s: float) -> torch.Tensor:
    d = x.shape[1]
    return -0.5 * ((x - mu) / s).square().sum(1) - d * (math.log(s) + 0.5 * math.log(2 * math.pi))


# -- ODE solvers and divergence --------------------------------------------------------------
def test_rk4_and_rk45_solve_linear_ode():
    y0 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    exact = y0 * math.exp(-3.0)
    y4, nfe4 = rk4(lambda t, y: -y, y0, 0.0, 3.0, 30)
    y45, nfe45 = rk45(lambda t, y: -y, y0, 0.0, 3.0, rtol=1e-8, atol=1e-10)
    assert nfe4 == 120
    assert torch.allclose(y4, exact, rtol=1e-5)
    assert torch.allclose(y45, exact, rtol=1e-6)
    back, _ = rk45(lambda t, y: -y, exact, 3.0, 0.0, rtol=1e-8, atol=1e-10)  # backwards in time
    assert torch.allclose(back, y0, rtol=1e-6)


def test_divergence_exact_and_hutchinson_match_jacobian_trace():
    a = torch.randn(5, 5, dtype=torch.float64)

    def f(x):
        return torch.tanh(x @ a)

    x = torch.randn(3, 5, dtype=torch.float64)
    jac = torch.stack(
        [torch.autograd.functional.jacobian(f, x[i : i + 1])[0, :, 0] for i in range(3)]
    )
    trace = jac.diagonal(dim1=1, dim2=2).sum(1)
    assert torch.allclose(divergence(f, x)[1], trace)
    probes = torch.randint(0, 2, (4000, 3, 5), dtype=torch.float64) * 2 - 1
    estimates = torch.stack([divergence(f, x, v)[1] for v in probes[:400]])
    assert torch.allclose(estimates.mean(0), trace, atol=4 * estimates.std(0).max() / 20)


# -- samplers driven by exact scores ---------------------------------------------------------
def test_annealed_langevin_with_exact_score_recovers_mixture_modes_and_weights():
    # step_lr / sigma_L^2 = 1: larger steps diverge, much smaller ones mix too slowly between
    # levels to move mass between modes (Song & Ermon 2020, technique 4).
    sampler = AnnealedLangevin(geometric_sigmas(10.0, 0.01, 10), n_steps_each=100, step_lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = sampler(mixture_score, 10.0 * torch.randn(2000, 2, generator=g), g)
    assert sampler.nfe == 10 * 100 + 1
    assert (mode_weights(x) - WEIGHTS.double()).abs().max() < 0.05
    assert mmd(x, mixture_sample(2000, 1)) < 0.005  # two true samples: 0.0013


def test_plain_langevin_gets_mixture_weights_wrong_that_annealing_fixes():
    """Song & Ermon (2019, s.3.2): without annealing, the weights stay those of the start."""
    g = torch.Generator().manual_seed(0)
    start = torch.rand(2000, 2, generator=g) * 16 - 8
    sampler = Langevin(step_size=0.01, n_steps=1000, level=0.0)
    x = sampler(mixture_score, start, g)
    assert (mode_weights(x) - WEIGHTS.double()).abs().max() > 0.1


# VE's prior N(0, sigma_max^2) ignores the data mean: sigma_max >> |mu| keeps that error small.
@pytest.mark.parametrize("sde", [VPSDE(), VESDE(0.01, 100.0)], ids=["vp", "ve"])
def test_probability_flow_likelihood_of_exact_gaussian_score(sde):
    mu, s = torch.tensor([0.5, -1.0], dtype=torch.float64), 0.7
    x = mu + s * torch.randn(64, 2, dtype=torch.float64)
    ode = ProbabilityFlowODE(sde, rtol=1e-6, atol=1e-6, t_min=1e-5)
    log_p = ode.log_likelihood(gaussian_score(mu, s, sde), x)
    assert (log_p - gaussian_log_prob(x, mu, s)).abs().max() < 0.05
    assert ode.nfe > 0


def test_hutchinson_likelihood_is_unbiased_in_higher_dimension():
    d, sde = 16, VPSDE()
    mu, s = torch.zeros(d, dtype=torch.float64), 0.5
    x = mu + s * torch.randn(200, d, dtype=torch.float64)
    ode = ProbabilityFlowODE(sde, solver="rk4", n_steps=50, t_min=1e-5, trace="hutchinson")
    log_p = ode.log_likelihood(gaussian_score(mu, s, sde), x, torch.Generator().manual_seed(0))
    error = log_p - gaussian_log_prob(x, mu, s)
    assert error.mean().abs() < 4 * error.std() / math.sqrt(len(error)) + 0.05


@pytest.mark.parametrize("name", ["pc-vp", "pc-ve", "ode-vp"])
def test_sde_samplers_with_exact_score_sample_the_gaussian(name):
    method, kind = name.split("-")
    sde = VPSDE() if kind == "vp" else VESDE(0.01, 20.0)
    mu, s = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5
    score = gaussian_score(mu, s, sde)
    g = torch.Generator().manual_seed(0)
    prior = sde.prior_std() * torch.randn(4000, 2, dtype=torch.float64, generator=g)
    if method == "pc":
        sampler = PredictorCorrector(sde, n_steps=300, n_corrector=1, snr=0.16)
        x = sampler(score, prior, g)
        assert sampler.nfe == 600
    else:
        x = ProbabilityFlowODE(sde, rtol=1e-5, atol=1e-5).sample(score, prior)
    assert (x.mean(0) - mu).abs().max() < 0.05
    assert (x.std(0) - s).abs().max() < 0.05


def vp_mixture_score(sde):
    """Exact score of the mixture's VP marginal ``sum_k w_k N(m mu_k, (m^2 STD^2 + sigma^2) I)``."""

    def score(x, t):
        m, sigma = sde.marginal(t)
        var = (m**2 * STD**2 + sigma**2)[:, None, None]  # (n, 1, 1)
        diff = m[:, None, None] * MEANS.to(x)[None] - x[:, None]  # (n, K, 2)
        logits = WEIGHTS.to(x).log()[None] - diff.square().sum(-1) / (2 * var[..., 0])
        return (logits.softmax(-1)[..., None] * diff / var).sum(1)

    return score


def test_pc_sampler_does_not_get_worse_with_more_steps_on_an_exact_mixture_score():
    # Issue 8: the VP predictor-corrector sampler must converge as steps grow, not drift.
    sde = VPSDE()
    score = vp_mixture_score(sde)
    reference = mixture_sample(2000, seed=1).double()
    results = {}
    for steps in (50, 400):
        g = torch.Generator().manual_seed(0)
        prior = torch.randn(2000, 2, dtype=torch.float64, generator=g)
        x = PredictorCorrector(sde, n_steps=steps, n_corrector=1, snr=0.01)(score, prior, g)
        results[steps] = mmd(x, reference)
    floor = abs(mmd(mixture_sample(2000, seed=2), mixture_sample(2000, seed=3)))
    assert results[400] <= results[50] + 3 * floor + 1e-3, results
    assert results[400] < 5 * floor + 2e-3, (results, floor)


def test_score_sde_vp_defaults_to_a_small_corrector_snr():
    assert ScoreSDE([2], sde="vp").snr == 0.01
    assert ScoreSDE([2], sde="ve").snr == 0.16


def test_ddpm_ancestral_with_exact_noise_samples_the_gaussian_even_when_respaced():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    alphas_bar = torch.cumprod(1 - betas, 0)
    mu, s = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5

    def eps(x, c):  # eps = -sqrt(1 - alpha_bar) * score of the discrete marginal
        ab = alphas_bar[(c * 1000).round().long() - 1][:, None]
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * s**2 + 1 - ab)

    for steps in (1000, 50):
        sampler = DDPMAncestral(alphas_bar, steps)
        g = torch.Generator().manual_seed(0)
        x = sampler(eps, torch.randn(4000, 2, dtype=torch.float64, generator=g), g)
        assert sampler.nfe == steps
        assert (x.mean(0) - mu).abs().max() < 0.05
        assert (x.std(0) - s).abs().max() < 0.05


# -- trained models --------------------------------------------------------------------------
def test_trained_ncsn_matches_optimal_gaussian_score_at_each_level():
    s = 0.5
    data = s * torch.randn(4000, 2)
    model = NCSN(
        [2],
        n_levels=4,
        sigma_max=2.0,
        sigma_min=0.1,
        hidden=64,
        depth=2,
        ema=0.99,
        standardize=False,
    )
    genzoo.Trainer(steps=600, batch_size=256, lr=3e-3, progress=False).fit(model, data)
    for sigma in model.sigmas.tolist():
        x = math.sqrt(s**2 + sigma**2) * torch.randn(1000, 2)
        with torch.no_grad():
            learned = model.score(x, sigma)
        optimal = -x / (s**2 + sigma**2)
        # Compare sigma * score (unit scale at every level): the noise the network predicts.
        error = (sigma * (learned - optimal)).norm(dim=1).mean()
        assert error < 0.1, (sigma, float(error))


def test_ncsn_on_8gaussians_covers_all_modes():
    data = genzoo.load_dataset("8gaussians", split="train", n=4000, seed=0)
    model = genzoo.create(
        "ncsn", data=data, hidden=64, depth=3, n_steps_each=20, step_lr=1e-4, ema=0.99
    )
    genzoo.Trainer(steps=1000, batch_size=256, lr=3e-3, progress=False).fit(model, data)
    x = model.sample(800, generator=torch.Generator().manual_seed(0))
    assert model.last_nfe == 10 * 20 + 1
    centres = (4 / math.sqrt(2)) * torch.tensor(
        [[math.cos(a), math.sin(a)] for a in torch.arange(8) * math.pi / 4]
    )
    dist, nearest = torch.cdist(x, centres).min(1)
    weights = torch.bincount(nearest, minlength=8).double() / len(x)
    assert (weights > 1 / 16).all(), weights  # every mode holds at least half its share
    # 98% of the data lie within 1 of a centre; this short run reaches ~80% (3000 steps: 93%).
    assert (dist < 1.0).double().mean() > 0.7


def test_trained_score_sde_likelihood_is_close_to_the_true_gaussian_density():
    mu, s = torch.tensor([2.0, -1.0]), 0.8
    data = mu + s * torch.randn(4000, 2)
    model = genzoo.create("score-sde", data=data, hidden=64, depth=2, ema=0.99)
    genzoo.Trainer(steps=500, batch_size=256, lr=3e-3, progress=False).fit(model, data)
    x = mu + s * torch.randn(200, 2)
    with torch.no_grad():
        log_p = model.log_prob(x)
    assert model.density == "estimate" and model.last_nfe > 0
    true = gaussian_log_prob(x, mu, s)
    assert (log_p.mean() - true.mean()).abs() < 0.1
    assert (log_p - true).abs().mean() < 0.2


# -- the model protocol ----------------------------------------------------------------------
def test_ncsn_refuses_log_prob_and_reports_its_cost():
    model = NCSN([2], n_levels=5, n_steps_each=7, denoise=False)
    with pytest.raises(genzoo.DensityUnavailable, match="probability-flow"):
        model.log_prob(torch.zeros(3, 2))
    assert model.sampling_cost()["nfe_per_sample"] == 35


def test_sigma_max_from_data_is_saved_and_loaded(tmp_path, moons):
    model = genzoo.create("ncsn", data=moons, hidden=16, n_steps_each=2)
    sigma_1 = float(model.sigmas[0])
    assert sigma_1 == pytest.approx(
        float(torch.cdist(model.to_latent(moons), model.to_latent(moons)).max()), rel=1e-4
    )
    model.save(tmp_path)
    loaded = genzoo.load(tmp_path)
    assert float(loaded.sigmas[0]) == sigma_1
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(model.sample(5, g()), loaded.sample(5, g()))


def test_ema_weights_are_averages_used_for_sampling():
    model = DDPM([2], hidden=8, depth=1, ema=0.5, sampling_steps=3)
    before = {k: v.clone() for k, v in model.ema.state().items()}
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(1.0)
    model.after_step("model", step=1000)  # decay min(0.5, ...) = 0.5
    for name, p in model.net.named_parameters():
        assert torch.allclose(model.ema.state()[name], 0.5 * before[name] + 0.5 * p)
    y, c = torch.randn(4, 2), torch.full((4,), 0.3)
    assert not torch.allclose(model.predict_noise(y, c, averaged=True), model.predict_noise(y, c))


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (NCSN, {"n_levels": 1}),
        (NCSN, {"sigma_max": 0.001}),
        (NCSN, {"network": "transformer"}),
        (ScoreSDE, {"sde": "sub-vp"}),
        (ScoreSDE, {"sampler": "ddim"}),
        (ScoreSDE, {"ode_solver": "euler"}),
        (ScoreSDE, {"trace": "skilling"}),
        (DDPM, {"sampling_steps": 2000}),
        (DDPM, {"ema": 1.0}),
    ],
)
def test_invalid_configs_are_refused_with_the_valid_choices(cls, kwargs):
    with pytest.raises(ValueError):
        cls([2], **kwargs)


def test_image_models_use_the_unet_and_sample_image_shapes():
    images = torch.rand(64, 1, 8, 8)
    for name in ("ncsn", "ddpm", "score-sde"):
        model = genzoo.create(name, data=images, channels=8, ema=0.0)
        assert type(model.net).__name__ == "SmallUNet"
        out = model.loss(images[:16])
        next(iter(out.values())).backward()
    model = genzoo.create("ddpm", data=images, channels=8, sampling_steps=10)
    x = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 8, 8) and model.last_nfe == 10
    log_p = model.log_prob(images[:2])  # 64 dimensions: Hutchinson's trace
    assert log_p.shape == (2,) and torch.isfinite(log_p).all()


def test_figures_are_written(tmp_path, moons):
    from genzoo.figures.score import (
        plot_denoising_sequence,
        plot_langevin_trajectories,
        plot_quality_vs_steps,
        plot_score_field,
        quality_vs_steps,
    )

    model = genzoo.create("ncsn", data=moons, hidden=8, depth=1, n_levels=3, n_steps_each=4)
    assert plot_score_field(model, tmp_path / "field.png", 0.5, data=moons[:200]).exists()
    assert plot_score_field(model, tmp_path / "fields.png", [2.0, 0.5, 0.05]).exists()
    assert plot_langevin_trajectories(model, tmp_path / "traj.png", n_frames=10).exists()
    rows = quality_vs_steps(model, moons[:100], [1, 3, None], mmd, n=50)
    assert [r["nfe"] for r in rows] == [3 * 1 + 1, 3 * 3 + 1, 3 * 4 + 1]
    assert model.sampler.n_steps_each == 4 and model.config["n_steps_each"] == 4  # unchanged
    assert plot_quality_vs_steps({"ncsn": rows}, tmp_path / "q.png").exists()
    images = torch.rand(16, 1, 8, 8)
    ddpm = genzoo.create("ddpm", data=images, channels=8, sampling_steps=5)
    assert plot_denoising_sequence(ddpm, tmp_path / "digits.png", n=2, n_frames=5).exists()


# -- the variational bound of DDPM (Ho et al. 2020, eq. 5) -----------------------------------
def test_ddpm_elbo_with_exact_noise_bounds_the_models_exact_density_tightly():
    # Data N(1, 2^2 I) standardised to y ~ N(0, I): the optimal noise predictor is
    # eps(y_t) = sqrt(1 - ab_t) y_t, whose reverse chain (sigma_t^2 = beta_t, Gaussian decoder)
    # is exactly the time reversal of the stationary forward chain, so p_theta(x) is known:
    # N(x; 1, 4 I). The bound must lie below it on average, and close for N = 1000 steps.
    model = DDPM([2], hidden=8, depth=1, ema=0.0)
    model.shift.fill_(1.0)
    model.scale.fill_(2.0)
    ab = model.alphas_bar.double()

    def exact(y, c, averaged=False):
        a = ab[(c * 1000).round().long() - 1][:, None].to(y.dtype)
        return (1 - a).sqrt() * y

    model.predict_noise = exact
    model.double()
    g = torch.Generator().manual_seed(0)
    x = 1.0 + 2.0 * torch.randn(4000, 2, dtype=torch.float64, generator=g)
    bound = model.elbo(x, torch.Generator().manual_seed(1))
    assert bound.shape == (4000,) and model.last_nfe == 1000
    gap = gaussian_log_prob(x, torch.ones(2, dtype=torch.float64), 2.0) - bound
    se = float(gap.std()) / math.sqrt(len(gap))  # ~0.02; the true gap is ~0.01 nats
    assert float(gap.mean()) > -3 * se, (float(gap.mean()), se)
    assert float(gap.mean()) < 0.05 + 3 * se, (float(gap.mean()), se)


def test_ddpm_elbo_terms_match_closed_forms_for_a_zero_noise_predictor():
    # eps_hat = 0: every noise error is |z|^2 ~ chi^2_d, so E[L_{t-1}] and E[L_0] are known.
    from genzoo.models.score.bound import ddpm_bound_terms

    betas = torch.linspace(0.01, 0.2, 20, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0)
    x = torch.randn(20000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    terms = ddpm_bound_terms(lambda y, c: torch.zeros_like(y), x, ab)
    t = torch.arange(1, 20)
    ab_prev = ab[t - 1]
    r = (1 - ab_prev) / (1 - ab[t])
    expected = betas[t] / (2 * (1 - betas[t]) * (1 - ab[t])) * 3 + 1.5 * (r - 1 - r.log())
    assert torch.allclose(terms["L_t"].mean(1), expected, rtol=0.03)
    l0 = 1.5 * math.log(2 * math.pi * 0.01) + 3 / (2 * 0.99)
    assert float(terms["L_0"].mean()) == pytest.approx(l0, abs=0.03)
    kl_t = 0.5 * (3 * (1 - ab[-1]) + ab[-1] * x.square().sum(1) - 3 - 3 * torch.log1p(-ab[-1]))
    assert torch.allclose(terms["L_T"], kl_t)


def test_trained_ddpm_elbo_is_finite_rises_with_training_and_stays_below_the_density():
    mu, s = torch.tensor([2.0, -1.0]), 0.5
    data = mu + s * torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = genzoo.create(
        "ddpm", data=data, n_timesteps=100, sampling_steps=100, beta_end=0.2, hidden=32, ema=0.9
    )
    x = mu + s * torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    before = model.elbo(x, torch.Generator().manual_seed(2))
    genzoo.Trainer(steps=300, batch_size=256, lr=3e-3, progress=False).fit(model, data)
    after = model.elbo(x, torch.Generator().manual_seed(2))
    true = gaussian_log_prob(x, mu, s)
    assert torch.isfinite(before).all() and torch.isfinite(after).all()
    assert float(after.mean()) > float(before.mean()) + 1.0, (before.mean(), after.mean())
    se = float((true - after).std()) / math.sqrt(len(x))
    assert float((true - after).mean()) > -3 * se  # a bound on average, as it must be
    assert float((true - after).mean()) < 0.5, float((true - after).mean())


# -- sampling with another number of steps (issue 8) -----------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs", "k", "nfe"),
    [
        ("ncsn", {"n_levels": 4, "n_steps_each": 5}, 2, 4 * 2 + 1),
        ("ddpm", {"sampling_steps": 20}, 7, 7),
        ("score-sde", {"sampling_steps": 20}, 7, 14),
        ("ddpm", {"sampler": "ode", "ode_solver": "rk4", "sampling_steps": 5}, 3, 12),
    ],
)
def test_sample_with_other_steps_matches_a_model_built_with_them(moons, name, kwargs, k, nfe):
    model = genzoo.create(name, data=moons, hidden=8, depth=1, ema=0.0, **kwargs)
    config = dict(model.config)
    assert model.sampling_cost(k)["nfe_per_sample"] == nfe
    x = model.sample(16, torch.Generator().manual_seed(0), steps=k)
    assert model.last_nfe == nfe and model.config == config
    key = "n_steps_each" if name == "ncsn" else "sampling_steps"
    other = genzoo.create(name, data=moons, hidden=8, depth=1, ema=0.0, **{**kwargs, key: k})
    other.load_state_dict(model.state_dict())
    assert torch.allclose(x, other.sample(16, torch.Generator().manual_seed(0)))
    model.sample(4)  # back to the configured sampler
    assert model.last_nfe == model.sampling_cost()["nfe_per_sample"] != nfe


def test_sample_steps_are_refused_where_they_cannot_apply():
    with pytest.raises(ValueError, match="rk45"):
        DDPM([2], sampler="ode").sample(2, steps=10)
    with pytest.raises(ValueError, match="n_timesteps"):
        DDPM([2], n_timesteps=50, sampling_steps=10).sample(2, steps=51)
    with pytest.raises(ValueError, match="positive"):
        NCSN([2]).sample(2, steps=0)
