"""LeanAdam: torch's fused Adam kernel called without torch.optim's per-step Python must
make exactly the optimiser's update, and hand every case it does not cover to the optimiser."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from genzoo.train.lean_adam import LeanAdam, lean_stepper


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))


def _grads(net: nn.Module, step: int) -> None:
    """A deterministic loss's gradients for step ``step``."""
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(step))
    net.zero_grad(set_to_none=True)
    net(x).square().mean().backward()


def _train(net: nn.Module, stepper, steps: int, on_step=None) -> None:
    for step in range(steps):
        if on_step is not None:
            on_step(step)
        _grads(net, step)
        stepper.step()


def _same(a: nn.Module, b: nn.Module, opt_a, opt_b) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a.state[p][key], opt_b.state[q][key]), key


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"maximize": True, "betas": (0.5, 0.9), "eps": 1e-6},
    ],
)
def test_lean_step_is_the_optimisers_update_bit_for_bit(settings):
    ref, lean = _net(), _net()
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, fused=True, **settings)
    opt_lean = torch.optim.Adam(lean.parameters(), lr=1e-2, fused=True, **settings)
    stepper = lean_stepper(opt_lean)
    assert isinstance(stepper, LeanAdam)

    def schedule(opt):  # a learning rate changed by hand mid-run, as the Trainer's schedule
        return lambda step: opt.param_groups[0].update(lr=1e-2 / (1 + step))

    _train(ref, opt_ref, 15, schedule(opt_ref))
    _train(lean, stepper, 15, schedule(opt_lean))
    _same(ref, lean, opt_ref, opt_lean)


def test_lean_step_follows_a_loaded_state_dict():
    """Loading a state replaces the optimiser's groups and state: the stepper reads them."""
    ref, lean = _net(), _net()
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, fused=True)
    _train(ref, opt_ref, 5)
    saved = {k: v.clone() for k, v in ref.state_dict().items()}
    opt_state = copy.deepcopy(opt_ref.state_dict())  # its tensors are the live state
    _train(ref, opt_ref, 5)

    lean.load_state_dict(saved)
    opt_lean = torch.optim.Adam(lean.parameters(), lr=1e-2, fused=True)
    stepper = lean_stepper(opt_lean)
    opt_lean.load_state_dict(opt_state)
    _train(lean, stepper, 5)  # the batches of the reference's last five steps
    _same(ref, lean, opt_ref, opt_lean)


def test_a_parameter_without_gradient_and_hooks_go_through_the_optimiser():
    ref, lean = _net(), _net()
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, fused=True)
    opt_lean = torch.optim.Adam(lean.parameters(), lr=1e-2, fused=True)
    stepper = lean_stepper(opt_lean)
    calls = []
    opt_lean.register_step_post_hook(lambda *args: calls.append(1))

    for net, step_fn in ((ref, opt_ref.step), (lean, stepper.step)):
        for step in range(6):
            _grads(net, step)
            if step == 3:  # one parameter without a gradient: torch leaves it be
                net[2].bias.grad = None
            step_fn()
    _same(ref, lean, opt_ref, opt_lean)
    assert len(calls) == 6  # every step ran the optimiser's own step (its hook)


def test_zero_grad_drops_every_gradient():
    net = _net()
    stepper = lean_stepper(torch.optim.Adam(net.parameters(), fused=True))
    _grads(net, 0)
    stepper.zero_grad()
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.SGD(p, lr=0.1),
        lambda p: torch.optim.Adam(p, fused=False),
        lambda p: torch.optim.Adam(p, fused=True, amsgrad=True),
        lambda p: torch.optim.Adam([{"params": p[:2]}, {"params": p[2:]}], fused=True),
    ],
)
def test_what_lean_adam_does_not_cover_keeps_the_optimiser(make):
    optimizer = make(list(_net().parameters()))
    assert lean_stepper(optimizer) is optimizer
