"""A training step's loss and its gradients traced as one compiled graph (``compile=True``).

Compiling the loss alone leaves the backward pass to autograd: the engine walks a compiled
backward node and accumulates each parameter's gradient, and a guard check and a runtime
wrapper run on each side. Tracing ``torch.autograd.grad`` of the loss together with the loss
puts forward and backward into one graph that hands back the gradients: 0.45-0.77x the time
a step of the loss compiled alone for the small models of ``benchmarks/compiled_step.py``
(VAE, flows, MADE, DDPM, GAN, RBM), 0.90x for the transformer LM. Where it cannot be built (a graph
break, an operation the tracer cannot follow through autograd), the trainer goes on with the
compiled loss and ``backward()`` for that player.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from genzoo.train.precision import from_compiler

#: One copy of each compiled function's code object per model class (see compile_per_class).
_CODE_PER_CLASS: dict[tuple[type, types.CodeType], types.CodeType] = {}


def compile_per_class(
    fn: Callable[..., Any], model_class: type, **options: Any
) -> Callable[..., Any]:
    """``torch.compile(fn, **options)`` on a copy of ``fn`` whose code object is shared by the
    training runs of one model class.

    torch.compile keeps its graphs, and its limit of recompilations (8 by default), per code
    object. With one loss function for every model, a few different models trained in one
    process (a benchmark, a test session) would use the limit up, and later runs would fall
    back to eager code without a word. A code object a class: runs of the same model reuse
    its graphs (a benchmark's seeds), and each class has a limit of its own.
    """
    method = fn if isinstance(fn, types.MethodType) else None
    func = method.__func__ if method is not None else fn
    if not isinstance(func, types.FunctionType):
        raise TypeError(f"compile_per_class takes a function or a method, not {type(fn).__name__}")
    code = _CODE_PER_CLASS.setdefault((model_class, func.__code__), func.__code__.replace())
    copy = types.FunctionType(code, func.__globals__, func.__name__, func.__defaults__,
                              func.__closure__)  # fmt: skip
    copy.__kwdefaults__ = func.__kwdefaults__
    own = copy if method is None else types.MethodType(copy, method.__self__)
    return torch.compile(own, **options)


def _in_layout(gradient: Tensor | None, param: Tensor) -> Tensor | None:
    """The gradient in its parameter's memory layout, as autograd's accumulation leaves it:
    a fused optimiser reads both as flat arrays (decided while tracing, free when equal)."""
    if gradient is None:
        return None
    if param.is_contiguous():
        return gradient.contiguous()
    return torch.empty_like(param).copy_(gradient)


class FusedGradients:
    """``step(batch, player, c)`` sets the gradients of ``player``'s trainable parameters
    from one compiled graph of its loss and returns the loss terms (detached), or returns
    ``None`` where the graph cannot be built; the reason is then kept in ``failed``.

    Args:
        loss: the trainer's loss module, ``loss(batch, player, c) -> (total, terms)``.
        params: each player's parameters (those that need no gradient are left out).
        dynamic: ``torch.compile``'s ``dynamic`` (``False``: a static graph per batch shape).
        model_class: the trained model's class (its graphs are kept apart from other
            classes', see :func:`compile_per_class`).
    """

    def __init__(
        self,
        loss: nn.Module,
        params: dict[str, list[Tensor]],
        dynamic: bool | None,
        model_class: type,
    ) -> None:
        self._loss = loss
        self._params = {player: [p for p in ps if p.requires_grad] for player, ps in params.items()}
        self._compiled = compile_per_class(self._gradients, model_class, fullgraph=True,
                                           dynamic=dynamic)  # fmt: skip
        self.failed: dict[str, str] = {}

    def _gradients(
        self, batch: Tensor | None, player: str, c: Tensor | None, params: list[Tensor]
    ) -> tuple[list[Tensor | None], dict[str, Tensor]]:
        total, terms = self._loss(batch, player, c)
        gradients = torch.autograd.grad(total, params, allow_unused=True)
        return [_in_layout(g, p) for g, p in zip(gradients, params, strict=True)], terms

    def step(self, batch: Tensor | None, player: str, c: Tensor | None) -> dict[str, Any] | None:
        if player in self.failed:
            return None
        params = self._params[player]
        config = torch._dynamo.config
        # autograd.grad traced into the graph, not a graph break (a torch without the
        # setting breaks the graph there: the step then goes the compiled loss's way)
        traced = getattr(config, "trace_autograd_ops", None)
        if traced is not None:
            config.trace_autograd_ops = True
        try:
            gradients, terms = self._compiled(batch, player, c, params)
        except Exception as err:
            if not from_compiler(err):
                raise
            self.failed[player] = f"{type(err).__name__}: {str(err).strip()[:200]}"
            return None
        finally:
            if traced is not None:
                config.trace_autograd_ops = traced
        for param, gradient in zip(params, gradients, strict=True):
            param.grad = gradient
        return terms
