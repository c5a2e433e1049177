"""VAE family: the maths (analytic KL, planar log-det, IWAE on a linear-Gaussian model with a
known marginal) and the behaviour (bounds ordered, beats a baseline, beta lowers the KL)."""

from __future__ import annotations

import math

import pytest
import torch

import genzoo
from genzoo.models.vae import BetaVAE, collapse_report, gaussian_kl, interpolate, slerp, traverse
from genzoo.models.vae.likelihoods import Bernoulli, Categorical, Gaussian
from genzoo.models.vae.posterior import planar_flow


@pytest.fixture(scope="module")
def binary_digits() -> tuple[torch.Tensor, torch.Tensor]:
    return (
        genzoo.load_dataset("digits-binary", split="train"),
        genzoo.load_dataset("digits-binary", split="test"),
    )


@pytest.fixture(scope="module")
def trained(binary_digits):
    """An MLP VAE on binarised digits, trained for a few seconds."""
    x, _ = binary_digits
    torch.manual_seed(0)
    model = genzoo.create("vae", data=x, latent_dim=8, hidden=64, iwae_samples=100)
    genzoo.Trainer(steps=600, batch_size=64, lr=3e-3, progress=False).fit(model, x)
    return model


# -- maths ------------------------------------------------------------------------------------
def test_analytic_kl_equals_monte_carlo():
    torch.manual_seed(1)
    mu, logvar = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 3, 4, dtype=torch.float64)
    log_q = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    gap = log_q - log_p  # (samples, 3)
    stderr = gap.std(0) / math.sqrt(gap.shape[0])
    analytic = gaussian_kl(mu, logvar).sum(-1)
    assert ((gap.mean(0) - analytic).abs() < 4 * stderr).all()


def test_likelihoods_are_normalised_distributions():
    params = torch.randn(5, 3, 1, dtype=torch.float64)  # 5 examples, 3 params, D = 1
    cat = Categorical(3)
    levels = torch.arange(3.0, dtype=torch.float64)
    total = torch.stack([cat.log_prob(torch.full((5, 1), v), params) for v in levels]).exp()
    assert torch.allclose(total.sum(0), torch.ones(5, dtype=torch.float64))
    bern = Bernoulli()
    total = sum(
        bern.log_prob(torch.full((5, 1), v, dtype=params.dtype), params[:, :1]).exp()
        for v in (0.0, 1.0)
    )
    assert torch.allclose(total, torch.ones(5, dtype=torch.float64))
    gauss = Gaussian(1, "learned", 0.1)
    x = torch.randn(5, 1, dtype=torch.float64)
    expected = torch.distributions.Normal(params[:, 0], gauss.std(params[:, :2])).log_prob(x)
    assert torch.allclose(gauss.log_prob(x, params[:, :2]), expected.sum(-1))


def test_planar_log_det_matches_autograd_and_maps_stay_invertible():
    torch.manual_seed(2)
    d, layers = 3, 4
    params = torch.randn(1, layers * (2 * d + 1), dtype=torch.float64) * 2
    z = torch.randn(1, 1, d, dtype=torch.float64)
    _, log_det = planar_flow(z, params, layers)
    jac = torch.autograd.functional.jacobian(
        lambda v: planar_flow(v.view(1, 1, d), params, layers)[0].view(d), z.view(d)
    )
    assert torch.allclose(log_det.view(()), torch.linalg.slogdet(jac)[1])
    assert torch.linalg.slogdet(jac)[0] > 0  # w.u_hat > -1 keeps every map orientation-preserving


