"""Few-step samplers of the VP score models (issue 19): DDIM (Song, Meng & Ermon 2021) and
multistep DPM-Solver (Lu et al. 2022), checked with exact noise predictors of known data.

Closed forms: for data ``N(mu, s^2 I)`` the VP marginal at level ``(alpha, sigma)`` is
``N(alpha mu, (alpha^2 s^2 + sigma^2) I)``, so the exact noise prediction is
``eps(x) = sigma (x - alpha mu) / (alpha^2 s^2 + sigma^2)`` and the probability-flow ODE maps
each standardised value to the same standardised value (an affine map); for a Gaussian
mixture, the mixture with every component so transformed.

Measured (CPU, shared machine): the energy distance between 1,500 DDIM (eta = 1, all 200
timesteps) and 1,500 ancestral samples of a 3-component mixture sits inside the permutation
null (p = 0.26-0.86 over 6 seeds, 300 permutations), while ancestral samples of the same
mixture with its spread scaled by 1.15 are rejected (p = 0.003, the smallest possible, on
all 6). DPM-Solver at 20 evaluations on a Gaussian: see
``test_dpm_solver_reaches_the_gaussian_target_in_20_evaluations``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genzoo
from genzoo.cli import main
from genzoo.errors import DataError
from genzoo.models.score import DDIM, VPSDE, DDPMAncestral, DPMSolver
from genzoo.models.score.sde import DiscreteVPSchedule
from genzoo.workflow import sample as sample_run
from genzoo.workflow import train

MEANS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=torch.float64)
WEIGHTS = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
STD = 0.4
MU = torch.tensor([1.5, -0.5], dtype=torch.float64)
S = torch.tensor([0.5, 2.0], dtype=torch.float64)


def mixture_eps(alphas_bar: torch.Tensor, n_timesteps: int, spread: float = 1.0):
    """Exact noise prediction of the mixture under DDPM's chain at network time ``(i+1)/N``
    (``spread`` scales the mixture about the origin: a wrong model, for the control)."""

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        i = (t * n_timesteps).round().long() - 1
        a = alphas_bar.double()[i][:, None, None]  # (n, 1, 1)
        var = a * (STD * spread) ** 2 + 1 - a
        diff = x.double()[:, None] - a.sqrt() * MEANS[None] * spread  # (n, K, 2)
        logits = WEIGHTS.log()[None] - diff.square().sum(-1) / (2 * var[..., 0])
        resp = logits.softmax(-1)[..., None]
        score = -(resp * diff / var).sum(1)
        return (-(1 - a[:, 0]).sqrt() * score).to(x.dtype)

    return eps


def gaussian_eps(schedule):
    """Exact noise prediction of ``N(MU, S^2)`` under a VP schedule (continuous time)."""

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = (v[:, None] for v in schedule.marginal(t.double()))
        return (sigma * (x.double() - alpha * MU) / (alpha**2 * S**2 + sigma**2)).to(x.dtype)

    return eps


def energy_permutation_test(x: torch.Tensor, y: torch.Tensor, n_perm: int = 300) -> float:
    """p-value of the energy distance (V-statistic ``-a^T D a``) of ``x`` vs ``y`` under the
    permutation null of the pooled samples."""
    pooled = torch.cat([x, y]).double()
    d = torch.cdist(pooled, pooled)
    n, m = len(x), len(y)
    a = torch.cat([torch.full((n,), 1 / n), torch.full((m,), -1 / m)]).double()
    g = torch.Generator().manual_seed(0)
    perms = torch.stack([a[torch.randperm(n + m, generator=g)] for _ in range(n_perm)])
    observed = float(-(a @ d @ a))
    null = -((perms @ d) * perms).sum(1)
    return float(((null >= observed).sum() + 1) / (n_perm + 1))


# -- DDIM ------------------------------------------------------------------------------------
def test_ddim_eta_one_with_every_timestep_matches_ancestral_sampling_in_distribution():
    n_timesteps, n = 200, 1500
    alphas_bar = torch.cumprod(1 - torch.linspace(1e-4 * 5, 0.02 * 5, n_timesteps), 0)
    eps = mixture_eps(alphas_bar, n_timesteps)
    g = torch.Generator().manual_seed(1)
    ancestral = DDPMAncestral(alphas_bar, n_timesteps)(eps, torch.randn(n, 2, generator=g), g)
    keep = torch.arange(n_timesteps - 1, -1, -1)
    levels = torch.cat([alphas_bar[keep].double(), torch.ones(1, dtype=torch.float64)])
    ddim = DDIM(levels, (keep + 1).double() / n_timesteps, eta=1.0)
    g = torch.Generator().manual_seed(2)
    stochastic = ddim(eps, torch.randn(n, 2, generator=g), g)
    assert ddim.nfe == n_timesteps
    assert energy_permutation_test(stochastic, ancestral) > 0.01  # measured 0.26-0.86
    # the test has power: a mixture 15% too wide, sampled the same way, is told apart
    wide = mixture_eps(alphas_bar, n_timesteps, spread=1.15)
    g = torch.Generator().manual_seed(3)
    other = DDPMAncestral(alphas_bar, n_timesteps)(wide, torch.randn(n, 2, generator=g), g)
    assert energy_permutation_test(other, ancestral) < 0.01  # measured 0.003


def test_ddim_eta_zero_is_deterministic_given_the_initial_noise():
    x = genzoo.load_dataset("8gaussians", n=256)
    torch.manual_seed(0)
    model = genzoo.create(
        "ddpm", data=x, hidden=16, depth=1, n_timesteps=50, sampling_steps=50, ema=0
    )
    start = torch.randn(64, 2)
    noise = model.noise_fn(None)
    a = model.ddim(10, eta=0.0)(noise, start, torch.Generator().manual_seed(1))
    b = model.ddim(10, eta=0.0)(noise, start, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = model.ddim(10, eta=1.0)(noise, start, torch.Generator().manual_seed(1))
    d = model.ddim(10, eta=1.0)(noise, start, torch.Generator().manual_seed(2))
    assert not torch.allclose(c, d)
    # through sample: the same generator gives the same prior draw, so the same samples
    first = model.sample(32, torch.Generator().manual_seed(5), sampler="ddim", steps=7)
    again = model.sample(32, torch.Generator().manual_seed(5), sampler="ddim", steps=7)
    assert torch.equal(first, again) and model.last_nfe == 7


# -- DPM-Solver --------------------------------------------------------------------------------
def test_dpm_solver_reaches_the_gaussian_target_in_20_evaluations():
    """20 network evaluations from the exact marginal at t = 1 to t = 1e-3; compared with
    the exact flow map of the same draws (affine for a Gaussian), so sampling noise cancels.
    Measured: variance off by 21% (order 1, DDIM), 2.7% (order 2), 1.1% (order 3); mean
    off by < 1.5e-3 for every order (data mean (1.5, -0.5), std (0.5, 2))."""
    sde = VPSDE(0.1, 20.0)
    z = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a1, s1 = (float(v) for v in sde.marginal(torch.tensor(1.0, dtype=torch.float64)))
    a0, s0 = (float(v) for v in sde.marginal(torch.tensor(1e-3, dtype=torch.float64)))
    std1, std0 = (a1**2 * S**2 + s1**2).sqrt(), (a0**2 * S**2 + s0**2).sqrt()
    exact = a0 * MU + std0 * z  # the ODE's flow map of a Gaussian is affine
    variance_error = {}
    for order in (1, 2, 3):
        solver = DPMSolver(sde, n_steps=20, order=order, t_start=1.0, t_end=1e-3)
        out = solver(gaussian_eps(sde), a1 * MU + std1 * z)
        assert solver.nfe == 20
        assert float((out - exact).mean(0).abs().max()) < 0.01  # measured 1.4e-3
        variance_error[order] = float((out.var(0) / exact.var(0) - 1).abs().max())
    assert variance_error[3] < 0.03, variance_error  # measured 0.011
    assert variance_error[2] < 0.05, variance_error  # measured 0.027
    assert variance_error[1] > 2 * variance_error[2] > 2 * variance_error[3], variance_error


def test_dpm_solver_through_ddpm_and_score_sde_on_an_exact_score():
    """The models' own schedules (DDPM's discrete levels, interpolated; the VP SDE) with an
    exact noise predictor put in place of the network: mean and std within 0.03 of data."""
    x = genzoo.load_dataset("8gaussians", n=64)
    for name, settings in (("ddpm", {}), ("score-sde", {"sde": "vp"})):
        model = genzoo.create(name, data=x, hidden=8, depth=1, standardize=False, **settings)
        schedule = model.vp_schedule()
        model.predict_noise = lambda y, t, averaged=False, labels=None, s=schedule: gaussian_eps(s)(
            y, t
        )
        out = model.sample(20_000, torch.Generator().manual_seed(0), sampler="dpm-solver", steps=20)
        assert model.last_nfe == 20
        torch.testing.assert_close(out.mean(0).double(), MU, atol=0.03, rtol=0)
        torch.testing.assert_close(out.std(0).double(), S, atol=0.03, rtol=0)


def test_discrete_schedule_interpolates_ddpm_levels():
    alphas_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    schedule = DiscreteVPSchedule(alphas_bar)
    alpha, sigma = schedule.marginal(torch.arange(1, 1001, dtype=torch.float64) / 1000)
    torch.testing.assert_close(alpha**2, alphas_bar)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(1000, dtype=torch.float64))


# -- the models' API and the command line ----------------------------------------------------
def test_samplers_costs_and_refusals():
    x, c = genzoo.load_dataset("8gaussians", n=256, condition=True)
    ddpm = genzoo.create("ddpm", data=x, condition=c, hidden=8, depth=1, n_timesteps=40,
                         sampling_steps=40)  # fmt: skip
    assert ddpm.samplers == ("ancestral", "ode", "ddim", "dpm-solver")
    assert ddpm.sampling_cost(12, "dpm-solver")["nfe_per_sample"] == 12
    assert ddpm.sampling_cost(None, "ddim")["nfe_per_sample"] == 40
    for sampler, options in (("ddim", {"eta": 0.5}), ("dpm-solver", {"order": 2})):
        ddpm.sample(4, sampler=sampler, steps=6, c=2, **options)
        assert ddpm.last_nfe == 6  # the conditional model: one evaluation per step
        ddpm.sample(4, sampler=sampler, steps=6, c=2, guidance=3.0, **options)
        assert ddpm.last_nfe == 12  # guided: the class's and the null class's
    traj = ddpm.sample_trajectory(3, n_frames=2, sampler="dpm-solver", steps=5)
    assert traj.shape == (2, 3, 2)
    with pytest.raises(ValueError, match="no sampler 'pc'; its samplers are ancestral, ode"):
        ddpm.sample(2, sampler="pc")
    with pytest.raises(ValueError, match="ddim steps must be in 1..n_timesteps=40"):
        ddpm.sample(2, sampler="ddim", steps=41)
    with pytest.raises(ValueError, match="eta is an option of the ddim sampler"):
        ddpm.sample(2, sampler="dpm-solver", eta=0.5)
    with pytest.raises(ValueError, match="eta must be in"):
        ddpm.sample(2, sampler="ddim", eta=1.5)
    with pytest.raises(ValueError, match="order of dpm-solver must be 1, 2 or 3"):
        ddpm.sample(2, sampler="dpm-solver", order=4)
    ode = genzoo.create("score-sde", data=x, hidden=8, depth=1, sampler="ode")  # rk45
    assert ode.samplers == ("ode", "pc", "ddim", "dpm-solver")
    for sampler, nfe in (("ddim", 4), ("dpm-solver", 4), ("pc", 8)):  # pc: 1 corrector step
        ode.sample(3, sampler=sampler, steps=4)
        assert ode.last_nfe == nfe == ode.sampling_cost(4, sampler)["nfe_per_sample"]
    ve = genzoo.create("score-sde", data=x, sde="ve", hidden=8, depth=1)
    assert ve.samplers == ("pc", "ode")
    with pytest.raises(ValueError, match="no sampler 'ddim'; its samplers are pc, ode"):
        ve.sample(2, sampler="ddim")
    ncsn = genzoo.create("ncsn", data=x, hidden=8, depth=1, n_levels=3, n_steps_each=2)
    with pytest.raises(ValueError, match="its samplers are annealed-langevin"):
        ncsn.sample(2, sampler="ddim")


def test_command_line_samples_with_a_chosen_sampler(tmp_path, capsys):
    out = tmp_path / "run"
    hparams = {"hidden": 8, "depth": 1, "n_timesteps": 50, "sampling_steps": 50}
    train("ddpm", "8gaussians", out, hparams, n=256, steps=5, progress=False)
    argv = ["sample", str(out), "-n", "16", "--sampler", "ddim", "--steps", "20"]
    assert main(argv) == 0
    got = torch.as_tensor(np.load(out / "samples.npy"))
    assert torch.equal(got, sample_run(out, 16, sampler="ddim", steps=20))
    assert main([*argv[:-3], "dpm-solver", "--steps", "10", "--order", "2", "--force"]) == 0
    capsys.readouterr()
    assert main([*argv[:-4], "--sampler", "pc", "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ancestral, ode, ddim, dpm-solver" in err, err
    gmm = tmp_path / "gmm"
    train("gmm", "8gaussians", gmm, {"n_components": 2}, n=256, steps=2, progress=False)
    with pytest.raises(DataError, match="takes no --sampler"):
        sample_run(gmm, 2, sampler="ddim")


# -- the benchmark ---------------------------------------------------------------------------
def test_bench_reports_few_step_samplers_and_the_guidance_sweep(monkeypatch, tmp_path):
    from genzoo.bench import grid
    from genzoo.bench.runner import cell_dir, run_bench

    tiny = grid.Budget(quick_steps=20, batch_size=64,
                       hparams={"hidden": 16, "depth": 1, "n_timesteps": 60,
                                "sampling_steps": 20})  # fmt: skip
    monkeypatch.setattr(grid, "BUDGETS", {"ddpm": tiny})
    run_bench(tmp_path, quick=True, models=["ddpm"], datasets=["8gaussians"], jobs=1,
              condition="label")  # fmt: skip
    run = cell_dir(tmp_path, "ddpm", "8gaussians", 0, condition="label")
    points = json.loads((run / "fast_samplers.json").read_text())
    assert {(p["sampler"], p["nfe"]) for p in points} == {
        (s, n) for s in ("ancestral", "ddim", "dpm-solver") for n in (10.0, 20.0, 50.0)
    }
    sweep = json.loads((run / "guidance.json").read_text())
    assert [r["guidance"] for r in sweep["rows"]] == [0.0, 1.0, 2.0, 4.0]
    assert [r["nfe"] for r in sweep["rows"]] == [20.0, 20.0, 40.0, 40.0]  # guided: two per step
    assert sweep["chance"] == pytest.approx(1 / 8) and (run / "guidance.png").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "## Few-step samplers: quality against network evaluations" in report
    assert "| ddpm | dpm-solver |" in report and "energy_distance @ 50 NFE" in report
    assert "### Classifier-free guidance" in report and "guidance.png" in report
    assert (tmp_path / "fast_samplers.png").is_file()
