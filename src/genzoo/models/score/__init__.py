"""Denoising score matching and diffusion: NCSN, score SDEs (VP/VE) and DDPM.

Networks (``networks.py``), noise processes (``sde.py``), ODE solvers (``ode.py``) and
samplers (``samplers.py``) are separate parts; each model (``ncsn.py``, ``diffusion.py``) is a
short recipe over them. Samplers take any score function, so they are tested with exact
scores of known distributions.
"""

from genzoo.models.score.common import EMA, ScoreModel
from genzoo.models.score.diffusion import DDPM, DiffusionModel, ScoreSDE
from genzoo.models.score.ncsn import NCSN
from genzoo.models.score.networks import ConditionalMLP, SinusoidalEmbedding, SmallUNet
from genzoo.models.score.ode import divergence, rk4, rk45
from genzoo.models.score.samplers import (
    DDIM,
    AnnealedLangevin,
    DDPMAncestral,
    DPMSolver,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
)
from genzoo.models.score.sde import (
    VESDE,
    VPSDE,
    DiscreteVPSchedule,
    geometric_sigmas,
    max_pairwise_distance,
)

__all__ = [
    "DDPM",
    "EMA",
    "NCSN",
    "VESDE",
    "VPSDE",
    "DDIM",
    "AnnealedLangevin",
    "ConditionalMLP",
    "DDPMAncestral",
    "DPMSolver",
    "DiffusionModel",
    "DiscreteVPSchedule",
    "Langevin",
    "PredictorCorrector",
    "ProbabilityFlowODE",
    "ScoreModel",
    "ScoreSDE",
    "SinusoidalEmbedding",
    "SmallUNet",
    "divergence",
    "geometric_sigmas",
    "max_pairwise_distance",
    "rk4",
    "rk45",
]
