"""GANs: the objectives and penalties, the training protocol, mode coverage on mixtures,
CycleGAN cycle consistency, InfoGAN codes, ProGAN growth, StyleGAN style mixing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import genzoo
from genzoo.data import dequantize
from genzoo.data.domains import load_domain_pair, split_domains
from genzoo.figures.gans import (
    plot_infogan_codes,
    plot_mode_coverage,
    plot_style_mixing,
    plot_translations,
)
from genzoo.metrics.modes import mode_centres, mode_coverage
from genzoo.models.gans import (
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
    r2_penalty,
)


def _fit(model, data, steps, batch_size=128, lr=1e-3):
    trainer = genzoo.Trainer(steps=steps, batch_size=batch_size, lr=lr, progress=False)
    trainer.fit(model, data)
    return trainer


@pytest.fixture(scope="module")
def digits01() -> torch.Tensor:
    x = genzoo.load_dataset("digits", n=256)
    return dequantize(x, 17, torch.Generator().manual_seed(0))


# -- objectives and penalties -----------------------------------------------------------------
def test_objectives_take_their_paper_values():
    zero = torch.zeros(5)
    assert discriminator_loss("non-saturating", zero, zero).item() == pytest.approx(2 * math.log(2))
    assert generator_loss("minimax", zero).item() == pytest.approx(-math.log(2))
    assert generator_loss("non-saturating", zero).item() == pytest.approx(math.log(2))
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert discriminator_loss("wasserstein", real, fake).item() == pytest.approx(-1 - 2)
    assert discriminator_loss("least-squares", real, fake).item() == pytest.approx(
        0.5 * (0 + 4) / 2 + 0.5 * (0 + 4) / 2
    )
    assert generator_loss("least-squares", fake).item() == pytest.approx(0.5 * (1 + 9) / 2)
    with pytest.raises(ValueError, match="non-saturating"):
        generator_loss("hinge", fake)


def test_minimax_generator_gradient_saturates_where_non_saturating_does_not():
    # Early in training D rejects fakes confidently: logit -10, D(G(z)) ~ 4.5e-5.
    grads = {}
    for kind in ("minimax", "non-saturating"):
        logit = torch.tensor([-10.0], requires_grad=True)
        generator_loss(kind, logit).backward()
        grads[kind] = logit.grad.abs().item()
    assert grads["minimax"] < 1e-4  # sigmoid(-10)
    assert grads["non-saturating"] > 0.99  # 1 - sigmoid(-10)


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic():
    critic = nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.0, -0.8]]))  # ||w|| = 1: 1-Lipschitz
    real, fake = torch.randn(64, 3), torch.randn(64, 3) + 2
    gp = gradient_penalty(lambda x: critic(x).squeeze(-1), real, fake)
    assert gp.item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        critic.weight.mul_(3.0)  # ||w|| = 3: penalty (3 - 1)^2
    assert gradient_penalty(lambda x: critic(x).squeeze(-1), real, fake).item() == pytest.approx(4)


def test_r1_and_r2_are_half_the_squared_input_gradient_norm():
    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    x = torch.randn(10, 2)
    assert r1_penalty(lambda v: critic(v).squeeze(-1), x).item() == pytest.approx(12.5)
    # A quadratic critic f(x) = |x|^2: grad = 2x, so R2 = 1/2 E 4|x|^2.
    assert r2_penalty(lambda v: v.square().sum(1), x).item() == pytest.approx(
        (2 * x.square().sum(1)).mean().item(), rel=1e-5
    )


# -- protocol ---------------------------------------------------------------------------------
def test_log_prob_raises_density_unavailable_pointing_to_sample_metrics(moons):
    gan = genzoo.create("gan", data=moons, hidden=8)
    assert gan.density == "none"
    with pytest.raises(genzoo.DensityUnavailable, match="no density.*mode_coverage"):
        gan.log_prob(moons[:4])
    with pytest.raises(genzoo.DataError, match="shape"):
        gan.log_prob(torch.zeros(4, 3))


def test_schedule_betas_and_invalid_configs(moons):
    wgan = genzoo.create("wgan", data=moons, hidden=8)
    assert list(wgan.schedule(0)) == ["discriminator"] * 5 + ["generator"]
    assert wgan.optimizer_settings("discriminator") == {"betas": (0.0, 0.999)}
    assert genzoo.create("wgan-gp", data=moons, hidden=8).optimizer_settings("generator") == {
        "betas": (0.0, 0.9)
    }
    tuned = genzoo.create("gan", data=moons, hidden=8, betas=(0.0, 0.99))
    assert tuned.optimizer_settings("generator") == {"betas": (0.0, 0.99)}
    assert type(tuned)(**tuned.config).optimizer_settings("discriminator") == {"betas": (0.0, 0.99)}
    assert genzoo.create("gan", data=moons, hidden=8).betas == (0.5, 0.999)  # class default kept
    with pytest.raises(ValueError, match="betas"):
        genzoo.create("gan", data=moons, betas=(0.0, 1.5))
    with pytest.raises(ValueError, match="minimax"):
        genzoo.create("gan", data=moons, loss="hinge")
    with pytest.raises(ValueError, match="r1"):
        genzoo.create("lsgan", data=moons, penalty="r3")
    with pytest.raises(genzoo.DataError, match="even"):
        genzoo.create("cyclegan", data=torch.randn(10, 3))


def test_wgan_clips_the_critic_and_logs_its_diagnostics(moons):
    wgan = genzoo.create("wgan", data=moons, hidden=16, clip_value=0.02, n_critic=2)
    trainer = _fit(wgan, moons, steps=3, batch_size=64)
    assert all(p.abs().max() <= 0.02 for p in wgan.discriminator.parameters())
    row = trainer.history[-1]
    for key in ("real_accuracy", "fake_accuracy", "grad_norm", "wasserstein"):
        assert f"discriminator/diag/{key}" in row
    assert row["discriminator/diag/grad_norm"] > 0 and row["generator/diag/grad_norm"] > 0


def test_generator_ema_is_a_buffer_used_for_sampling(moons, tmp_path):
    gan = genzoo.create("gan", data=moons, hidden=8, ema_decay=0.9)
    assert not any("ema" in name for name, _ in gan.named_parameters())
    _fit(gan, moons, steps=30, batch_size=64)
    ema = gan.generator_ema.state()
    assert any(not torch.equal(ema[k], p) for k, p in gan.generator.named_parameters())
    g = torch.Generator().manual_seed(0)
    z = gan.draw_latent(5, torch.Generator().manual_seed(0))
    expected = torch.func.functional_call(gan.generator, ema, (z,))
    assert torch.allclose(gan.sample(5, g), expected)
    gan.save(tmp_path)
    assert torch.equal(
        genzoo.load(tmp_path).sample(5, g.manual_seed(1)), gan.sample(5, g.manual_seed(1))
    )


# -- mode coverage ----------------------------------------------------------------------------
def test_mode_coverage_of_exact_samples_and_of_a_collapsed_sampler():
    centres, std = mode_centres("8gaussians")
    x = genzoo.load_dataset("8gaussians", n=4000, seed=1)
    exact = mode_coverage(x, centres, std)
    assert exact["modes_covered"] == 8
    assert exact["high_quality_share"] == pytest.approx(
        0.9889, abs=0.01
    )  # chi2(2) at 9: 1 - e^-4.5
    collapsed = mode_coverage(torch.tensor(centres[:1]).repeat(100, 1), centres, std)
    assert collapsed["modes_covered"] == 1 and collapsed["counts"][0] == 100
    assert mode_coverage(x + 10, centres, std)["high_quality_share"] == 0
    grid, std25 = mode_centres("25gaussians")
    assert (
        mode_coverage(genzoo.load_dataset("25gaussians", n=2500), grid, std25)["modes_covered"]
        == 25
    )


def test_non_saturating_gan_with_r1_covers_the_eight_gaussians():
    x = genzoo.load_dataset("8gaussians", n=4000, seed=0)
    torch.manual_seed(0)
    gan = genzoo.create("gan", data=x, hidden=64, penalty="r1", penalty_weight=1.0)
    _fit(gan, x, steps=1000, batch_size=256)
    centres, std = mode_centres("8gaussians")
    result = mode_coverage(gan.sample(2500, torch.Generator().manual_seed(1)), centres, std)
    # Measured: 8 modes, 94% high quality (seed 0).
    assert result["modes_covered"] >= 7
    assert result["high_quality_share"] >= 0.8


def test_non_saturating_gan_with_r1_covers_most_of_the_twenty_five_gaussians():
    # Modes of std 0.018 on a grid of spacing 0.707 (the usual std 0.05 on spacing 2, scaled):
    # a sampler spread evenly over the grid's square would put 1.8% of its samples within
    # 3 std of a centre. Precision grows with the budget (batch 256, 3000 + 1500 steps: 25
    # modes, 77%; benchmarks/bench_gan_modes.py); at this small one, momentum-free Adam
    # (betas (0, 0.99)) doubles it: with DCGAN's (0.5, 0.999) this run gave 24 modes, 6.3%.
    x = genzoo.load_dataset("25gaussians", n=4000, seed=0)
    torch.manual_seed(0)
    gan = genzoo.create("gan", data=x, hidden=128, depth=3, latent_dim=4, penalty="r1",
                        penalty_weight=0.1, ema_decay=0.99, betas=(0.0, 0.99))  # fmt: skip
    _fit(gan, x, steps=600, batch_size=128, lr=1e-3)
    _fit(gan, x, steps=400, batch_size=128, lr=1e-4)
    centres, std = mode_centres("25gaussians")
    result = mode_coverage(gan.sample(2500, torch.Generator().manual_seed(1)), centres, std)
    # Measured: 24 modes, 12.8% high quality (seed 0; seeds 1, 2: 23 modes, 9.2% and 12.9%).
    assert result["modes_covered"] >= 21
    assert result["high_quality_share"] >= 0.08


# -- CycleGAN, InfoGAN ------------------------------------------------------------------------
def test_cyclegan_cycle_error_falls_and_sample_translates_the_bank():
    x = load_domain_pair("moons-circles", n=2000)
    cyc = genzoo.create("cyclegan", data=x, hidden=32, bank_size=64)
    before = cyc.cycle_error(x[:500])
    _fit(cyc, x, steps=150)
    after = cyc.cycle_error(x[:500])
    assert after < 0.3 * before  # measured: 1.33 -> 0.04
    a, _ = split_domains(cyc.bank)
    g = torch.Generator().manual_seed(0)
    fake = cyc.sample(4, g)
    idx = torch.randint(64, (2, 4), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(fake[:, 2:], cyc.translate(a[idx[0]], "AB"))


def test_infogan_recovers_its_categorical_code_far_above_chance():
    x = genzoo.load_dataset("8gaussians", n=2000, seed=0)
    accuracy, purity = {}, {}
    centres = torch.as_tensor(mode_centres("8gaussians")[0], dtype=torch.float32)
    for weight in (0.0, 2.0):
        torch.manual_seed(0)
        info = genzoo.create(
            "infogan", data=x, hidden=64, n_categories=8, n_continuous=1, info_weight=weight
        )
        _fit(info, x, steps=300)
        accuracy[weight] = info.code_accuracy(1000, torch.Generator().manual_seed(0))
        nearest_mode = lambda v: torch.cdist(v, centres).argmin(1)  # noqa: E731
        purity[weight] = info.code_purity(nearest_mode, 100, torch.Generator().manual_seed(0))
    # Without the mutual-information term Q is never trained: chance (1/8). Measured 0.98 with.
    assert accuracy[0.0] < 0.3 and accuracy[2.0] > 4 / 8
    # With it, each categorical value lands mostly on one mode (measured purity 0.86 against
    # 0.23 without; codes may share a mode, told apart by position within it).
    assert purity[2.0]["purity"] > 0.7 and purity[0.0]["purity"] < 0.45


# -- ProGAN -----------------------------------------------------------------------------------
def test_progan_growth_schedule_and_seamless_fade_in(digits01):
    pro = genzoo.create("progan", data=digits01, channels=8, steps_per_phase=10)
    assert [pro.growth(t) for t in (0, 9, 10, 15, 20, 99)] == [
        (0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0),
    ]  # fmt: skip
    z = torch.randn(4, 32)
    old = pro.generator(z, 0, 1.0)  # (4, 1, 4, 4)
    new = pro.generator(z, 1, 0.0)  # (4, 1, 8, 8): alpha = 0 is the upsampled old output
    assert new.shape == (4, 1, 8, 8)
    assert torch.allclose(new, old.repeat_interleave(2, 2).repeat_interleave(2, 3), atol=1e-6)
    real = digits01[:4]
    assert torch.allclose(pro.real_at_level(real, 0, 1.0).mean((1, 2, 3)), real.mean((1, 2, 3)))
    with pytest.raises(genzoo.DataError, match="images"):
        genzoo.create("progan", data=torch.randn(8, 2))


def test_progan_contract_on_digits(digits01, tmp_path):
    """The contract test's checks, on images (ProGAN does not take vectors)."""
    pro = genzoo.create("progan", data=digits01, channels=8, steps_per_phase=4)
    _fit(pro, digits01, steps=5, batch_size=32)
    assert pro.growth() == (1, 0.25)  # fading in: every layer is in use
    for player in pro.players:
        pro.zero_grad()
        terms = pro.loss(digits01[:32], player)
        sum(terms.values()).backward()
        for p in pro.player_parameters(player):
            assert p.grad is not None and p.grad.abs().sum() > 0
    g = torch.Generator()
    a, b = pro.sample(6, g.manual_seed(3)), pro.sample(6, g.manual_seed(3))
    assert a.shape == (6, 1, 8, 8) and torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    pro.save(tmp_path)
    loaded = genzoo.load(tmp_path)
    assert loaded.growth() == (1, 0.25)
    assert torch.equal(loaded.sample(6, g.manual_seed(3)), a)
    with pytest.raises(genzoo.DensityUnavailable):
        loaded.log_prob(digits01[:2])


