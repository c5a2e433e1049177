"""TensorBoard event files beside ``metrics.jsonl``: losses, learning rate, evaluations and
sample grids. TensorBoard is an optional extra (``pip install genzoo[tensorboard]``),
imported only when a run asks for it."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch


def available() -> bool:
    """Whether the tensorboard package is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def open_writer(folder: Path, start: int) -> Any:
    """A ``SummaryWriter`` into ``folder``; a resumed run (``start > 0``) drops the events a
    killed run wrote after its checkpoint, as ``metrics.jsonl`` drops their lines."""
    if not available():
        raise ModuleNotFoundError(
            "TensorBoard logging needs the tensorboard package: pip install genzoo[tensorboard] "
            "(or train without --tensorboard)"
        )
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder), purge_step=start if start > 0 else None)


def write_scalars(writer: Any, scalars: dict[str, float], step: int) -> None:
    """One scalar per logged value at ``step`` (non-finite values are skipped)."""
    for name, value in scalars.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(name, value, step)


def image_shape(data_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """``(channels, height, width)`` of image-shaped examples, ``None`` for other data."""
    shape = tuple(data_shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape  # type: ignore[return-value]
    if len(shape) == 2 and min(shape) >= 4:
        return (1, *shape)
    return None


def sample_grid(model: Any, n: int = 16) -> torch.Tensor | None:
    """An ``(C, H, W)`` grid in [0, 1] of ``n`` samples of an unconditional image model, or
    ``None`` when the model's examples are not images, it is conditional, or cannot sample."""
    shape = image_shape(model.data_shape)
    if shape is None or model.condition_kind is not None:
        return None
    try:
        x = model.sample(n).detach().float().cpu().reshape(n, *shape)
    except NotImplementedError:
        return None
    low, high = x.amin(), x.amax()
    x = (x - low) / (high - low) if high > low else torch.zeros_like(x)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    c, h, w = shape
    grid = torch.zeros(c, rows * (h + 1) + 1, cols * (w + 1) + 1)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = x[i]
    return grid


def write_samples(writer: Any, model: Any, step: int) -> None:
    """A grid of samples of an image model at ``step`` (nothing for other data)."""
    try:
        grid = sample_grid(model)
    except Exception as err:  # a sample grid is a courtesy: never let it stop training
        warnings.warn(f"no TensorBoard sample grid at step {step}: {err}", stacklevel=2)
        return
    if grid is not None:
        writer.add_image("samples", grid, step)
