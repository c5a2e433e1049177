"""Intrinsic rewards from a world model's log-probabilities: prediction error and NDIGO.

Both read ``logp[:, t, k - 1] = log p(o_{t+k} | b_t, a_t..a_{t+k-1})`` for every step ``t``
and horizon ``k`` of a batch of episodes (``WorldModel.sequence_log_probs``, ``nan`` where
``t + k`` falls past the end), and return one reward per action ``a_0..a_{T-1}``, ``(n, T)``
(``a_{i:j}`` below is ``a_i..a_j``).

- Prediction error (the curiosity of Pathak et al. 2017 and of Azar et al.'s baselines): the
  model's loss on the observation the action led to, ``r_t = -log p(o_{t+1} | b_t, a_t)``.
- NDIGO (Azar et al. 2019, "World Discovery Models", arXiv:1902.07685, section 4): the
  differential information gain of horizon ``k``, credited to the last action before
  ``o_{t+k}``::

      r_{t+k-1} = log p(o_{t+k} | b_t, a_{t:t+k-1}) - log p(o_{t+k} | b_{t-1}, a_{t-1:t+k-1})

  the improvement in predicting ``o_{t+k}`` that observing ``o_t`` brought: the loss of the
  ``(k+1)``-step prediction from ``b_{t-1}`` minus that of the ``k``-step prediction from
  ``b_t``. Its expectation is the information ``o_t`` carries about ``o_{t+k}`` given the
  history and actions, so a step that reveals nothing (a deterministic, fully predicted one)
  earns 0 and white noise, which tells nothing about the future, earns 0 too, while the
  prediction error of white noise stays high forever. The model must predict ``K >= k + 1``
  steps ahead; rewards ``r_0..r_{k-1}`` (no ``b_{t-1}`` yet) are 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def prediction_error_reward(logp: Tensor) -> Tensor:
    """``r_t = -log p(o_{t+1} | b_t, a_t)`` for ``t = 0..T-1``: ``(n, T+1, K) -> (n, T)``."""
    return -logp[:, :-1, 0]


def ndigo_reward(logp: Tensor, k: int) -> Tensor:
    """NDIGO's reward of horizon ``k`` (module docstring), ``(n, T+1, K) -> (n, T)``, nats."""
    n, t1, horizons = logp.shape
    if not 1 <= k < horizons:
        raise ValueError(
            f"NDIGO of horizon k={k} needs the model's K >= k + 1 = {k + 1} steps "
            f"ahead (this one predicts {horizons}); use k in 1..{horizons - 1}"
        )
    reward = torch.zeros(n, t1 - 1, dtype=logp.dtype, device=logp.device)
    t = torch.arange(1, t1 - k)  # steps with b_{t-1} and o_{t+k} both there
    if len(t):
        gain = logp[:, t, k - 1] - logp[:, t - 1, k]
        reward[:, t + k - 1] = gain
    return reward