# -- StyleGAN ---------------------------------------------------------------------------------
def test_stylegan_style_mixing_switches_styles_at_the_crossover(digits01):
    sty = genzoo.create("stylegan", data=digits01, channels=8, hidden=8, ema_decay=0.0)
    with torch.no_grad():
        for conv in sty.generator.convs:
            conv.noise.strength.fill_(0.3)
    za, zb = torch.randn(3, 32), torch.randn(3, 32)
    g = torch.Generator()
    plain_a = sty.run_generator(za, g.manual_seed(0))
    plain_b = sty.run_generator(zb, g.manual_seed(0))
    n = sty.n_styles
    assert torch.allclose(sty.mix_styles(za, zb, n, g.manual_seed(0)), plain_a)
    assert torch.allclose(sty.mix_styles(za, zb, 0, g.manual_seed(0)), plain_b)
    mixed = sty.mix_styles(za, zb, n // 2, g.manual_seed(0))
    assert not torch.allclose(mixed, plain_a) and not torch.allclose(mixed, plain_b)
    # Noise inputs: another noise draw changes the image only through the noise strengths.
    assert not torch.allclose(sty.run_generator(za, g.manual_seed(1)), plain_a)


def test_demodulated_kernels_have_unit_norm_per_output_channel(digits01):
    sty = genzoo.create("stylegan", data=digits01, channels=8, hidden=8)
    conv = sty.generator.convs[0].conv
    kernels = conv.kernels(torch.randn(5, 32))  # (n, out, in, k, k)
    assert torch.allclose(kernels.square().sum((2, 3, 4)), torch.ones(5, 8), atol=1e-5)


# -- domains and figures ----------------------------------------------------------------------
def test_domain_pairs_are_unpaired_levels():
    for name in ("digits-inverted", "digits-thick"):
        x = load_domain_pair(name)
        assert x.shape == (500, 2, 8, 8)
        assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= 16
        a, b = split_domains(x)
        assert not any(torch.equal(a[0], t) for t in b)
    inverted = load_domain_pair("digits-inverted")[:, 1]
    assert inverted.mean() > 16 - genzoo.load_dataset("digits").mean() - 1  # mostly bright
    thick_a, thick_b = split_domains(load_domain_pair("digits-thick"))
    assert (thick_b > 0).float().mean() > (thick_a > 0).float().mean()
    assert load_domain_pair("moons-circles", n=100, seed=3).shape == (100, 4)
    with pytest.raises(genzoo.UnknownNameError, match="digits-thick"):
        load_domain_pair("digits-thik")


def test_figures_are_written(tmp_path, digits01, moons):
    info = genzoo.create("infogan", data=digits01, hidden=8, n_categories=3, n_continuous=1)
    assert plot_infogan_codes(info, tmp_path / "codes.png", n_values=4).stat().st_size > 0
    info = genzoo.create("infogan", data=digits01, hidden=8, n_categories=3, n_continuous=0)
    assert plot_infogan_codes(info, tmp_path / "noise.png", n_values=4).stat().st_size > 0
    sty = genzoo.create("stylegan", data=digits01, channels=8, hidden=8)
    assert plot_style_mixing(sty, tmp_path / "mixing.png", n=3).stat().st_size > 0
    pair = load_domain_pair("digits-thick", n=32)
    cyc = genzoo.create("cyclegan", data=dequantize(pair, 17), hidden=8, depth=1)
    assert plot_translations(cyc, dequantize(pair, 17), tmp_path / "tr.png", n=4).exists()
    centres, std = mode_centres("8gaussians")
    assert plot_mode_coverage(moons, centres, std, tmp_path / "modes.png").exists()
