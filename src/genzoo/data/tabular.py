"""scikit-learn's bundled tables (features only): wine, iris, breast-cancer.

Rows are split 70/10/20 into train/val/test by a permutation seeded with ``seed`` (the same for
every split, so the splits are disjoint), then standardised with the training split's mean and
standard deviation.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from genzoo.data._common import check_split, make_rng, split_sizes

TABULAR_FRACTIONS = (0.7, 0.1, 0.2)

TABULAR_SOURCES = {
    "wine": ("load_wine", "wine recognition table, 178 x 13 (sklearn load_wine)"),
    "iris": ("load_iris", "iris flowers, 150 x 4 (sklearn load_iris)"),
    "breast-cancer": (
        "load_breast_cancer",
        "Wisconsin diagnostic breast cancer, 569 x 30 (sklearn load_breast_cancer)",
    ),
}


@cache
def _table(name: str) -> np.ndarray:
    import sklearn.datasets

    loader = getattr(sklearn.datasets, TABULAR_SOURCES[name][0])
    return np.asarray(loader().data, dtype=np.float64)


def table_shape(name: str) -> tuple[int, int]:
    rows, cols = _table(name).shape
    return rows, cols


def load_table_split(name: str, split: str, seed: int) -> np.ndarray:
    """Standardised rows of the table ``name`` in ``split``."""
    k = check_split(split)
    x = _table(name)
    perm = make_rng(seed, name).permutation(len(x))
    sizes = split_sizes(len(x), TABULAR_FRACTIONS)
    bounds = np.cumsum([0, *sizes])
    train = x[perm[: sizes[0]]]
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    part = x[perm[bounds[k] : bounds[k + 1]]]
    return (part - mean) / std
