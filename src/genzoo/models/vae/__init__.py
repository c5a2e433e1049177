"""Variational autoencoders: ``vae``, ``beta-vae`` (and ``sentence-vae`` for text).

Shared parts: ``networks.py`` (MLP / convolutional encoder and decoder by data shape),
``likelihoods.py`` (Bernoulli, Gaussian, categorical decoders; the Gaussian KL, free bits),
``posterior.py`` (amortised planar flow), ``diagnostics.py`` (KL per dimension, active
units), ``elbo.py`` (the annealed KL terms of the loss and the seeded IWAE ``log_prob`` both
models use) and ``latent.py`` (interpolation, traversals); the models in ``model.py`` and
``sentence.py``.
"""

from genzoo.models.vae.diagnostics import active_units, collapse_report
from genzoo.models.vae.latent import interpolate, slerp, traverse
from genzoo.models.vae.likelihoods import free_bits_kl, gaussian_kl
from genzoo.models.vae.model import VAE, BetaVAE
from genzoo.models.vae.posterior import planar_flow
from genzoo.models.vae.sentence import SentenceVAE, homotopy

__all__ = [
    "VAE",
    "BetaVAE",
    "SentenceVAE",
    "active_units",
    "collapse_report",
    "free_bits_kl",
    "gaussian_kl",
    "homotopy",
    "interpolate",
    "planar_flow",
    "slerp",
    "traverse",
]
