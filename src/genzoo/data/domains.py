"""Unpaired domain pairs for image-to-image (or point-to-point) translation (CycleGAN).

A pair is returned as one tensor: examples of domain A and of domain B, concatenated along
axis 1 (the feature axis of vectors, the channel axis of images), each side shuffled on its
own, so row i holds an A example and an unrelated B example. ``split_domains`` undoes it.

- ``moons-circles``: A = the ``moons`` toy, B = the ``circles`` toy; shape (4,).
- ``digits-inverted``: A = digits, B = other digits with inverted grey levels ``16 - x``;
  shape (2, 8, 8), integer levels 0..16 (dequantise as digits: levels 17).
- ``digits-thick``: A = digits, B = other digits with strokes thickened by a 3x3 grey-level
  dilation (max filter); shape (2, 8, 8), integer levels 0..16.

For the digit pairs, A takes the split's even-indexed images and B the odd-indexed ones, so no
image appears in both domains: the pairing is truly unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from genzoo.data import images, toy2d
from genzoo.data._common import make_rng
from genzoo.errors import DataError, unknown_name


@dataclass(frozen=True)
class DomainPair:
    """One row of ``list_domain_pairs()``."""

    name: str
    shape: tuple[int, ...]  # of the concatenated example
    levels: int | None  # discrete levels per scalar, None when continuous
    description: str


DOMAIN_PAIRS: dict[str, DomainPair] = {
    "moons-circles": DomainPair(
        "moons-circles", (4,), None, "A: moons toy, B: circles toy (unpaired), concatenated"
    ),
    "digits-inverted": DomainPair(
        "digits-inverted",
        (2, 8, 8),
        17,
        "A: digits, B: other digits with inverted grey levels 16 - x; channels A | B",
    ),  # fmt: skip
    "digits-thick": DomainPair(
        "digits-thick",
        (2, 8, 8),
        17,
        "A: digits, B: other digits with strokes thickened (3x3 max filter); channels A | B",
    ),  # fmt: skip
}


def list_domain_pairs() -> list[DomainPair]:
    """Every shipped domain pair."""
    return list(DOMAIN_PAIRS.values())


def invert_levels(x: torch.Tensor, levels: int = 17) -> torch.Tensor:
    """Grey levels ``0..levels-1`` inverted: ``levels - 1 - x``."""
    return (levels - 1) - x


def thicken_strokes(x: torch.Tensor) -> torch.Tensor:
    """Grey-level dilation of images ``(n, C, H, W)`` by a 3x3 max filter (levels stay levels)."""
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def _shuffled(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return x[torch.as_tensor(rng.permutation(x.shape[0]))]


def load_domain_pair(
    name: str, split: str = "train", n: int | None = None, seed: int = 0
) -> torch.Tensor:
    """The unpaired pair ``name`` of ``split`` as one tensor, A and B concatenated on axis 1.

    Toys draw ``n`` points per domain (default 10,000); digit pairs hold at most half of the
    split's images (500 for train) and keep the first ``n``.
    """
    if name not in DOMAIN_PAIRS:
        raise unknown_name("domain pair", name, DOMAIN_PAIRS)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise DataError(f"n must be a positive integer or None; got {n!r}")
    rng = make_rng(seed, name, split)
    if name == "moons-circles":
        a = toy2d.load_toy("moons", split, n, seed)
        b = toy2d.load_toy("circles", split, n, seed + 1)
    else:
        x = torch.as_tensor(images.load_digits_split(split), dtype=torch.get_default_dtype())
        a, b = x[0::2], x[1::2]
        b = invert_levels(b) if name == "digits-inverted" else thicken_strokes(b)
        m = min(a.shape[0], b.shape[0])
        a, b = a[:m], b[:m]
    a, b = _shuffled(a, rng), _shuffled(b, rng)
    return torch.cat([a, b], dim=1)[:n]


def split_domains(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Undo the concatenation: ``(n, 2k, ...) -> (n, k, ...), (n, k, ...)``."""
    if x.ndim < 2 or x.shape[1] % 2:
        raise DataError(f"a domain pair is concatenated on axis 1, which must be even; got "
                        f"shape {tuple(x.shape)}")  # fmt: skip
    k = x.shape[1] // 2
    return x[:, :k], x[:, k:]
