"""Datasets, all offline: 2-D toys with true densities, digits, tabular tables, user files.

STUB (being replaced): only the interface and ``moons`` exist so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import make_moons

from genzoo.errors import unknown_name


@dataclass(frozen=True)
class DatasetInfo:
    """One row of ``genzoo.list_datasets()``."""

    name: str
    kind: str  # points | image | text | tabular
    shape: tuple[int, ...]
    levels: int | None  # number of discrete values per scalar (17 for digits), None if continuous
    has_true_density: bool
    description: str


_INFOS = {"moons": DatasetInfo("moons", "points", (2,), None, False, "two half moons")}


def list_datasets() -> list[DatasetInfo]:
    return list(_INFOS.values())


def dataset_info(name: str) -> DatasetInfo:
    if name not in _INFOS:
        raise unknown_name("dataset", name, _INFOS)
    return _INFOS[name]


def load_dataset(name: str, split: str = "train", n: int | None = None, seed: int = 0) -> torch.Tensor:
    dataset_info(name)
    rng = np.random.default_rng([seed, {"train": 0, "test": 1}[split]])
    n = n or 20_000
    x, _ = make_moons(n, noise=0.1, random_state=int(rng.integers(2**31)))
    return torch.as_tensor(x * 2 + [-1, -0.2], dtype=torch.get_default_dtype())
