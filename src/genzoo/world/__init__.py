"""World discovery: a grid world seen through a patch, curious agents and NDIGO.

After Azar, Piot, Avila Pires, Grill, Altche & Munos 2019 ("World Discovery Models",
arXiv:1902.07685). :mod:`genzoo.world.env` is the maze, :mod:`genzoo.world.agents` the random,
prediction-error and NDIGO agents trained with the registered ``world-model``
(:mod:`genzoo.models.world_model`), :mod:`genzoo.world.probes` the measures of what the belief
knows, :mod:`genzoo.world.compare` the comparison and its figures.
"""

from genzoo.world.env import LEVELS, N_ACTIONS, GridWorld

__all__ = ["LEVELS", "N_ACTIONS", "GridWorld"]
