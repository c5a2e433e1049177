"""Mixed precision: autocast for the losses, a gradient scaler for float16.

``bf16-mixed`` runs the loss computation under ``torch.autocast`` with bfloat16 (CPU and
CUDA): matrix products in bfloat16, reductions and the weights in float32, so no scaler is
needed (bfloat16 has float32's exponent range). ``fp16-mixed`` uses float16 on CUDA with a
``torch.amp.GradScaler`` per player (Micikevicius et al. 2018, "Mixed precision training"):
the loss is scaled up before the backward pass so small gradients survive float16, and steps
whose gradients overflowed are skipped while the scale backs off.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

PRECISIONS = ("32", "bf16-mixed", "fp16-mixed")


def check_precision(precision: str, device: str, dtype: str) -> None:
    """Refuse an unknown precision, float16 without CUDA, or mixed precision on float64."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, not {precision!r}")
    if precision == "32":
        return
    if dtype != "float32":
        raise ValueError(f"precision {precision!r} mixes with float32 weights; use "
                         f"dtype='float32' (not {dtype!r}) or precision='32'")  # fmt: skip
    if precision == "fp16-mixed" and torch.device(device).type != "cuda":
        raise ValueError(
            "precision 'fp16-mixed' needs a CUDA device (its gradient scaler is CUDA-only); "
            "on CPU use --precision bf16-mixed"
        )


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context the loss is computed in: autocast for mixed precision, else nothing."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scalers(precision: str, players) -> dict[str, Any]:
    """One gradient scaler per player for ``fp16-mixed``; none otherwise."""
    if precision != "fp16-mixed":
        return {}
    return {player: torch.amp.GradScaler("cuda") for player in players}