def _linear_gaussian_vae(sigma: float = 0.5) -> tuple[genzoo.models.vae.VAE, torch.Tensor]:
    """x = W z + b + sigma eps with W's columns orthogonal, so the exact posterior is diagonal."""
    model = genzoo.create(
        "vae", data_shape=[3], latent_dim=2, likelihood="gaussian", decoder_variance="fixed",
        decoder_std=sigma, depth=0, iwae_samples=20_000,
    ).double()  # fmt: skip
    w = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [0.0, 0.5]], dtype=torch.float64)
    b = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    with torch.no_grad():
        model.decoder.net[0].weight.copy_(w)
        model.decoder.net[0].bias.copy_(b)
    covariance = w @ w.T + sigma**2 * torch.eye(3, dtype=torch.float64)
    x = torch.distributions.MultivariateNormal(b, covariance).sample((20,))
    exact = torch.distributions.MultivariateNormal(b, covariance).log_prob(x)
    post_cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + w.T @ w / sigma**2)
    gain = post_cov @ w.T / sigma**2  # E[z | x] = gain (x - b)
    with torch.no_grad():
        enc = model.encoder.net[1][0]
        enc.weight.zero_()
        enc.bias.zero_()
        enc.weight[:2] = gain
        enc.bias[:2] = -gain @ b
        enc.bias[2:] = post_cov.diagonal().log()
    return model, x, exact


def test_iwae_is_exact_with_the_exact_posterior():
    torch.manual_seed(3)
    model, x, exact = _linear_gaussian_vae()
    assert torch.allclose(model.iwae(x, 1), exact, atol=1e-10)
    # the ELBO is exact too, up to the Monte-Carlo error of its reconstruction term
    assert torch.allclose(model.elbo(x, samples=20_000), exact, atol=0.05)


def test_iwae_converges_to_the_exact_marginal_likelihood():
    torch.manual_seed(4)
    model, x, exact = _linear_gaussian_vae()
    with torch.no_grad():  # a poor posterior: shifted means, too wide
        model.encoder.net[1][0].bias[:2] += 0.5
        model.encoder.net[1][0].bias[2:] += 1.0
    elbo_gap = (exact - model.elbo(x, samples=100)).mean()
    gaps = [float((exact - model.iwae(x, k)).mean()) for k in (1, 10, 20_000)]
    assert elbo_gap > 1.0
    assert gaps[0] > gaps[1] > abs(gaps[2])
    assert abs(gaps[2]) < 0.02
    assert abs(float((exact - model.log_prob(x)).mean())) < 0.02


# -- behaviour on binarised digits --------------------------------------------------------------
def test_bounds_are_ordered_elbo_iwae_k_iwae_kprime(trained, binary_digits):
    _, test = binary_digits
    elbo = trained.elbo(test, samples=10).mean()
    iwae_10, iwae_100 = trained.iwae(test, 10).mean(), trained.iwae(test, 100).mean()
    assert elbo < iwae_10 < iwae_100


def test_vae_beats_an_independent_bernoulli_baseline(trained, binary_digits):
    x, test = binary_digits
    p = (x.mean(0) * len(x) + 1) / (len(x) + 2)  # Laplace-smoothed pixel frequencies
    baseline = (test * p.log() + (1 - test) * (1 - p).log()).flatten(1).sum(1).mean()
    nll_vae = -trained.log_prob(test).mean()
    assert trained.likelihood_name == "bernoulli" and trained.data_kind == "discrete"
    assert nll_vae < -baseline - 3.0  # about 20 vs 25 nats


def test_interpolation_endpoints_decode_close_to_their_inputs(trained, binary_digits):
    _, test = binary_digits
    errors, distances = [], []
    for i in range(10):
        a, b = test[i], test[i + 10]
        path = interpolate(trained, a, b, steps=6)
        assert path.shape == (6, 1, 8, 8)
        ends = (path[[0, -1]] > 0.5).float()  # the decoded endpoints, binarised
        errors += [(ends[0] - a).abs().mean(), (ends[1] - b).abs().mean()]
        distances.append((a - b).abs().mean())
    assert torch.stack(errors).mean() < 0.5 * torch.stack(distances).mean()
    spherical = interpolate(trained, test[0], test[1], steps=4, path="slerp")
    assert torch.allclose(spherical[[0, -1]], interpolate(trained, test[0], test[1], 4)[[0, -1]],
                          atol=1e-5)  # fmt: skip


