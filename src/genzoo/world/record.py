"""Recorded trajectories as ``(x, c)`` pairs, so genzoo's Trainer fits the world model.

Each pair is one target observation ``x = o_{t+k}`` and its condition ``c``, the ids of
``WorldModel.encode_condition``: the last ``H`` observations up to ``o_t`` and the action before
each (left-padded at the start of the episode), the next actions ``a_t..a_{t+k-1}`` and ``k``.
With ``H`` at least the episode length the belief read from ``c`` is the agent's online belief.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genzoo.models.world_model import WorldModel
from genzoo.world.env import LEVELS, N_ACTIONS


def transitions(
    obs: Tensor,
    actions: Tensor,
    history: int,
    horizons: int,
    levels: int = LEVELS,
    n_actions: int = N_ACTIONS,
) -> tuple[Tensor, Tensor]:
    """Every ``(o_{t+k}, c)`` of episodes ``obs`` ``(n, T+1, D)`` and ``actions`` ``(n, T)`` for
    ``k = 1..horizons``: ``x`` ``(N, D)`` int64 and ``c`` ``(N, condition_len)`` int64.

    The ids follow the layout of a world model of ``levels`` cell values, ``n_actions``
    actions, ``horizons`` steps ahead and ``condition_len = history * (D + 1) + horizons + 1``.
    """
    n, t1, d = obs.shape
    if actions.shape != (n, t1 - 1):
        raise ValueError(f"actions must be (n, T) = ({n}, {t1 - 1}), got {tuple(actions.shape)}")
    model = WorldModel(
        [d],
        levels=levels,
        n_actions=n_actions,
        horizons=horizons,
        condition_len=history * (d + 1) + horizons + 1,
        hidden=1,
    )  # the layout
    obs, actions = obs.long(), actions.long()
    pad_obs = torch.cat([torch.full((n, history - 1, d), -1), obs], 1)
    prev = torch.cat([torch.full((n, history), -1), actions], 1)  # a_{t-1} before each o_t
    nxt = torch.cat([actions, torch.full((n, horizons), -1)], 1)
    xs, cs = [], []
    for t in range(t1 - 1):
        window = pad_obs[:, t : t + history]
        acts = prev[:, t : t + history]
        future = nxt[:, t : t + horizons].clamp(min=0)
        for k in range(1, min(horizons, t1 - 1 - t) + 1):
            cs.append(model.encode_condition(window, acts, future, k))
            xs.append(obs[:, t + k])
    return torch.cat(xs), torch.cat(cs)
