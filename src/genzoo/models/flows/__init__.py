"""Normalizing flows: invertible maps from data to a simple base with an exact density.

Shared parts live in ``transforms.py`` (the transform protocol, ``Compose``, permutations,
standardisation) and ``coupling.py`` (coupling layers and their masks); each flow is a
short recipe over them.
"""

from genzoo.models.flows.coupling import AffineCoupling, alternating_masks
from genzoo.models.flows.realnvp import RealNVP
from genzoo.models.flows.transforms import (
    Compose,
    Permutation,
    Reverse,
    Standardize,
    Transform,
)

__all__ = [
    "AffineCoupling",
    "Compose",
    "Permutation",
    "RealNVP",
    "Reverse",
    "Standardize",
    "Transform",
    "alternating_masks",
]
