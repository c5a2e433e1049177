"""Energy-based models: Boltzmann machines and deep energy networks.

``ais.py`` (annealed importance sampling of ``log Z``), ``rbm.py`` (the RBM layer and the
``rbm`` / ``gb-rbm`` models), ``dbn.py``, ``dbm.py``, ``langevin.py`` (Langevin dynamics on an
energy, grid quadrature of its normaliser), ``ebm.py`` (Du & Mordatch 2019) and ``mdsm.py``
(Li et al. 2019).
"""

from genzoo.models.energy.ais import ais_log_z, log_mean_exp, sigmoid_betas
from genzoo.models.energy.dbm import DBM
from genzoo.models.energy.dbn import DBN
from genzoo.models.energy.ebm import EBM, EnergyNetwork
from genzoo.models.energy.langevin import energy_gradient, grid_log_normalizer, langevin
from genzoo.models.energy.mdsm import MDSM
from genzoo.models.energy.rbm import RBM, GaussianRBM, RBMLayer

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
