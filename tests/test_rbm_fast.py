"""RBM: the classical ``fit_cd`` loop against the CD update, and Gaussian units with sigma."""

from __future__ import annotations

import itertools

import pytest
import torch

import genzoo
from genzoo.models.energy import RBMLayer
from genzoo.models.energy.langevin import grid


@pytest.fixture(scope="module")
def binary_digits() -> tuple[torch.Tensor, torch.Tensor]:
    train = genzoo.load_dataset("digits-binary", split="train")
    test = genzoo.load_dataset("digits-binary", split="test")
    return train, test


def _two_clusters(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Two clusters at +-2 with per-dimension noise 0.2, 0.5, 1.0; returns the data and that
    noise in the units of the standardised data (what ``gb-rbm`` learns its sigma in)."""
    gen = torch.Generator().manual_seed(0)
    sign = torch.randint(0, 2, (n, 1), generator=gen).float() * 2 - 1
    noise = torch.tensor([0.2, 0.5, 1.0])
    x = 2.0 * sign + noise * torch.randn(n, 3, generator=gen)
    return x, noise / x.std(0)


def test_fit_cd_is_one_hand_written_cd1_step():
    """One batch, one epoch of CD-1: the update of Hinton's guide, written out here."""
    x = genzoo.load_dataset("digits-binary", split="train")[:30]
    torch.manual_seed(0)
    model = genzoo.create("rbm", data=x, n_hidden=5, momentum=0.0, weight_decay=0.01)
    layer = model.rbm
    w, b, c = (
        t.detach().clone().double() for t in (layer.weight, layer.visible_bias, layer.hidden_bias)
    )
    lr, n = 0.1, x.shape[0]
    model.fit_cd(x, epochs=1, batch_size=n, lr=lr, generator=torch.Generator().manual_seed(3))

    gen = torch.Generator().manual_seed(3)  # the same draws, in the loop's order
    v = x.flatten(1)[torch.randperm(n, generator=gen)].double()
    p_data = torch.sigmoid(c + v @ w)
    h = (torch.rand(n, 5, generator=gen).double() < p_data).double()
    v_model = (torch.rand(n, 64, generator=gen).double() < torch.sigmoid(b + h @ w.T)).double()
    p_model = torch.sigmoid(c + v_model @ w)
    w_new = w + lr * ((v.T @ p_data - v_model.T @ p_model) / n - 0.01 * w)
    b_new = b + lr * (v.mean(0) - v_model.mean(0))
    c_new = c + lr * (p_data.mean(0) - p_model.mean(0))
    for got, want in zip(
        (layer.weight, layer.visible_bias, layer.hidden_bias), (w_new, b_new, c_new), strict=True
    ):
        torch.testing.assert_close(got.detach().double(), want, atol=1e-6, rtol=0)
    assert not torch.equal(layer.weight.detach().double(), w)  # it did move


@pytest.mark.parametrize(
    "name, options",
    [
        ("rbm", {"persistent": True, "n_chains": 7, "cd_k": 2}),
        ("rbm", {"cd_k": 2, "weight_decay": 0.01}),
        ("gb-rbm", {"persistent": True, "n_chains": 5, "learn_sigma": True}),
        ("gb-rbm", {"weight_decay": 0.01, "learn_sigma": True}),
    ],
)
def test_fit_cd_applies_the_trainer_update(name, options):
    """Two batches through fit_cd == model.loss + torch.optim.SGD(momentum) on them."""
    data = (
        genzoo.load_dataset("digits-binary", split="train")[:40]
        if name == "rbm"
        else genzoo.load_dataset("moons", n=40)
    )
    states = []
    for path in ("fit_cd", "trainer"):
        torch.manual_seed(0)
        model = genzoo.create(name, data=data, n_hidden=6, **options)
        torch.manual_seed(1)  # both paths draw from the global generator in the same order
        if path == "fit_cd":
            model.fit_cd(data, epochs=1, batch_size=20, lr=0.1)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=model.momentum)
            for index in torch.tensor_split(torch.randperm(40), 2):
                opt.zero_grad()
                terms = model.loss(data[index])
                sum(v for k, v in terms.items() if not k.startswith("diag/")).backward()
                opt.step()
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    moved = 0
    for key in (
        "rbm.weight",
        "rbm.visible_bias",
        "rbm.hidden_bias",
        "rbm.log_sigma",
        "chains",
        "chain_hidden",
    ):
        if key in states[0]:
            torch.testing.assert_close(states[0][key], states[1][key], atol=1e-6, rtol=1e-5)
            moved += key.startswith("rbm.")
    assert moved == (4 if name == "gb-rbm" else 3)


