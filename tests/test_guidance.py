"""Class-conditional score models and classifier-free guidance (issue 17, phase 2; Ho &
Salimans 2022, "Classifier-Free Diffusion Guidance", arXiv:2207.12598).

Guidance scale ``w``: ``eps(null) + w (eps(c) - eps(null))``, 0 the unconditional model, 1
the conditional one, > 1 guided (Ho & Salimans' eq. 6 with their ``w`` = this ``w - 1``).

Measured on this machine (CPU, one thread; the floors asserted below are safe ones): ``ddpm``
(``hidden=32, depth=2``, 100 timesteps, 50 ancestral steps) trained 200 steps on 4,000
points of ``8gaussians`` given the component, 800 samples (100 per class): the share of
class-k samples within 2 std of mode k's centre is 0.718 / 0.943 / 0.981 at w = 1 / 2 / 4
(torch seeds 0-3: 0.714-0.721, 0.882-0.943 and 0.907-0.981; chance, a random mode, is at
most 1/8); the nearest centre is the class's for 98% at w = 1 and 100% at w >= 2; the
unconditional samples (null class) put 75-123 of 800 nearest each mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genzoo
from genzoo import DataError
from genzoo.cli import main
from genzoo.metrics.modes import mode_centres
from genzoo.models.base import GenerativeModel
from genzoo.models.score import AnnealedLangevin, DDPMAncestral, PredictorCorrector
from genzoo.models.score.sde import _expand
from genzoo.workflow import sample as sample_run
from genzoo.workflow import train

TINY = {
    "ddpm": {"n_timesteps": 50, "sampling_steps": 10},
    "score-sde": {"sampling_steps": 8},
    "ncsn": {"n_levels": 4, "n_steps_each": 3},
}


@pytest.fixture(scope="module")
def gaussians() -> tuple[torch.Tensor, torch.Tensor]:
    return genzoo.load_dataset("8gaussians", n=4000, condition=True)


def _model(name: str, x: torch.Tensor, c: torch.Tensor, **hparams) -> GenerativeModel:
    torch.manual_seed(0)
    settings = {"hidden": 16, "depth": 2, **TINY[name], **hparams}
    return genzoo.create(name, data=x[:512], condition=c[:512], **settings)


# -- the protocol ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TINY))
def test_class_conditional_samples_have_the_shapes_asked_for(name, gaussians):
    x, c = gaussians
    model = _model(name, x, c)
    assert model.condition_kind == "discrete" and model.n_classes == 8
    assert model.config["p_uncond"] == 0.1 and model.config["guidance"] is None
    assert model.net.classes.table.num_embeddings == 9  # 8 classes and the null class
    g = torch.Generator().manual_seed(0)
    assert model.sample(5, g, c=3).shape == (5, 2)
    assert model.sample(6, c=torch.arange(6), guidance=2.0).shape == (6, 2)
    assert model.sample(4).shape == (4, 2)  # c=None: the unconditional model (null class)
    assert model.sample_trajectory(3, n_frames=2, c=1, guidance=1.0).shape == (2, 3, 2)
    assert model.score(x[:3], 0.5, c=2, guidance=1.0).shape == (3, 2)
    genzoo.Trainer(steps=2, batch_size=32, progress=False).fit(model, x, condition=c)


@pytest.mark.parametrize("name", sorted(TINY))
def test_guidance_one_is_the_conditional_sampler_on_the_same_noise(name, gaussians):
    """w = 1 (the default) draws exactly what the sampler driven by the class's own network
    output draws from the same generator; the config's guidance is the default of
    ``sample``."""
    x, c = gaussians
    model = _model(name, x, c)
    for p in model.net.classes.parameters():  # make the classes matter at initialisation
        p.data.mul_(3.0)
    k, n = 5, 16
    labels = torch.full((n,), k)

    def eps(y, level):
        return model.predict_noise(y, level, averaged=True, labels=labels)

    g = torch.Generator().manual_seed(7)
    if name == "ddpm":
        y = torch.randn(n, 2, generator=g)
        y = DDPMAncestral(model.alphas_bar, model.sampling_steps)(eps, y, g)
    elif name == "score-sde":
        y = torch.randn(n, 2, generator=g) * model.sde.prior_std()
        pc = PredictorCorrector(model.sde, model.sampling_steps, 1, model.snr, model.t_min)
        y = pc(lambda y, t: -eps(y, t) / _expand(model.marginal(t)[1], y), y, g)
    else:
        y = torch.randn(n, 2, generator=g) * model.sigmas[0]
        langevin = AnnealedLangevin(model.sigmas, 3, model.sampler.step_lr)
        y = langevin(lambda y, s: -eps(y, s.log()) / s[:, None], y, g)
    expected = model.from_latent(y)
    got = model.sample(n, torch.Generator().manual_seed(7), c=k, guidance=1.0)
    assert torch.equal(got, expected)
    assert torch.equal(model.sample(n, torch.Generator().manual_seed(7), c=k), expected)
    assert model.last_nfe == model.sampling_cost()["nfe_per_sample"]
    guided = model.sample(n, torch.Generator().manual_seed(7), c=k, guidance=2.0)
    assert model.last_nfe == 2 * model.sampling_cost()["nfe_per_sample"]
    assert not torch.allclose(guided, expected)
    # the config's weight is the default of sample(); c=None is the null class, unguided
    again = genzoo.create(name, data=x[:512], condition=c[:512], hidden=16, depth=2,
                          guidance=2.0, **TINY[name])  # fmt: skip
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.sample(n, torch.Generator().manual_seed(7), c=k), guided)
    null = model.sample(n, torch.Generator().manual_seed(7), c=None, guidance=2.0)
    torch.testing.assert_close(null, again.sample(n, torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("name", sorted(TINY))
def test_guidance_zero_is_the_unconditional_sampler_on_the_same_noise(name, gaussians):
    """w = 0 draws exactly (bit for bit) what c=None, the unconditional model, draws from
    the same generator, at one network evaluation per step."""
    x, c = gaussians
    model = _model(name, x, c)
    for p in model.net.classes.parameters():  # make the classes matter at initialisation
        p.data.mul_(3.0)
    free = model.sample(16, torch.Generator().manual_seed(7))
    for k in (5, torch.arange(16) % 8):
        zero = model.sample(16, torch.Generator().manual_seed(7), c=k, guidance=0.0)
        assert torch.equal(zero, free)
        assert model.last_nfe == model.sampling_cost()["nfe_per_sample"]
    conditional = model.sample(16, torch.Generator().manual_seed(7), c=5)
    assert not torch.allclose(conditional, free)


def test_guided_noise_is_the_guidance_scale_form_of_ho_and_salimans_eq_6(gaussians):
    """eps~ = eps(x, null) + w (eps(x, c) - eps(x, null)) = (1 + w') eps(x, c) - w' eps(x,
    null) with Ho & Salimans' w' = w - 1, from one network call on both halves."""
    x, c = gaussians
    model = _model("ddpm", x, c)
    y, t = torch.randn(6, 2), torch.rand(6)
    labels = torch.tensor([0, 1, 2, 3, 4, 7])
    conditional = model.predict_noise(y, t, averaged=True, labels=labels)
    unconditional = model.predict_noise(y, t, averaged=True)  # labels None: the null class
    for w in (0.5, 3.0):
        expected = unconditional + w * (conditional - unconditional)
        torch.testing.assert_close(model.noise_fn(labels, w)(y, t), expected)
        ho_salimans = w - 1  # their eq. 6
        expected = (1 + ho_salimans) * conditional - ho_salimans * unconditional
        torch.testing.assert_close(model.noise_fn(labels, w)(y, t), expected)
    torch.testing.assert_close(model.noise_fn(labels, 1.0)(y, t), conditional)
    torch.testing.assert_close(model.noise_fn(labels, 0.0)(y, t), unconditional)


# -- training drops the class ----------------------------------------------------------------
@pytest.mark.parametrize(("p_uncond", "low", "high"), [(0.25, 0.22, 0.28), (0.0, 0.0, 0.0)])
def test_training_replaces_the_class_by_the_null_class_with_probability_p_uncond(
    gaussians, p_uncond, low, high
):
    x, c = gaussians
    model = _model("ddpm", x, c, p_uncond=p_uncond)
    seen: list[torch.Tensor] = []

    def record(module, args, kwargs):
        seen.append(args[2] if len(args) > 2 else kwargs["labels"])

    handle = model.net.register_forward_pre_hook(record, with_kwargs=True)
    genzoo.Trainer(steps=40, batch_size=256, progress=False).fit(model, x, condition=c)
    handle.remove()
    labels = torch.cat(seen)
    assert len(seen) == 40 and len(labels) == 40 * 256
    null = float((labels == 8).double().mean())
    assert low <= null <= high, null
    kept = labels[labels < 8]  # the others are the batches' classes, all of them seen
    assert set(kept.tolist()) == set(range(8))


# -- guidance on a trained model -------------------------------------------------------------
def test_class_samples_land_near_their_mode_and_guidance_raises_the_rate(gaussians):
    x, c = gaussians
    torch.manual_seed(0)
    model = genzoo.create("ddpm", data=x, condition=c, hidden=32, depth=2, ema=0.99,
                          n_timesteps=100, sampling_steps=50)  # fmt: skip
    genzoo.Trainer(steps=200, batch_size=256, lr=3e-3, progress=False).fit(model, x, condition=c)
    centres, std = mode_centres("8gaussians")  # row k is the centre of label k
    centres = torch.as_tensor(centres, dtype=x.dtype)
    labels = torch.arange(800) % 8
    rates, nearest = {}, {}
    for w in (0.0, 1.0, 2.0, 4.0):
        samples = model.sample(800, torch.Generator().manual_seed(1), c=labels, guidance=w)
        d = torch.cdist(samples, centres)
        own = d.argmin(1) == labels
        rates[w] = float((own & (d[torch.arange(800), labels] <= 2 * std)).double().mean())
        nearest[w] = float(own.double().mean())
    assert nearest[0.0] < 0.3, nearest  # the unconditional model: chance is 1/8
    assert rates[1.0] > 0.5, rates  # measured 0.718; a random mode would give <= 1/8
    assert nearest[1.0] > 0.9, nearest  # measured 0.98
    assert rates[2.0] > rates[1.0] + 0.1, rates  # measured 0.943
    assert rates[4.0] > rates[2.0], rates  # measured 0.981
    # the unconditional model (null class) spreads over the modes
    free = model.sample(800, torch.Generator().manual_seed(1))
    counts = torch.bincount(torch.cdist(free, centres).argmin(1), minlength=8)
    assert int(counts.min()) > 40, counts  # measured 75


def test_larger_guidance_raises_class_accuracy_on_digits():
    """An MLP ddpm trained briefly on digits given the digit (a weak conditional model: its
    samples are classified as the digit asked for 13% of the time at w = 1), sampled with
    DPM-Solver in 10 steps: genzoo's digits classifier's accuracy is at
    chance for w = 0 (the unconditional model) and rises with w. Measured (torch seeds 0, 1;
    400 and 800 training steps): 0.080-0.084, 0.128-0.134, 0.166-0.196, 0.308-0.336 at w =
    0, 1, 2, 4."""
    from genzoo.bench.measure import sample_class_accuracy
    from genzoo.data import dataset_info

    x, c = genzoo.load_dataset("digits", condition=True)
    torch.manual_seed(0)
    model = genzoo.create("ddpm", data=x, condition=c, network="mlp", hidden=256, depth=2,
                          ema=0.99, n_timesteps=100, sampling_steps=20, p_uncond=0.2)  # fmt: skip
    genzoo.Trainer(steps=400, batch_size=128, lr=3e-3, progress=False).fit(model, x, condition=c)
    labels = torch.arange(500) % 10
    accuracy = {}
    for w in (0.0, 1.0, 4.0):
        samples = model.sample(500, torch.Generator().manual_seed(1), c=labels, guidance=w,
                               sampler="dpm-solver", steps=10)  # fmt: skip
        result = sample_class_accuracy(samples, labels, model, dataset_info("digits"))
        accuracy[w] = result["sample_class_accuracy"]
    assert accuracy[0.0] < 0.15, accuracy  # chance is 0.1; measured 0.084
    assert accuracy[4.0] > accuracy[1.0] + 0.08, accuracy  # measured 0.318 vs 0.128
    assert accuracy[4.0] > 0.2, accuracy


# -- density, saving, refusals ---------------------------------------------------------------
def test_conditional_density_and_bound_depend_on_the_class_and_take_no_guidance(gaussians):
    x, c = gaussians
    model = _model("ddpm", x, c, ode_solver="rk4", sampling_steps=10)
    for p in model.net.classes.parameters():
        p.data.mul_(3.0)
    log_p = model.log_prob(x[:4], c=c[:4])
    other = model.log_prob(x[:4], c=(c[:4] + 1) % 8)
    assert log_p.shape == (4,) and torch.isfinite(log_p).all()
    assert not torch.allclose(log_p, other)
    assert torch.isfinite(model.log_prob(x[:4])).all()  # c=None: the unconditional model
    bound = model.elbo(x[:4], torch.Generator().manual_seed(0), c=2)
    again = model.elbo(x[:4], torch.Generator().manual_seed(0), c=torch.full((4,), 2))
    assert torch.equal(bound, again) and torch.isfinite(bound).all()
    assert not torch.equal(bound, model.elbo(x[:4], torch.Generator().manual_seed(0), c=3))
    with pytest.raises(TypeError):
        model.log_prob(x[:4], c=c[:4], guidance=1.0)


def test_save_load_round_trip_of_a_guided_model(gaussians, tmp_path):
    x, c = gaussians
    model = _model("ddpm", x, c, guidance=1.5, p_uncond=0.2)
    genzoo.Trainer(steps=5, batch_size=64, progress=False).fit(model, x, condition=c)
    model.save(tmp_path)
    loaded = genzoo.load(tmp_path)
    assert loaded.config == model.config and loaded.n_classes == 8
    assert loaded.guidance == 1.5 and loaded.p_uncond == 0.2
    torch.testing.assert_close(loaded.class_log_prior, model.class_log_prior)
    for w in (None, 0.0, 4.0):
        a = model.sample(8, torch.Generator().manual_seed(3), c=6, guidance=w)
        b = loaded.sample(8, torch.Generator().manual_seed(3), c=6, guidance=w)
        assert torch.equal(a, b)


def test_command_line_samples_with_guidance(tmp_path, capsys):
    out = tmp_path / "run"
    hparams = {"hidden": 8, "depth": 1, "n_timesteps": 20, "sampling_steps": 5}
    train("ddpm", "8gaussians", out, hparams, n=256, condition="label", steps=5, progress=False)
    assert main(["sample", str(out), "-n", "6", "--condition", "3", "--guidance", "2"]) == 0
    guided = torch.as_tensor(np.load(out / "samples.npy"))
    assert guided.shape == (6, 2)
    expected = sample_run(out, 6, condition=3, guidance=2.0)
    assert torch.equal(guided, expected)
    plain = sample_run(out, 6, condition=3)
    assert not torch.equal(plain, expected)
    capsys.readouterr()
    bad = [
        ["sample", str(out), "-n", "3", "--condition", "3", "--guidance", "-1", "--force"],
        ["sample", str(out), "-n", "3", "--condition", "8", "--force"],
    ]
    for argv, message in zip(bad, ["w >= 0", "out of range"], strict=True):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_a_model_without_a_condition_refuses_a_class_and_guidance(gaussians, tmp_path):
    x, _ = gaussians
    model = genzoo.create("ddpm", data=x[:256], hidden=8, depth=1, **TINY["ddpm"])
    assert model.condition_kind is None and "classes" not in dict(model.net.named_parameters())
    with pytest.raises(DataError, match="built without a condition") as err:
        model.sample(2, c=1)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="without a class condition"):
        model.sample(2, guidance=2.0)
    g = torch.Generator
    for w in (0.0, 1.0):  # no guidance: the unconditional model as it is
        assert torch.equal(model.sample(2, g().manual_seed(1), guidance=w),
                           model.sample(2, g().manual_seed(1)))  # fmt: skip
    with pytest.raises(DataError, match="without a class condition"):
        genzoo.create("ncsn", data=x[:256], guidance=2.0)
    with pytest.raises(DataError, match="built without a condition"):
        model.loss(x[:8], c=torch.zeros(8, dtype=torch.long))
    with pytest.raises(DataError, match="built without a condition"):
        model.log_prob(x[:2], c=1)
    with pytest.raises(DataError, match="cannot be conditioned on a continuous"):
        genzoo.create("score-sde", data=x[:256], condition=x[:256])
    with pytest.raises(ValueError, match="p_uncond"):
        genzoo.create("ddpm", data=x[:256], p_uncond=1.5)
    model.save(tmp_path)
    with pytest.raises(DataError, match="without a class condition"):
        sample_run(tmp_path, 2, guidance=3.0)
    gmm = genzoo.create("gmm", data=x[:256], condition=torch.arange(256) % 8, n_components=1)
    gmm.save(tmp_path / "gmm")
    with pytest.raises(DataError, match="takes no guidance"):
        sample_run(tmp_path / "gmm", 2, condition=1, guidance=1.0)
