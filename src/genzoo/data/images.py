"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 17 grey levels 0..16).

Split as in Tomczak's ``intro_dgm`` examples ("Deep Generative Modeling", 2022): the first 1,000
images train, the next 350 validate, the remaining 447 test. Values are the integer grey levels
as floats, shaped (n, 1, 8, 8); ``digits-binary`` thresholds them at 8 (pixels >= 8 become 1).

Continuous models should see ``dequantize(x, 17)``, i.e. (x + u) / 17 with u ~ U[0, 1). A density
p on [0, 1)^64 then bounds the discrete log probability: log P(x) >= E_u[log p((x + u) / 17)] -
64 log 17. So bits/dim on the discrete scale include log2(17) = 4.09 bits per pixel on top of the
continuous density's bits/dim on [0, 1). For reference, an independent 17-level categorical
per pixel (Laplace-smoothed counts from the training split) scores about 2.40 bits/dim on the
test split, a uniform distribution over the 17 levels log2(17) = 4.09 bits/dim.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from genzoo.data._common import check_split

DIGITS_LEVELS = 17
DIGITS_SPLIT_SIZES = {"train": 1000, "val": 350, "test": 447}


@lru_cache(maxsize=1)
def _digits_images() -> np.ndarray:
    from sklearn.datasets import load_digits

    images = load_digits().images  # (1797, 8, 8), floats holding the integers 0..16
    return np.ascontiguousarray(images[:, None, :, :], dtype=np.float64)


@lru_cache(maxsize=1)
def _digits_labels() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.asarray(load_digits().target, dtype=np.int64)


def load_digits_labels(split: str) -> np.ndarray:
    """The digit (0..9) of each image of ``split``, int64 (n,), in the order of the images."""
    k = check_split(split)
    sizes = list(DIGITS_SPLIT_SIZES.values())
    start = sum(sizes[:k])
    return _digits_labels()[start : start + sizes[k]].copy()


def load_digits_split(split: str, binary: bool = False) -> np.ndarray:
    """The digits of ``split`` as levels (n, 1, 8, 8); ``binary`` thresholds at 8."""
    k = check_split(split)
    sizes = list(DIGITS_SPLIT_SIZES.values())
    start = sum(sizes[:k])
    x = _digits_images()[start : start + sizes[k]]
    return (x >= 8).astype(np.float64) if binary else x.copy()
