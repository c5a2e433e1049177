"""The fused affine couplings (one autograd node, closed-form backward, issue 19): the same
values, gradients and second derivatives as the module-by-module path, in float64."""

from __future__ import annotations

import pytest
import torch

import genzoo
import genzoo.models.flows.coupling as coupling
from genzoo.models.flows import AffineCoupling, RealNVP, alternating_masks


def _moved(module: torch.nn.Module) -> torch.nn.Module:
    """Float64, and away from the identity start, so every term matters."""
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return module


def _layer(d: int, mask: torch.Tensor, context: int, activation: str = "relu") -> AffineCoupling:
    torch.manual_seed(0)
    return _moved(AffineCoupling(mask, (16, 8), activation, context_features=context))


def _flow(d: int, n_classes: int = 0) -> RealNVP:
    torch.manual_seed(0)
    flow = _moved(RealNVP((d,), n_layers=4, hidden=8, n_classes=n_classes))
    flow.standardize.loc.fill_(0.3)
    return flow


def _with_and_without_fusion(monkeypatch, fn, *args) -> tuple[list, list]:
    fused = fn(*args)
    monkeypatch.setattr(coupling, "_relu_mlp", lambda net: False)  # the module path
    plain = fn(*args)
    monkeypatch.undo()
    return fused, plain


def _first_derivatives(module, x, c, weight_seed: int = 1) -> list[torch.Tensor]:
    y, ladj = module(x, c)
    gen = torch.Generator().manual_seed(weight_seed)
    w_y = torch.randn(y.shape, generator=gen, dtype=y.dtype)
    w_l = torch.randn(ladj.shape, generator=gen, dtype=ladj.dtype)
    inputs = [x] + ([c] if c is not None and c.is_floating_point() else [])
    grads = torch.autograd.grad(
        (y * w_y).sum() + (ladj * w_l).sum(), inputs + list(module.parameters())
    )
    return [y, ladj, *grads]


def _assert_all_close(fused: list, plain: list, tol: float = 1e-12) -> None:
    assert len(fused) == len(plain)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize(("d", "context"), [(2, 0), (5, 0), (4, 3)])
def test_fused_coupling_equals_the_module_path_and_passes_gradcheck(d, context, monkeypatch):
    for mask in alternating_masks(d, 3):
        layer = _layer(d, mask, context)
        x = torch.randn(7, d, dtype=torch.float64, requires_grad=True)
        c = torch.randn(7, context, dtype=torch.float64, requires_grad=True) if context else None
        fused, plain = _with_and_without_fusion(monkeypatch, _first_derivatives, layer, x, c)
        _assert_all_close(fused, plain)
        assert torch.autograd.gradcheck(layer, (x, c) if context else (x,))


@pytest.mark.parametrize(("d", "n_classes"), [(2, 0), (3, 0), (4, 3)])
def test_a_whole_flow_fused_equals_the_module_path(d, n_classes, monkeypatch):
    flow = _flow(d, n_classes)
    x = torch.randn(9, d, dtype=torch.float64, requires_grad=True)
    c = flow.check_condition(torch.arange(9) % n_classes, 9) if n_classes else None
    fused, plain = _with_and_without_fusion(monkeypatch, _first_derivatives, flow, x, c)
    _assert_all_close(fused, plain)
    z = flow(x, c)[0]  # and it still inverts
    torch.testing.assert_close(flow.inverse(z, c)[0], x, rtol=1e-10, atol=1e-10)


def test_fused_path_is_taken_only_where_it_applies(monkeypatch):
    calls = []
    apply = coupling._FusedCouplings.apply
    monkeypatch.setattr(coupling._FusedCouplings, "apply", lambda *a: calls.append(1) or apply(*a))
    mask = torch.tensor([1.0, 0.0])
    x = torch.randn(4, 2, dtype=torch.float64)
    _layer(2, mask, 0)(x)
    assert len(calls) == 1  # ReLU MLP, tanh scale, forward
    _layer(2, mask, 0).inverse(x)
    _layer(2, mask, 0, activation="tanh")(x)
    AffineCoupling(mask, (8,), scale="sigmoid").double()(x)
    assert len(calls) == 1  # inverse, other activations and Glow's sigmoid: the module path
    _flow(2)(x)
    assert len(calls) == 2  # a flow's 4 consecutive couplings: one node


def test_fused_couplings_have_the_second_derivative_of_the_module_path(monkeypatch):
    flow = _flow(3, n_classes=2)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    c = flow.check_condition(torch.arange(5) % 2, 5)

    def curvature() -> list[torch.Tensor]:  # d/d(x, W) of |d(sum z^2 + ladj)/dx|^2
        z, ladj = flow(x, c)
        (g,) = torch.autograd.grad(z.square().sum() + ladj.sum(), x, create_graph=True)
        return list(torch.autograd.grad(g.square().sum(), [x, *flow.parameters()]))

    fused, plain = _with_and_without_fusion(monkeypatch, curvature)
    _assert_all_close(fused, plain, tol=1e-10)


def test_the_training_loss_is_the_mean_nll_and_checks_the_shape():
    flow = _flow(3)
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(flow.loss(x)["nll"], -flow.log_prob(x).mean())
    torch.testing.assert_close(flow.loss(x.float())["nll"], -flow.log_prob(x).mean())  # its dtype
    torch.testing.assert_close(flow.loss(x.numpy())["nll"], -flow.log_prob(x).mean())
    with pytest.raises(genzoo.DataError, match="shape"):
        flow.loss(torch.randn(6, 2, dtype=torch.float64))
