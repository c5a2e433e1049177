"""Energy-based models: the maths of RBMs, AIS, DBN/DBM likelihoods, Langevin and the EBMs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import genzoo
from genzoo.metrics.samples import mmd_rbf
from genzoo.models.energy import DBM, DBN, RBMLayer, langevin
from genzoo.models.energy.langevin import grid


def _all_binary(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)))


def _random_layer(n_v: int, n_h: int, visible: str = "bernoulli", scale: float = 0.5):
    layer = RBMLayer(n_v, n_h, visible)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, scale)
    return layer


@pytest.fixture(scope="module")
def binary_digits() -> tuple[torch.Tensor, torch.Tensor]:
    train = genzoo.load_dataset("digits-binary", split="train")
    test = genzoo.load_dataset("digits-binary", split="test")
    return train, test


def test_free_energy_matches_brute_force_marginalisation():
    layer = _random_layer(5, 4)
    v, h = _all_binary(5), _all_binary(4)
    energies = torch.stack([layer.energy(v, hh.expand(len(v), -1)) for hh in h], 1)  # (32, 16)
    assert torch.allclose(layer.free_energy(v), -torch.logsumexp(-energies, 1), atol=1e-5)
    # and log Z: enumerating hidden states only equals enumerating everything
    brute = torch.logsumexp(-energies.flatten().double(), 0).item()
    assert layer.exact_log_z() == pytest.approx(brute, abs=1e-5)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_closed_form_cd_gradient_equals_autograd_through_the_free_energy(visible):
    torch.manual_seed(0)
    layer = _random_layer(6, 4, visible).double()
    v_data, v_model = torch.randn(7, 6).double(), torch.randn(5, 6).double()
    if visible == "bernoulli":
        v_data, v_model = (v_data > 0).double(), (v_model > 0).double()
    terms = layer.cd_loss(v_data, v_model, weight_decay=0.3)
    fast = torch.autograd.grad(sum(terms.values()), list(layer.parameters()))
    reference = layer.free_energy(v_data).mean() - layer.free_energy(v_model).mean()
    reference = reference + 0.15 * layer.weight.pow(2).sum()
    slow = torch.autograd.grad(reference, list(layer.parameters()))
    torch.testing.assert_close(terms["cd"] + terms["weight_decay"], reference.detach())
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_gaussian_rbm_free_energy_and_log_z_by_quadrature():
    layer = _random_layer(2, 3, "gaussian")
    v = torch.randn(7, 2)
    h = _all_binary(3)
    energies = torch.stack([layer.energy(v, hh.expand(len(v), -1)) for hh in h], 1)
    assert torch.allclose(layer.free_energy(v), -torch.logsumexp(-energies, 1), atol=1e-5)
    points, log_cell = grid(torch.full((2,), -12.0), torch.full((2,), 12.0), 600)
    quad = torch.logsumexp(-layer.free_energy(points).double(), 0).item() + log_cell
    assert layer.exact_log_z() == pytest.approx(quad, abs=1e-3)


def test_ais_log_z_matches_enumeration_within_0_1_nats(binary_digits):
    train, _ = binary_digits
    rbm = genzoo.create("rbm", data=train, n_hidden=12)
    genzoo.Trainer(steps=300, batch_size=100, lr=0.05, progress=False).fit(rbm, train)
    exact = rbm.rbm.exact_log_z()
    log_z, stderr = rbm.estimate_log_z(n_betas=1000, n_runs=100)
    assert abs(log_z - exact) < 0.1
    assert 0 < stderr < 0.1
    # the cached value is reused by log_prob and invalidated by a training step
    assert rbm.log_z.item() == pytest.approx(log_z)
    rbm.after_step("model", 0)
    assert not bool(rbm.log_z_valid)


def test_rbm_beats_independent_bernoulli_in_ais_test_log_likelihood(binary_digits):
    train, test = binary_digits
    p = train.flatten(1).mean(0).clamp(1e-3, 1 - 1e-3)
    flat = test.flatten(1)
    baseline = (flat * p.log() + (1 - flat) * (1 - p).log()).sum(-1).mean().item()
    rbm = genzoo.create("rbm", data=train, n_hidden=64, ais_betas=500, ais_runs=50)
    genzoo.Trainer(steps=600, batch_size=100, lr=0.05, progress=False).fit(rbm, train)
    ll = rbm.log_prob(test).mean().item()
    assert ll > baseline + 3.0, (ll, baseline)  # about -25 nats for the baseline


def test_pcd_keeps_its_chains_and_rbm_refuses_real_data(binary_digits, moons):
    train, _ = binary_digits
    rbm = genzoo.create("rbm", data=train[:200], n_hidden=8, persistent=True, n_chains=20)
    before = rbm.chains.clone()
    rbm.loss(train[:50])
    assert not torch.equal(before, rbm.chains) and rbm.chains.shape == (20, 64)
    assert "chains" in rbm.state_dict()
    with pytest.raises(genzoo.DataError, match="gb-rbm"):
        genzoo.create("rbm", data=moons)
    with pytest.raises(ValueError, match="bernoulli"):
        RBMLayer(3, 2, visible="poisson")


def test_gaussian_rbm_exact_density_integrates_to_one(moons, moons_test):
    rbm = genzoo.create("gb-rbm", data=moons, n_hidden=12, exact_log_z=True)
    assert rbm.density == "exact"
    genzoo.Trainer(steps=300, batch_size=256, lr=0.05, progress=False).fit(rbm, moons)
    points, log_cell = grid(torch.tensor([-8.0, -8.0]), torch.tensor([8.0, 8.0]), 400)
    mass = rbm.log_prob(points).double().exp().sum().item() * math.exp(log_cell)
    assert mass == pytest.approx(1.0, abs=0.01)
    assert torch.isfinite(rbm.log_prob(moons_test)).all()


def _tiny(model_cls, **kwargs):
    model = model_cls(data_shape=[5], ais_betas=1000, ais_runs=200, n_importance=2000, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        model.bottom.data_mean.fill_(0.5) if hasattr(model, "bottom") else None
    return model


def test_dbn_log_prob_estimate_matches_exact_marginal():
    dbn = _tiny(DBN, hidden=[4, 3])
    v = _all_binary(5)
    low, top = dbn.layers
    h1 = _all_binary(4)
    log_p_h1 = -top.free_energy(h1) - top.exact_log_z()  # (16,)
    logits = low.visible_bias + h1 @ low.weight.T  # (16, 5)
    log_p_v_h1 = (v[:, None] * logits - torch.nn.functional.softplus(logits)).sum(-1)
    exact = torch.logsumexp(log_p_v_h1 + log_p_h1, 1)  # (32,)
    assert torch.logsumexp(exact, 0).item() == pytest.approx(0.0, abs=1e-5)
    assert torch.allclose(dbn.log_prob(v), exact, atol=0.1)


def test_dbm_log_prob_estimate_matches_exact_marginal():
    dbm = _tiny(DBM, hidden=[4, 3])
    v, h1, h2 = _all_binary(5), _all_binary(4), _all_binary(3)
    states = torch.cartesian_prod(torch.arange(32), torch.arange(16), torch.arange(8))
    neg_e = -dbm.energy(v[states[:, 0]], h1[states[:, 1]], h2[states[:, 2]]).double()
    log_z = torch.logsumexp(neg_e, 0)
    exact = torch.logsumexp(neg_e.reshape(32, -1), 1) - log_z
    assert dbm.estimate_log_z()[0] == pytest.approx(log_z.item(), abs=0.1)
    assert torch.allclose(dbm.log_prob(v).double(), exact, atol=0.1)


def test_greedy_schedules_and_joint_training(binary_digits):
    train, test = binary_digits
    dbn = genzoo.create("dbn", data=train, hidden=[16, 8], steps_per_layer=10)
    assert [dbn.schedule(s)[0] for s in (0, 9, 10, 500)] == ["layer0", "layer0", "layer1"] * 1 + [
        "layer1"
    ]
    dbm = genzoo.create("dbm", data=train, hidden=[16, 8], steps_per_layer=10)
    assert [dbm.schedule(s)[0] for s in (0, 10, 20, 99)] == ["layer0", "layer1", "dbm", "dbm"]
    w1 = dbm.bottom.weight.detach().clone()
    genzoo.Trainer(steps=40, batch_size=50, lr=0.05, progress=False).fit(dbm, train)
    assert not torch.equal(w1, dbm.bottom.weight)
    with pytest.raises(ValueError, match="two hidden layers"):
        genzoo.create("dbm", data=train, hidden=[4, 4, 4])


FIRST_WIDTH = 7
WIDTHS = {"rbm": "n_hidden", "gb-rbm": "n_hidden", "dbn": "hidden", "dbm": "hidden"}


def _boltzmann(name, binary_digits, moons):
    width = FIRST_WIDTH if WIDTHS[name] == "n_hidden" else [FIRST_WIDTH, 3]
    data = moons if name == "gb-rbm" else binary_digits[0]
    return genzoo.create(name, data=data, **{WIDTHS[name]: width}, ais_betas=10, ais_runs=4)


@pytest.mark.parametrize("name", list(WIDTHS))
def test_filters_are_the_weights_the_energy_couples_each_hidden_unit_with(
    name, binary_digits, moons
):
    """``filters()`` is ``(n_hidden, data_dim)``: row ``j`` is what unit ``j`` adds to the
    energy per visible unit, ``E(v, h = e_j) - E(v, h = 0) = -c_j - v . filters()[j]``."""
    model = _boltzmann(name, binary_digits, moons)
    filters = model.filters()
    assert filters.shape == (FIRST_WIDTH, model.data_dim) and not filters.requires_grad
    v = torch.randn(5, model.data_dim) if name == "gb-rbm" else (torch.rand(5, 64) < 0.5).float()
    units = torch.eye(FIRST_WIDTH).repeat_interleave(len(v), 0)  # e_j for every row of v
    vs, zeros = v.repeat(FIRST_WIDTH, 1), torch.zeros_like(units)
    with torch.no_grad():
        if name == "dbm":
            top = torch.zeros(len(vs), model.top.n_hidden)
            delta = model.energy(vs, units, top) - model.energy(vs, zeros, top)
            bias = model.c1
        else:
            layer = model.rbm if name in ("rbm", "gb-rbm") else model.layers[0]
            delta = layer.energy(vs, units) - layer.energy(vs, zeros)
            bias = layer.hidden_bias
    coupling = (-delta.reshape(FIRST_WIDTH, len(v)).T - bias).detach()  # (5, n_hidden)
    torch.testing.assert_close(coupling, v @ filters.T, rtol=1e-5, atol=1e-5)
    filters.add_(1.0)  # a copy: the model's weights do not change
    assert not torch.equal(model.filters(), filters)


#: Configs as runs saved them before the variants forwarded their parents' arguments.
OLD_CONFIGS = {
    "ebm": {
        "data_shape": [2], "hidden": 8, "depth": 1, "activation": "silu", "box": 4.0,
        "grid_size": 20, "langevin_steps": 3, "step_size": 0.05, "noise_scale": 1.0,
        "buffer_size": 50, "reinit_prob": 0.05, "alpha": 0.1, "sample_steps": 5,
        "sample_step_size": 0.01,
    },
    "mdsm-ebm": {
        "data_shape": [2], "hidden": 8, "depth": 1, "activation": "silu", "box": 4.0,
        "grid_size": 20, "sigma_min": 0.05, "sigma_max": 1.0, "sigma0": 0.3, "sample_steps": 5,
        "sample_step_size": 0.01, "sample_temperature": 10.0,
    },
    "rbm": {
        "data_shape": [1, 8, 8], "n_hidden": 6, "cd_k": 1, "persistent": False, "n_chains": 10,
        "weight_decay": 0.0002, "momentum": 0.9, "optimizer": "sgd", "sample_steps": 10,
        "ais_betas": 10, "ais_runs": 4, "ais_seed": 0, "exact_log_z": True,
        "learn_sigma": False,
    },
    "gb-rbm": {
        "data_shape": [2], "n_hidden": 6, "cd_k": 1, "persistent": True, "n_chains": 10,
        "weight_decay": 0.0002, "momentum": 0.9, "optimizer": "sgd", "sample_steps": 10,
        "ais_betas": 10, "ais_runs": 4, "ais_seed": 0, "exact_log_z": True, "learn_sigma": True,
    },
    "dbn": {
        "data_shape": [1, 8, 8], "hidden": [6, 3], "steps_per_layer": 10, "cd_k": 1,
        "weight_decay": 0.0002, "momentum": 0.9, "optimizer": "sgd", "sample_steps": 10,
        "ais_betas": 10, "ais_runs": 4, "ais_seed": 0, "n_importance": 3,
    },
    "dbm": {
        "data_shape": [1, 8, 8], "hidden": [6, 3], "steps_per_layer": 10, "cd_k": 1,
        "n_chains": 10, "gibbs_steps": 1, "mean_field_steps": 3, "weight_decay": 0.0002,
        "momentum": 0.9, "optimizer": "sgd", "sample_steps": 10, "ais_betas": 10,
        "ais_runs": 4, "ais_seed": 0, "n_importance": 3,
    },
}  # fmt: skip


@pytest.mark.parametrize("name", list(OLD_CONFIGS))
def test_energy_variants_take_their_parents_arguments_and_old_configs_rebuild(
    name, binary_digits, moons
):
    """Each variant declares only what it adds or changes (``**kwargs`` carry the rest), yet
    takes every argument it took before, records them all, and rebuilds from an old config."""
    import inspect

    from genzoo.registry import hyperparameters, model_class

    cls = model_class(name)
    old = OLD_CONFIGS[name]
    assert set(hyperparameters(cls)) == set(old)
    own = inspect.signature(cls.__init__).parameters
    assert "ais_seed" not in own and "sample_step_size" not in own  # forwarded, not repeated
    model = cls(**old)
    assert model.config == old
    data = moons if model.data_shape == (2,) else binary_digits[0]
    model.initialize(data[:100])
    rebuilt = cls(**model.config)
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.log_prob(data[:5]), model.log_prob(data[:5]))


def _mixture():
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])

    def energy(x: torch.Tensor) -> torch.Tensor:  # -log sum_k N(x; m_k, 0.5^2 I) / 3 + const
        d2 = (x[:, None, :] - means).pow(2).sum(-1)
        return -torch.logsumexp(-d2 / (2 * 0.25), 1)

    def sample(n: int, g: torch.Generator) -> torch.Tensor:
        k = torch.randint(3, (n,), generator=g)
        return means[k] + 0.5 * torch.randn(n, 2, generator=g)

    return energy, sample


def test_langevin_with_the_exact_score_samples_a_gaussian_mixture():
    energy, sample = _mixture()
    g = torch.Generator().manual_seed(0)
    truth = sample(1000, g)
    start = sample(1000, g) * 0 + 4 * torch.rand(1000, 2, generator=g) - 2  # uniform square
    out = langevin(energy, start, n_steps=500, step_size=0.02, generator=g)
    assert mmd_rbf(out, truth) < 5e-3
    assert mmd_rbf(start, truth) > 5e-2  # the test can fail


def test_ebm_quadrature_density_integrates_to_one_and_beats_a_gaussian(moons, moons_test):
    torch.manual_seed(0)
    ebm = genzoo.create("ebm", data=moons, hidden=32, depth=2, grid_size=100)
    genzoo.Trainer(steps=500, batch_size=128, lr=3e-3, progress=False).fit(ebm, moons)
    assert ebm.density == "exact"
    low = ebm.shift - ebm.box * ebm.scale
    high = ebm.shift + ebm.box * ebm.scale
    points, log_cell = grid(low, high, 300)  # a finer grid than the model's own
    mass = ebm.log_prob(points).double().exp().sum().item() * math.exp(log_cell)
    assert mass == pytest.approx(1.0, abs=0.01)
    gaussian = 0.5 * torch.logdet(2 * math.pi * math.e * torch.cov(moons.T)).item()
    nll = -ebm.log_prob(moons_test).mean().item()
    assert nll < gaussian - 0.2, (nll, gaussian)
    assert ebm.log_prob(torch.tensor([[100.0, 100.0]])).item() == -math.inf


def test_mdsm_energy_learns_moons(moons, moons_test):
    torch.manual_seed(0)
    model = genzoo.create("mdsm-ebm", data=moons, hidden=32, depth=2, grid_size=100)
    genzoo.Trainer(steps=300, batch_size=128, lr=3e-3, progress=False).fit(model, moons)
    gaussian = 0.5 * torch.logdet(2 * math.pi * math.e * torch.cov(moons.T)).item()
    assert -model.log_prob(moons_test).mean().item() < gaussian
    samples = model.sample(500, torch.Generator().manual_seed(0))
    noise = torch.rand(500, 2) * (moons.max(0).values - moons.min(0).values) + moons.min(0).values
    assert mmd_rbf(samples, moons_test[:500]) < 0.5 * mmd_rbf(noise, moons_test[:500])


def test_high_dimensional_ebm_is_unnormalized():
    x = torch.rand(64, 1, 8, 8)
    ebm = genzoo.create("ebm", data=x, hidden=8, depth=1, langevin_steps=2, sample_steps=2)
    assert ebm.density == "unnormalized"
    assert torch.allclose(ebm.log_prob(x[:4]), -ebm.energy(x[:4]))
    assert ebm.sample(3).shape == (3, 1, 8, 8)


def test_figures_are_written(tmp_path, binary_digits, moons):
    from genzoo.figures.energy import plot_chains, plot_energy_landscape, plot_rbm_filters

    ebm = genzoo.create("ebm", data=moons, hidden=8, depth=1, grid_size=20)
    assert plot_energy_landscape(ebm, tmp_path / "e.png", resolution=20).stat().st_size > 0
    assert plot_chains([moons[:50], moons[:50]], tmp_path / "c.png").exists()
    rbm = genzoo.create("rbm", data=binary_digits[0], n_hidden=4)
    assert plot_rbm_filters(rbm.rbm.weight, tmp_path / "f.png").exists()
    assert plot_chains([binary_digits[0][:8]], tmp_path / "d.png").exists()
