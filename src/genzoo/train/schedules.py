"""Learning-rate schedules: a factor on the trainer's rate, a pure function of the step.

Being a function of the step alone (no scheduler object with state), a schedule resumes
exactly from a checkpoint's step count. Warm-up ramps the rate linearly from ``lr / W`` to
``lr`` over the first ``W`` steps (Goyal et al. 2017, "Accurate, large minibatch SGD");
``linear`` then decays it to zero at the last step, ``cosine`` follows half a cosine to zero
(Loshchilov & Hutter 2017, "SGDR: stochastic gradient descent with warm restarts", without
restarts).
"""

from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "linear", "cosine")


def check_schedule(name: str, warmup_steps: int) -> None:
    """Refuse an unknown schedule name or a negative warm-up."""
    if name not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, not {name!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")


def lr_factor(name: str, step: int, steps: int, warmup_steps: int = 0) -> float:
    """The multiplier of the learning rate for the optimiser step ``step`` (0-based) of a run
    of ``steps`` steps: ``(step + 1) / W`` during warm-up, then 1 (``constant``), ``1 - p``
    (``linear``) or ``(1 + cos(pi p)) / 2`` (``cosine``), ``p`` the fraction of the steps after
    warm-up already taken."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    if name == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))