def test_collapse_diagnostics_add_up(trained, binary_digits):
    _, test = binary_digits
    report = collapse_report(trained, test)
    assert len(report["kl_per_dim"]) == 8 and 1 <= report["active_units"] <= 8
    inactive = [k for k, a in zip(report["kl_per_dim"], report["activity"], strict=True)
                if a < 0.01]  # fmt: skip
    assert all(k < 0.1 for k in inactive)  # a unit whose mean ignores x carries no information
    terms = trained.loss(test)
    assert terms["diag/active_units"] >= 1
    per_dim = sum(float(terms[f"diag/kl_dim{j}"]) for j in range(8))
    assert per_dim == pytest.approx(float(terms["diag/kl_unweighted"]), rel=1e-5)


def test_beta_above_one_lowers_the_kl(binary_digits):
    x, test = binary_digits
    kls = {}
    for beta in (1.0, 4.0):
        torch.manual_seed(0)
        model = BetaVAE(data_shape=[1, 8, 8], beta=beta, likelihood="bernoulli", latent_dim=4,
                        hidden=32, iwae_samples=10)  # fmt: skip
        genzoo.Trainer(steps=300, batch_size=64, lr=3e-3, progress=False).fit(model, x)
        kls[beta] = sum(collapse_report(model, test)["kl_per_dim"])
    assert kls[4.0] < 0.7 * kls[1.0]


# -- options ------------------------------------------------------------------------------------
def test_kl_warmup_ramps_the_weight_and_is_saved(moons, tmp_path):
    model = genzoo.create("beta-vae", data=moons, beta=2.0, kl_warmup_steps=10, hidden=8)
    assert model.kl_weight() == 0.0
    genzoo.Trainer(steps=5, batch_size=32, progress=False).fit(model, moons)
    assert model.kl_weight() == pytest.approx(1.0)
    assert float(model.loss(moons[:64])["diag/kl_weight"]) == pytest.approx(1.0)
    model.save(tmp_path)
    assert genzoo.load(tmp_path).kl_weight() == pytest.approx(1.0)


