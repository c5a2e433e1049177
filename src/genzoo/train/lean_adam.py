"""Torch's fused Adam update without ``torch.optim``'s per-call Python, for small models.

``torch.optim.Adam(fused=True).step()`` runs one kernel for all the tensors, but around it
each call re-groups the tensors by device and dtype, re-reads the state, enters profiler and
grad-mode contexts and checks hooks: about 100 microseconds a step on a CPU, 5% of a small
VAE's whole step (issue 19). :class:`LeanAdam` calls the same kernels
(``torch._fused_adam_`` / ``torch._fused_adamw_``) on the optimiser's own state, so the update
is bit-for-bit the optimiser's and the optimiser (its state dict, checkpoints, learning-rate
changes) stays the source of truth. Anything it does not cover goes through
``optimizer.step()``: the first step (which makes the state), a parameter without a gradient,
registered step hooks, several parameter groups, AMSGrad, mixed devices or dtypes.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim import optimizer as optimizer_module


class LeanAdam:
    """``step()`` and ``zero_grad()`` of a fused ``torch.optim.Adam`` with one group.

    Build it with :func:`lean_stepper`, which hands back the optimiser itself where this class
    does not apply; both have the same two methods.
    """

    def __init__(self, optimizer: torch.optim.Adam) -> None:
        self.optimizer = optimizer
        self._one: Tensor | None = None  # the step counters' increment, made once

    @staticmethod
    def applies(optimizer: torch.optim.Optimizer) -> bool:
        """Whether the lean step reproduces ``optimizer.step()``: a fused Adam with one group
        of float tensors on one device and dtype, float betas, no AMSGrad."""
        if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
            return False
        group = optimizer.param_groups[0]
        params = group["params"]
        return (
            bool(group.get("fused")) and not group["amsgrad"] and not group["differentiable"]
            and all(isinstance(b, float) for b in group["betas"])
            and len({(p.device, p.dtype) for p in params}) == 1
            and not any(p.is_complex() for p in params)
        )  # fmt: skip

    def zero_grad(self) -> None:
        """Drop the gradients (``zero_grad(set_to_none=True)``)."""
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """One Adam update of every parameter, as ``optimizer.step()`` makes it."""
        # read afresh each step: loading a state dict replaces the groups and the state
        optimizer = self.optimizer
        state, group = optimizer.state, optimizer.param_groups[0]
        params: list[Tensor] = group["params"]
        grads = [p.grad for p in params]
        if (
            any(g is None for g in grads)
            or len(state) != len(params)  # the first step makes the state
            or len(optimizer.param_groups) != 1  # a group added since
            or optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
            or optimizer_module._global_optimizer_pre_hooks
            or optimizer_module._global_optimizer_post_hooks
        ):  # fmt: skip
            optimizer.step()
            return
        per_param = [state[p] for p in params]
        steps = [s["step"] for s in per_param]
        beta1, beta2 = group["betas"]
        with torch.no_grad():
            one = self._one
            if one is None or one.device != steps[0].device or one.dtype != steps[0].dtype:
                one = self._one = torch.ones((), device=steps[0].device, dtype=steps[0].dtype)
            # a list of tensors: a third of the time of the scalar 1 (12 small tensors)
            torch._foreach_add_(steps, [one] * len(steps))
            kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
            kernel(
                params,
                grads,  # type: ignore[arg-type]
                [s["exp_avg"] for s in per_param],
                [s["exp_avg_sq"] for s in per_param],
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
                grad_scale=None,
                found_inf=None,
            )


def lean_stepper(optimizer: torch.optim.Optimizer) -> LeanAdam | torch.optim.Optimizer:
    """A :class:`LeanAdam` for ``optimizer`` where it applies, else the optimiser itself (its
    own ``step`` and ``zero_grad``, which drops the gradients by default)."""
    return LeanAdam(optimizer) if LeanAdam.applies(optimizer) else optimizer  # type: ignore[arg-type]
