"""Generative adversarial networks: a generator against a discriminator; no density.

Shared parts: :mod:`.losses` (the objectives and the R1 / R2 / gradient penalties as
functions), :mod:`.nets` (MLP and DCGAN networks chosen from the data's shape), :mod:`.base`
(two players, n critic steps, weight clipping, generator EMA, diagnostics). Each registered
model is a short recipe over them. ``EMAWeights`` is deprecated (the generator's average is
``genzoo.models.ema.EMA``); it is kept for one release.
"""

from genzoo.models.gans.base import AdversarialModel, EMAWeights
from genzoo.models.gans.classic import GAN, LSGAN, WGAN, WGANGP
from genzoo.models.gans.cyclegan import CycleGAN
from genzoo.models.gans.infogan import InfoGAN
from genzoo.models.gans.losses import (
    LOSSES,
    PENALTIES,
    discriminator_accuracy,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
    r2_penalty,
)
from genzoo.models.gans.progan import ProGAN
from genzoo.models.gans.stylegan import StyleGAN

__all__ = [
    "GAN",
    "CycleGAN",
    "InfoGAN",
    "ProGAN",
    "StyleGAN",
    "LOSSES",
    "LSGAN",
    "PENALTIES",
    "WGAN",
    "WGANGP",
    "AdversarialModel",
    "EMAWeights",
    "discriminator_accuracy",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "r1_penalty",
    "r2_penalty",
]
