"""Shared helpers: split names, seeded generators, argument checks."""

from __future__ import annotations

import zlib

import numpy as np

from genzoo.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")


def check_split(split: str) -> int:
    """Index of ``split`` in :data:`SPLITS`, or a ``DataError`` listing the valid ones."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid splits are {', '.join(SPLITS)}")
    return SPLITS.index(split)


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_n(n: int | None) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"n must be a positive integer or None, got {n!r}")
    return int(n)


def make_rng(seed: int, name: str, split: str | None = None) -> np.random.Generator:
    """A generator seeded from ``seed``, the dataset ``name`` and (optionally) the split.

    Mixing the split in makes train, val and test independent draws; mixing the name in makes
    two datasets loaded with the same seed independent. No global random state is touched.
    """
    words = [check_seed(seed), zlib.crc32(name.encode("utf-8"))]
    if split is not None:
        words.append(check_split(split))
    return np.random.default_rng(np.random.SeedSequence(words))


def split_sizes(total: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Sizes of train/val/test for ``total`` examples (rounded; test takes the rest)."""
    n_train = int(round(total * fractions[0]))
    n_val = int(round(total * fractions[1]))
    return n_train, n_val, total - n_train - n_val
