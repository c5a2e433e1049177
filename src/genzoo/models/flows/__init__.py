"""Normalizing flows: invertible maps from data to a simple base with an exact density.

Shared parts live in ``transforms.py`` (the transform protocol, ``Compose``, permutations,
standardisation, ActNorm, the LU 1x1 convolution, the logit), ``coupling.py`` (affine
coupling layers and their masks), ``splines.py`` (rational-quadratic splines),
``autoregressive.py`` (MADE) and ``multiscale.py`` (squeeze, factor-out); each flow is a
short recipe over them: ``realnvp.py``, ``glow.py``, ``nsf.py``, ``planar.py``.
"""

from genzoo.models.flows.autoregressive import MADE, MaskedLinear, SplineAutoregressive
from genzoo.models.flows.base import Flow, standard_normal_log_prob
from genzoo.models.flows.coupling import (
    AffineCoupling,
    ConvAffineCoupling,
    alternating_masks,
    channel_mask,
    checkerboard_mask,
)
from genzoo.models.flows.glow import Glow
from genzoo.models.flows.multiscale import MultiScale, Squeeze
from genzoo.models.flows.nsf import NSF
from genzoo.models.flows.planar import (
    PlanarFlow,
    PlanarTransform,
    RadialFlow,
    RadialTransform,
    reverse_kl,
)
from genzoo.models.flows.realnvp import RealNVP
from genzoo.models.flows.splines import SplineCoupling, SplineSettings, rational_quadratic_spline
from genzoo.models.flows.transforms import (
    ActNorm,
    Compose,
    Flatten,
    InvertibleLinear,
    Logit,
    Permutation,
    Reverse,
    Standardize,
    Transform,
)

__all__ = [
    "MADE",
    "NSF",
    "ActNorm",
    "AffineCoupling",
    "Compose",
    "ConvAffineCoupling",
    "Flatten",
    "Flow",
    "Glow",
    "InvertibleLinear",
    "Logit",
    "MaskedLinear",
    "MultiScale",
    "Permutation",
    "PlanarFlow",
    "PlanarTransform",
    "RadialFlow",
    "RadialTransform",
    "RealNVP",
    "Reverse",
    "SplineAutoregressive",
    "SplineCoupling",
    "SplineSettings",
    "Squeeze",
    "Standardize",
    "Transform",
    "alternating_masks",
    "channel_mask",
    "checkerboard_mask",
    "rational_quadratic_spline",
    "reverse_kl",
    "standard_normal_log_prob",
]
