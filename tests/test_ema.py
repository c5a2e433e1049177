"""The one moving average of weights (genzoo.models.ema.EMA): its maths against the formula,
the warm-up, buffers, the state-dict keys old runs were saved with, and exact resume, for the
three users (score models' ``ema``, GANs' ``ema_decay``, the Trainer's ``--ema``)."""

from __future__ import annotations

import copy

import pytest
import torch
from test_conditional import resumed_and_straight
from torch import nn

import genzoo
from genzoo.models.ema import EMA
from genzoo.models.gans import EMAWeights


class _Net(nn.Module):
    """Two layers, a buffer, and a top-level parameter named like a method of EMA."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        self.state = nn.Parameter(torch.randn(2))
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        return self.body(x) + self.state + self.count


def _step(net: nn.Module, scale: float = 0.1) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))


def test_the_average_is_the_formula_with_its_warm_up():
    net = _Net()
    ema = EMA(net, 0.9)
    expected = {k: v.clone() for k, v in net.named_parameters()}
    for t in range(30):
        _step(net)
        d = min(0.9, (1 + t) / (10 + t))
        assert ema.decay_at(t) == d
        ema.update()
        for k, p in net.named_parameters():  # the arithmetic of the three former copies
            expected[k].lerp_(p.detach(), 1 - d)
            assert torch.equal(ema.state()[k], expected[k]), (t, k)
    assert ema.updates == 30 and ema.decay_at(0) == 0.1 and ema.decay_at(80) == 0.9  # 81 / 90
    # without warm-up the decay holds from the first update
    flat, before = EMA(net, 0.5, warmup=False), net.state.detach().clone()
    _step(net)
    flat.update()
    assert torch.equal(flat.state()["state"], 0.5 * before + 0.5 * net.state.detach())
    # a model passes the trainer's step: the warm-up of that step, and the count after it
    stepped = EMA(net, 0.99)
    stepped.update(step=1000)
    assert stepped.updates == 1001 and stepped.decay_at(1000) == 0.99


def test_buffers_are_the_modules_and_applied_restores_the_raw_weights():
    net = _Net()
    ema = EMA(net, 0.9)
    names = {"body__0__weight", "body__0__bias", "body__2__weight", "body__2__bias", "state"}
    assert set(dict(ema.named_buffers())) == names  # "state" too: a method's name is no clash
    _step(net, 1.0)
    net.count.fill_(3.0)
    raw = copy.deepcopy(net)
    x = torch.randn(5, 3)
    with ema.applied():
        averaged = net(x)
        assert all(torch.equal(p, ema.state()[k]) for k, p in net.named_parameters())
    assert torch.equal(averaged, torch.func.functional_call(net, ema.state(), (x,)))
    assert torch.equal(net(x), raw(x))  # the raw weights are back, the buffer was never averaged
    ema.copy_to_model()
    assert torch.equal(net(x), averaged)


def test_bad_decays_and_clashing_names_are_refused():
    for decay in (0, 1, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="ema decay must be a number in"):
            EMA(nn.Linear(2, 2), decay)
    clash = nn.Module()
    clash.a__b = nn.Parameter(torch.zeros(1))
    clash.a = nn.Module()
    clash.a.b = nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="differ only by"):
        EMA(clash, 0.9)


def test_a_copied_or_converted_model_averages_its_own_weights():
    model = genzoo.create("ddpm", data=torch.randn(64, 2), hidden=8, depth=1, ema=0.5)
    twin = copy.deepcopy(model)
    _step(twin.net, 1.0)
    twin.after_step("model", 1000)
    for k, p in twin.net.named_parameters():
        assert not torch.equal(twin.ema.state()[k], model.ema.state()[k])
        assert torch.equal(model.ema.state()[k], dict(model.net.named_parameters())[k])
        assert torch.allclose(twin.ema.state()[k], (model.ema.state()[k] + p.detach()) / 2)
    model.double()
    model.after_step("model", 0)
    assert all(v.dtype == torch.float64 for v in model.ema.state().values())


@pytest.mark.parametrize(
    "name, prefix, hparams",
    [("ddpm", "ema.", {"hidden": 8, "depth": 1, "ema": 0.9}),
     ("gan", "generator_ema.", {"hidden": 8, "ema_decay": 0.9})],
)  # fmt: skip
def test_a_state_dict_in_the_old_format_loads(moons, name, prefix, hparams):
    """Runs saved before the EMAs were one kept their averages as ``<attribute>.<parameter
    name with . as __>`` (score models' ``ema.``, GANs' ``generator_ema.``): such a state dict
    loads strictly and its average is the one used."""
    model = genzoo.create(name, data=moons, **hparams)
    tracked = model.net if name == "ddpm" else model.generator
    old = {k: v for k, v in model.state_dict().items() if not k.startswith(prefix)}
    averaged = {n: torch.randn_like(p) for n, p in tracked.named_parameters()}
    old |= {prefix + n.replace(".", "__"): v for n, v in averaged.items()}  # the old keys
    assert set(old) == set(model.state_dict())
    model.load_state_dict(old, strict=True)
    ema = model.ema if name == "ddpm" else model.generator_ema
    assert all(torch.equal(ema.state()[n], v) for n, v in averaged.items())


@pytest.mark.parametrize(
    "name, hparams",
    [("ddpm", {"hidden": 8, "depth": 1, "ema": 0.9}),
     ("gan", {"hidden": 8, "ema_decay": 0.9, "n_critic": 2})],
)  # fmt: skip
def test_a_models_own_average_resumes_exactly(moons, tmp_path, name, hparams):
    """2 + 2 steps with a resume end on the average of 4 straight: the warm-up goes on from
    the checkpoint's step, and the average is in the model's state dict."""
    resumed, straight = resumed_and_straight(name, moons[:512], None, tmp_path, **hparams)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.equal(straight.sample(5, g()), resumed.sample(5, g()))


def test_the_deprecated_gan_name_still_works_and_warns():
    net = nn.Linear(3, 2)
    with pytest.warns(DeprecationWarning, match="EMAWeights is deprecated"):
        old = EMAWeights(net)
    start = {k: v.clone() for k, v in old.as_dict().items()}
    _step(net)
    old.update(net, 0.75)  # the decay as given: no warm-up
    for k, p in net.named_parameters():
        assert torch.equal(old.as_dict()[k], start[k].lerp(p.detach(), 0.25))
    assert set(dict(old.named_buffers())) == {"weight", "bias"}
