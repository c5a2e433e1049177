"""Checks on user data that explain what is wrong and what to do."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from genzoo.errors import DataError


def check_finite(x: torch.Tensor, what: str = "data") -> torch.Tensor:
    """Raise ``DataError`` naming how many NaN/inf values ``x`` holds and in which rows."""
    if x.numel() == 0:
        raise DataError(f"{what} is empty: give at least one example")
    if not torch.is_floating_point(x):
        return x
    bad = ~torch.isfinite(x)
    if bad.any():
        flat = bad.reshape(x.shape[0], -1) if x.ndim > 1 else bad.reshape(-1, 1)
        rows = flat.any(dim=1).nonzero().flatten().tolist()
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(bad.sum()) - n_nan
        shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
        raise DataError(
            f"{what} holds {n_nan} NaN and {n_inf} infinite values in {len(rows)} rows "
            f"(rows {shown}); drop or impute those rows first"
        )
    return x


def check_shape(x: torch.Tensor, data_shape: Sequence[int], what: str = "input") -> torch.Tensor:
    """Raise ``DataError`` unless ``x`` is shaped ``(batch, *data_shape)``."""
    data_shape = tuple(data_shape)
    if tuple(x.shape[1:]) != data_shape or x.ndim != len(data_shape) + 1:
        raise DataError(
            f"{what} has shape {tuple(x.shape)} but this model was built for examples shaped "
            f"{data_shape}, i.e. a batch shaped (n, {', '.join(map(str, data_shape))}); "
            "reshape the data or create the model from data of this shape"
        )
    return x


def as_tensor(x: object, what: str = "data") -> torch.Tensor:
    """``x`` (a tensor, an array, nested lists) as a tensor; anything not numeric (an object
    array, text) is a ``DataError`` saying so."""
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{what} must be numeric (an array of numbers shaped (n_examples, ...)); could not "
            f"read a {type(x).__name__} ({err})"
        ) from err


def to_tensor(x: np.ndarray, dtype: torch.dtype, what: str = "X") -> torch.Tensor:
    """``x`` as a tensor of ``dtype``, refusing values that overflow it (``1e300`` becomes
    ``inf`` in float32: say so, rather than report "infinite values" the user never had)."""
    if dtype.is_floating_point and x.size:
        largest = float(np.nanmax(np.abs(x)))
        limit = torch.finfo(dtype).max
        if np.isfinite(largest) and largest > limit:
            raise DataError(
                f"{what} holds values too large for {str(dtype).replace('torch.', '')} "
                f"(largest |x| = {largest:.3g}, the limit is {limit:.3g}); rescale the data, "
                "e.g. standardise each feature"
            )
    return torch.tensor(x, dtype=dtype)
