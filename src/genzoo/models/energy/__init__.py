"""Energy-based models: Boltzmann machines and deep energy networks.

``ais.py`` (annealed importance sampling of ``log Z``), ``rbm_layer.py`` (the RBM layer: the
maths of every Boltzmann machine here), ``boltzmann.py`` (what the Boltzmann machines share as
models), ``rbm.py`` (the ``rbm`` / ``gb-rbm`` models), ``cd_loop.py`` (their hand-fused
classical training loop, ``fit_cd``), ``dbn.py``, ``dbm.py``, ``langevin.py`` (Langevin
dynamics on an energy, grid quadrature of its normaliser), ``ebm.py`` (Du & Mordatch 2019) and
``mdsm.py`` (Li et al. 2019).
"""

from genzoo.models.energy.ais import ais_log_z, log_mean_exp, sigmoid_betas
from genzoo.models.energy.dbm import DBM
from genzoo.models.energy.dbn import DBN
from genzoo.models.energy.ebm import EBM, EnergyNetwork
from genzoo.models.energy.langevin import energy_gradient, grid_log_normalizer, langevin
from genzoo.models.energy.mdsm import MDSM
from genzoo.models.energy.rbm import RBM, GaussianRBM
from genzoo.models.energy.rbm_layer import RBMLayer

__all__ = [
    "DBM",
    "DBN",
    "RBM",
    "EBM",
    "MDSM",
    "EnergyNetwork",
    "GaussianRBM",
    "RBMLayer",
    "ais_log_z",
    "energy_gradient",
    "grid_log_normalizer",
    "langevin",
    "log_mean_exp",
    "sigmoid_betas",
]