def test_fit_cd_improves_the_exact_test_log_likelihood(binary_digits):
    train, test = binary_digits
    torch.manual_seed(0)
    rbm = genzoo.create("rbm", data=train, n_hidden=16, exact_log_z=True)
    before = rbm.log_prob(test).mean().item()
    history = rbm.fit_cd(
        train, epochs=15, batch_size=50, lr=0.05, generator=torch.Generator().manual_seed(0)
    )
    after = rbm.log_prob(test).mean().item()
    p = train.flatten(1).mean(0).clamp(1e-3, 1 - 1e-3)
    flat = test.flatten(1)
    baseline = (flat * p.log() + (1 - flat) * (1 - p).log()).sum(-1).mean().item()
    assert after > before + 5 and after > baseline + 2, (before, after, baseline)
    assert len(history) == 15 and history[-1]["reconstruction"] < history[0]["reconstruction"]
    assert not bool(rbm.log_z_valid) or rbm.log_z.item() == pytest.approx(rbm.rbm.exact_log_z())


def test_fit_cd_refuses_non_binary_data_and_adam(binary_digits):
    train, _ = binary_digits
    rbm = genzoo.create("rbm", data=train[:100], n_hidden=4)
    bad = train[:100].clone()
    bad[3, 0, 2, 2] = 0.5
    with pytest.raises(genzoo.DataError, match="0/1"):
        rbm.fit_cd(bad)
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(genzoo.DataError, match="0/1"):
        rbm.fit_cd(bad)
    with pytest.raises(ValueError, match="adam"):
        genzoo.create("rbm", data=train[:100], optimizer="adam").fit_cd(train[:100])


# -- Gaussian units with learned sigma (Cho et al. 2011) --------------------------------------
def _sigma_layer() -> RBMLayer:
    torch.manual_seed(0)
    layer = RBMLayer(2, 3, "gaussian", learn_sigma=True).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
        layer.log_sigma.copy_(torch.tensor([0.5, 2.0]).log())
    return layer


def test_sigma_free_energy_log_z_and_ais_match_brute_force():
    layer = _sigma_layer()
    v = torch.randn(9, 2).double()
    h = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3))).double()
    energies = torch.stack([layer.energy(v, hh.expand(len(v), -1)) for hh in h], 1)  # (9, 8)
    torch.testing.assert_close(layer.free_energy(v), -torch.logsumexp(-energies, 1))
    # Cho's form by hand for one (v, h): sigma enters the quadratic and the coupling
    sigma2 = torch.tensor([0.25, 4.0]).double()
    v0, h0 = v[0], h[5]
    by_hand = (
        (((v0 - layer.visible_bias) ** 2) / (2 * sigma2)).sum()
        - ((v0 / sigma2) @ layer.weight @ h0)
        - layer.hidden_bias @ h0
    )
    torch.testing.assert_close(layer.energy(v0[None], h0[None])[0], by_hand)
    points, log_cell = grid(torch.full((2,), -16.0), torch.full((2,), 16.0), 800)
    quad = torch.logsumexp(-layer.free_energy(points.double()), 0).item() + log_cell
    assert layer.exact_log_z() == pytest.approx(quad, abs=1e-3)
    layer.data_mean.fill_(0.3)
    log_z, _ = layer.ais(300, 100, torch.Generator().manual_seed(0))
    assert log_z == pytest.approx(layer.exact_log_z(), abs=0.1)


def test_gibbs_step_samples_visible_units_with_sigma():
    layer = _sigma_layer()
    with torch.no_grad():
        layer.weight.zero_()
    v = layer.sample_visible(torch.zeros(20_000, 3).double(), torch.Generator().manual_seed(0))
    torch.testing.assert_close(v.std(0), torch.tensor([0.5, 2.0]).double(), rtol=0.03, atol=0)


def test_learned_sigma_moves_to_the_known_noise_scale():
    x, target = _two_clusters()
    torch.manual_seed(0)
    rbm = genzoo.create("gb-rbm", data=x, n_hidden=4, learn_sigma=True, exact_log_z=True)
    fixed = genzoo.create("gb-rbm", data=x, n_hidden=4, exact_log_z=True)
    for model in (rbm, fixed):
        model.fit_cd(
            x, epochs=40, batch_size=100, lr=0.01, generator=torch.Generator().manual_seed(1)
        )
    sigma = rbm.rbm.log_sigma.exp().detach()
    assert ((sigma - target).abs() < 0.5 * (1 - target)).all(), (sigma, target)  # started at 1
    assert (sigma.argsort() == target.argsort()).all()
    assert torch.equal(fixed.rbm.log_sigma, torch.zeros(3))  # a buffer, not learned
    assert rbm.log_prob(x).mean() > fixed.log_prob(x).mean() + 1.0


def test_sigma_survives_save_and_load_and_old_states_still_load(tmp_path):
    x, _ = _two_clusters(200)
    rbm = genzoo.create("gb-rbm", data=x, n_hidden=3, learn_sigma=True, exact_log_z=True)
    with torch.no_grad():
        rbm.rbm.log_sigma.fill_(-0.5)
    rbm.save(str(tmp_path))
    again = genzoo.load(str(tmp_path))
    assert again.config["learn_sigma"] is True
    torch.testing.assert_close(again.log_prob(x[:5]), rbm.log_prob(x[:5]))
    old = ("chain_hidden", "rbm.log_sigma")  # states saved before these existed still load
    rbm.load_state_dict({k: v for k, v in rbm.state_dict().items() if k not in old})
    assert torch.equal(rbm.rbm.log_sigma.detach(), torch.zeros(3))  # sigma = 1, as then
    with pytest.raises(ValueError, match="gb-rbm"):  # binary units have no sigma
        genzoo.create("rbm", data=(x > 0).float(), learn_sigma=True)