def test_planar_posterior_trains_and_its_iwae_is_above_its_elbo(moons):
    torch.manual_seed(0)
    model = genzoo.create("vae", data=moons, posterior="planar", flow_layers=3, latent_dim=2,
                          hidden=32, iwae_samples=50)  # fmt: skip
    genzoo.Trainer(steps=200, batch_size=128, lr=3e-3, progress=False).fit(model, moons)
    terms = model.loss(moons[:256])
    model.zero_grad()
    (terms["reconstruction"] + terms["kl"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.elbo(moons[:500], samples=10).mean() < model.log_prob(moons[:500]).mean()


def test_likelihood_network_and_data_kind_follow_the_data(moons):
    levels = torch.randint(0, 17, (64, 1, 8, 8)).float()
    cat = genzoo.create("vae", data=levels, likelihood="categorical", hidden=16, iwae_samples=5)
    assert cat.likelihood.levels == 17 and cat.data_kind == "discrete"
    assert set(cat.sample(3, torch.Generator().manual_seed(0)).unique().tolist()) <= set(range(17))
    assert cat.log_prob(levels[:4]).shape == (4,)
    big = genzoo.create("vae", data=torch.rand(4, 1, 16, 16), hidden=8, channels=4)
    assert big.likelihood_name == "gaussian" and big.data_kind == "continuous"
    assert isinstance(big.encoder.net[0], torch.nn.Conv2d)
    assert genzoo.models.vae.VAE.data_kind_for(levels.clamp(max=1), {}) == "discrete"
    with pytest.raises(ValueError, match="bernoulli"):
        genzoo.create("vae", data=moons, likelihood="bernulli")
    with pytest.raises(ValueError, match="H and W divisible by 4"):
        genzoo.create("vae", data=moons, network="conv")
    with pytest.raises(genzoo.DataError, match="\\[0, 1\\]"):
        genzoo.create("vae", data=moons, likelihood="bernoulli")
    with pytest.raises(genzoo.DataError, match="integer levels"):
        genzoo.create("vae", data=levels + 0.5, likelihood="categorical", levels=17)


def test_traversal_and_slerp_shapes(trained):
    grid = traverse(trained, dims=[0, 3], values=[-2, 0, 2])
    assert grid.shape == (2, 3, 1, 8, 8)
    assert torch.allclose(grid[0, 1], grid[1, 1])  # both hold the prior mean
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    with pytest.raises(ValueError, match="dims"):
        traverse(trained, dims=[8])


# -- figures --------------------------------------------------------------------------------------
def test_figures_are_written(trained, binary_digits, tmp_path):
    from genzoo.figures.vae import (
        digits_labels,
        plot_interpolation,
        plot_latent_scatter,
        plot_traversal,
    )

    _, test = binary_digits
    labels = digits_labels("test")
    assert labels.shape == (447,) and set(labels.tolist()) == set(range(10))
    paths = [
        plot_interpolation(trained, [(test[0], test[1]), (test[2], test[3])], tmp_path / "i.png"),
        plot_traversal(trained, tmp_path / "t.png", x=test[0], dims=[0, 1]),
        plot_latent_scatter(trained, test, labels, tmp_path / "s.png"),
    ]
    assert all(p.stat().st_size > 1000 for p in paths)


# -- sentence VAE ---------------------------------------------------------------------------------
def _toy_sentences(n: int = 256, seq_len: int = 6) -> torch.Tensor:
    """Two 'languages': sentences of ids 4,5 or of ids 6,7, ended by <eos> and padded."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, seq_len, (n,), generator=g)
    lang = torch.randint(0, 2, (n,), generator=g)
    x = torch.zeros(n, seq_len, dtype=torch.long)
    for i in range(n):
        words = 4 + 2 * lang[i] + torch.randint(0, 2, (int(lengths[i]),), generator=g)
        x[i, : len(words)] = words
        x[i, len(words)] = 2  # <eos>
    return x


def test_sentence_decoder_is_a_normalised_distribution_over_sentences():
    import itertools

    model = genzoo.create("sentence-vae", data=torch.full((4, 3), 5), vocab_size=6, hidden=8,
                          embed_dim=4, latent_dim=2).double()  # fmt: skip
    z = torch.randn(1, 2, dtype=torch.float64)
    sentences = []  # every id sequence the decoder can emit: words until <eos>, then <pad>
    for ids in itertools.product([2, 3, 4, 5], repeat=3):
        ids = list(ids)
        if 2 in ids:
            end = ids.index(2)
            ids = ids[: end + 1] + [0] * (2 - end)
        sentences.append(tuple(ids))
    x = torch.tensor(sorted(set(sentences)))
    with torch.no_grad():
        total = model.sequence_log_prob(x, z.expand(len(x), 2)).exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-10)


def test_sentence_vae_learns_codes_and_decodes_greedy_sampled_and_homotopy(tmp_path):
    from genzoo.models.vae import homotopy

    x = _toy_sentences()
    torch.manual_seed(0)
    model = genzoo.create("sentence-vae", data=x, hidden=32, embed_dim=16, latent_dim=4,
                          kl_warmup_steps=100, word_dropout=0.3, iwae_samples=20)  # fmt: skip
    trainer = genzoo.Trainer(steps=250, batch_size=64, lr=1e-2, progress=False, log_every=50)
    trainer.fit(model, x)
    assert trainer.history[-1]["diag/kl_weight"] == 1.0
    assert model.elbo(x[:64], samples=5).mean() <= model.log_prob(x[:64]).mean()
    # the code knows the language: greedy decodings of a code keep its sentence's words
    greedy = model.decode(model.encode(x[:64]))
    same_language = (greedy[:, 0] >= 6) == (x[:64, 0] >= 6)
    assert same_language.float().mean() > 0.9
    sampled = model.sample(32, torch.Generator().manual_seed(1))
    assert sampled.dtype == torch.long and sampled.shape == (32, 6)
    after_eos = (sampled == 2).long().cumsum(1).roll(1, 1)
    after_eos[:, 0] = 0
    assert (sampled[after_eos > 0] == 0).all()  # <pad> after <eos>
    path = homotopy(model, x[0], x[1], steps=4)
    assert path.shape == (4, 6)
    tok = genzoo.data.text.Tokenizer(["a", "b", "c", "d"], level="word")
    lines = homotopy(model, x[0], x[1], steps=3, tokenizer=tok)
    assert len(lines) == 3 and all(isinstance(s, str) for s in lines)
    with pytest.raises(genzoo.DataError, match="token ids"):
        model.log_prob(x[:2] + 100)
    model.save(tmp_path)
    assert torch.equal(genzoo.load(tmp_path).log_prob(x[:8]), model.log_prob(x[:8]))


def test_free_bits_kl_floors_each_dimension_and_stops_its_gradient():
    from genzoo.models.vae.likelihoods import free_bits_kl

    kl_dims = torch.tensor([[0.1, 2.0, 0.0], [0.3, 1.0, 0.05]], requires_grad=True)
    assert torch.allclose(free_bits_kl(kl_dims, 0.0), kl_dims.sum(1).mean())
    penalty = free_bits_kl(kl_dims, 0.5)  # batch means 0.2, 1.5, 0.025 -> 0.5 + 1.5 + 0.5
    assert float(penalty.detach()) == pytest.approx(2.5)
    penalty.backward()
    assert torch.equal(kl_dims.grad, torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]]))
    with pytest.raises(ValueError, match="free_bits"):
        genzoo.create("vae", data=torch.randn(8, 2), free_bits=0.5, posterior="planar")


def test_free_bits_keep_the_sentence_vae_from_collapsing():
    """Plain ELBO, short run: the LSTM decoder ignores z (KL ~ 0, one greedy sentence for every
    code); with free bits (Kingma et al. 2016) the codes carry the language and homotopy moves."""
    from genzoo.models.vae import active_units, homotopy

    x = _toy_sentences(256, 8)
    a, b = x[x[:, 0] < 6][0], x[x[:, 0] >= 6][0]  # one sentence of each language
    result = {}
    for free_bits in (0.0, 0.5):
        torch.manual_seed(0)
        model = genzoo.create("sentence-vae", data=x, hidden=32, embed_dim=16, latent_dim=4,
                              kl_warmup_steps=0, word_dropout=0.0, free_bits=free_bits,
                              iwae_samples=5)  # fmt: skip
        genzoo.Trainer(steps=150, batch_size=64, lr=1e-2, progress=False).fit(model, x)
        with torch.no_grad():
            mu, logvar = model.posterior_parameters(x)
        path = homotopy(model, a, b, steps=5)
        result[free_bits] = (float(gaussian_kl(mu, logvar).sum(1).mean()),
                             active_units(mu), path)  # fmt: skip
    kl, units, path = result[0.0]
    assert kl < 0.1 and units == 0 and len({tuple(p) for p in path.tolist()}) == 1  # collapse
    kl, units, path = result[0.5]
    assert kl > 1.0 and units >= 2
    assert len({tuple(p) for p in path.tolist()}) >= 2
    assert path[0, 0] < 6 <= path[-1, 0]  # the ends decode into their sentences' languages


def test_fused_reparameterisation_and_kl_match_autograd():
    """The one-node z and KL of the training loss (issue 19) give the values and gradients of
    the plain ops they replace: z = mu + exp(logvar / 2) eps and the analytic KL."""
    from genzoo.models.vae.likelihoods import gaussian_kl, reparameterise_with_kl

    gen = torch.Generator().manual_seed(0)
    mu, logvar, eps = (torch.randn(5, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    up_z, up_kl = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    results = []
    for fused in (True, False):
        m, lv = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        if fused:
            z, kl = reparameterise_with_kl(m, lv, eps)
        else:
            z, kl = m + (0.5 * lv).exp() * eps, gaussian_kl(m, lv)
        ((z * up_z).sum() + (kl * up_kl).sum()).backward()
        results.append((z.detach(), kl.detach(), m.grad, lv.grad))
    for fused, plain in zip(*results, strict=True):
        torch.testing.assert_close(fused, plain)
    m, lv = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: reparameterise_with_kl(a, b, eps), (m, lv))
