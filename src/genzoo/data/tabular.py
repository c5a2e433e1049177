"""scikit-learn's bundled tables: wine, iris, breast-cancer (features; their classes are the
condition a conditional model may take, ``load_table_labels``).

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


#: The classes of each table's rows (scikit-learn's ``target``).
TABULAR_CLASSES = {
    "wine": ("the cultivar of the wine", 3),
    "iris": ("the species of the iris", 3),
    "breast-cancer": ("the diagnosis: 0 malignant, 1 benign", 2),
}


@cache
def _bunch(name: str):
    import sklearn.datasets

    return getattr(sklearn.datasets, TABULAR_SOURCES[name][0])()


def _table(name: str) -> np.ndarray:
    return np.asarray(_bunch(name).data, dtype=np.float64)


def _rows(name: str, split: str, seed: int) -> np.ndarray:
    """Indices of the rows of ``split`` (the seeded permutation shared by every split)."""
    k = check_split(split)
    total = len(_bunch(name).data)
    perm = make_rng(seed, name).permutation(total)
    bounds = np.cumsum([0, *split_sizes(total, TABULAR_FRACTIONS)])
    return perm[bounds[k] : bounds[k + 1]]


def load_table_labels(name: str, split: str, seed: int) -> np.ndarray:
    """The class of each row of ``split`` of the table ``name``, int64 (n,), in row order."""
    return np.asarray(_bunch(name).target, dtype=np.int64)[_rows(name, split, seed)]


def table_shape(name: str) -> tuple[int, int]:
    rows, cols = _table(name).shape
    return rows, cols


def load_table_split(name: str, split: str, seed: int) -> np.ndarray:
    """Standardised rows of the table ``name`` in ``split``."""
    x = _table(name)
    train = x[_rows(name, "train", seed)]
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x[_rows(name, split, seed)] - mean) / std
