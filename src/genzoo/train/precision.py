"""Mixed precision: autocast for the losses, a gradient scaler for float16.

``bf16-mixed`` runs the loss computation under ``torch.autocast`` with bfloat16 (CPU and
CUDA): matrix products in bfloat16, reductions and the weights in float32, so no scaler is
needed (bfloat16 has float32's exponent range). ``fp16-mixed`` uses float16 on CUDA with a
``torch.amp.GradScaler`` per player (Micikevicius et al. 2018, "Mixed precision training"):
the loss is scaled up before the backward pass so small gradients survive float16, and steps
whose gradients overflowed are skipped while the scale backs off.

:func:`explained` turns a failure of either, or of ``torch.compile``, into a one-line error
naming the model and what to do (not a compiler's stack trace); the original error stays
chained as its cause.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
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


#: Where torch.compile's own errors come from (its tracer, compiler and fake tensors).
_COMPILER = ("torch._dynamo", "torch._inductor", "torch._functorch", "torch._subclasses")
#: What an operation says when it meets a dtype it cannot take (autocast's bf16/fp16 output).
_DTYPE_WORDS = ("BFloat16", "Half", "same dtype", "expected scalar type", "dtype")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def from_compiler(err: BaseException) -> bool:
    """Raised by torch.compile's machinery (by type, or by the frame that raised it)."""
    if type(err).__module__.startswith(_COMPILER):
        return True
    frames = traceback.extract_tb(err.__traceback__)
    where = frames[-1].filename.replace("\\", "/") if frames else ""
    return any("/" + p.replace(".", "/") + "/" in where for p in _COMPILER)


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the errors it was raised from (the compiler wraps the one it met)."""
    chain = [err]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    return chain


def explanation(err: BaseException, name: str, precision: str, compiled: bool) -> str | None:
    """The one-line message for a failure of ``torch.compile`` or of mixed precision, else
    ``None`` (the error is the model's own and is raised as it is)."""
    chain = _chain(err)
    ends = chain[:1] if len(chain) == 1 else [chain[0], chain[-1]]  # and the first cause
    what = " <- ".join(f"{type(e).__name__}: {_first_line(e)}" for e in ends)
    dtype = precision != "32" and any(word in str(e) for e in chain for word in _DTYPE_WORDS)
    if compiled and from_compiler(err):
        if dtype:  # the compiler met autocast's dtypes: either change may do
            return (f"{name} cannot be compiled by torch.compile under precision "
                    f"{precision!r} ({what}); train it without --compile (compile=False) "
                    f"or with --precision 32")  # fmt: skip
        return (f"{name} cannot be compiled by torch.compile ({what}); train it without "
                f"--compile (compile=False)")  # fmt: skip
    if dtype and isinstance(err, RuntimeError):
        return (f"{name} cannot train under precision {precision!r} ({what}); train it with "
                f"--precision 32 (precision='32')")  # fmt: skip
    return None


@contextlib.contextmanager
def explained(name: str, precision: str, compiled: bool) -> Iterator[None]:
    """Run the block; a failure of ``torch.compile`` or of mixed precision in it is raised
    again as a ``RuntimeError`` naming the model ``name`` and what to do (see
    :func:`explanation`), the original error chained as its cause."""
    if precision == "32" and not compiled:
        yield
        return
    try:
        yield
    except Exception as err:
        message = explanation(err, name, precision, compiled)
        if message is None:
            raise
        raise RuntimeError(message) from err