# -- mixed precision: bfloat16 products, float32 everything else -------------------------------
def test_bf16_matmuls_give_the_fp32_update_to_bf16_precision():
    x = genzoo.load_dataset("digits-binary", split="train")[:200]
    layer = RBMLayer(64, 32)
    gen = torch.Generator().manual_seed(0)
    v, p = (torch.rand(40, 64, generator=gen) < 0.3).float(), torch.rand(40, 32, generator=gen)
    weights = torch.cat([torch.full((20,), 1 / 20), torch.full((20,), -1 / 20)])
    exact = layer.cd_statistics(v, p.clone(), weights)
    mixed = layer.cd_statistics(v, p.clone(), weights, matmul_dtype=torch.bfloat16)
    assert all(m.dtype == torch.float32 for m in mixed)
    torch.testing.assert_close(mixed[0], exact[0], rtol=1e-2, atol=1e-3)
    assert not torch.equal(mixed[0], exact[0])  # the product really ran in bfloat16
    deltas = []
    for name in ("float32", "bfloat16"):  # one CD-1 step from the same state and draws
        torch.manual_seed(0)
        model = genzoo.create("rbm", data=x, n_hidden=32, momentum=0.5, weight_decay=0.0)
        with torch.no_grad():
            model.rbm.weight.normal_(0, 0.3)
        before = [t.detach().clone() for t in model.rbm.trained_parameters()]
        model.fit_cd(x, batch_size=200, lr=0.1, generator=gen.manual_seed(1), matmul_dtype=name)
        after = model.rbm.trained_parameters()
        assert all(t.dtype == torch.float32 for t in after)
        deltas.append([t.detach() - t0 for t, t0 in zip(after, before, strict=True)])
    for exact, mixed in zip(*deltas, strict=True):  # a few samples may flip: 3e-2, not 1e-2
        error = ((mixed - exact).norm() / exact.norm()).item()
        assert 0 < error < 3e-2, error


def test_bf16_matmuls_train_as_well_as_fp32(binary_digits):
    train, test = binary_digits
    after = {}
    for name in ("float32", "bfloat16"):
        torch.manual_seed(0)
        rbm = genzoo.create("rbm", data=train, n_hidden=16, exact_log_z=True)
        before = rbm.log_prob(test).mean().item()
        rbm.fit_cd(
            train,
            epochs=15,
            batch_size=50,
            lr=0.05,
            generator=torch.Generator().manual_seed(0),
            matmul_dtype=name,
        )
        after[name] = rbm.log_prob(test).mean().item()
        assert after[name] > before + 5, (name, before, after)
    assert abs(after["bfloat16"] - after["float32"]) < 0.5, after


def test_fit_cd_refuses_an_unknown_matmul_dtype(binary_digits):
    rbm = genzoo.create("rbm", data=binary_digits[0][:50], n_hidden=4)
    with pytest.raises(ValueError, match="float32, bfloat16.*'fp16'"):
        rbm.fit_cd(binary_digits[0][:50], matmul_dtype="fp16")


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd_step_is_the_loss_and_sgd_update(weight_decay):
    """``sgd_step`` (the in-place PCD update, no autograd) == ``loss`` + ``torch.optim.SGD``:
    the same parameters and chains after three steps from the same random state."""
    data = genzoo.load_dataset("digits-binary", split="train")[:60]
    states = []
    for path in ("sgd_step", "loss"):
        torch.manual_seed(0)
        model = genzoo.create("rbm", data=data, n_hidden=6, persistent=True, n_chains=9,
                              weight_decay=weight_decay, momentum=0.0)  # fmt: skip
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(1)
        for batch in data.split(20):
            if path == "sgd_step":
                terms = model.sgd_step(batch, lr=0.1)
            else:
                opt.zero_grad()
                terms = model.loss(batch)
                sum(terms.values()).backward()
                opt.step()
        states.append(({k: v.clone() for k, v in model.state_dict().items()}, terms))
    (fast, fast_terms), (slow, slow_terms) = states
    for key in ("rbm.weight", "rbm.visible_bias", "rbm.hidden_bias", "chains", "chain_hidden"):
        torch.testing.assert_close(fast[key], slow[key], atol=1e-6, rtol=1e-5)
    assert fast_terms.keys() == slow_terms.keys()
    for key in fast_terms:
        torch.testing.assert_close(fast_terms[key], slow_terms[key].detach())
    with pytest.raises(ValueError, match="persistent"):
        genzoo.create("rbm", data=data, n_hidden=4).sgd_step(data[:10], lr=0.1)
