"""What a belief knows: linear probes trained on the frozen belief state.

As Azar et al. 2019 ("World Discovery Models", arXiv:1902.07685, section 5) measure the
quality of the learned representation: a classifier reads the world model's belief ``b_t``
(never trained through it) and predicts what the agent cannot see directly — its position in
the maze, and the value of each landmark while that landmark is out of view (the map). The
probes are fitted on half of a fixed set of random-walk evaluation episodes and scored on the
other half, so every agent's belief is read on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from genzoo.world.env import GridWorld


@dataclass
class Episodes:
    """Recorded episodes: ``obs`` ``(n, T+1, D)``, ``actions`` ``(n, T)``, ``positions``
    ``(n, T+1)`` (index into the floor cells), ``landmarks`` ``(n, L)`` values per episode and
    ``landmark_seen`` ``(n, T+1, L)``: landmark in the patch at that step."""

    obs: Tensor
    actions: Tensor
    positions: Tensor
    landmarks: Tensor
    landmark_in_view: Tensor


def record_random_walks(env: GridWorld, episodes: int) -> Episodes:
    """``episodes`` random-walk episodes of ``env`` (in batches of its ``n_envs``)."""
    obs, acts, pos, marks, seen = [], [], [], [], []
    r = env.view // 2
    while sum(len(o) for o in obs) < episodes:
        o = [env.reset().reshape(env.n_envs, -1)]
        p = [env.position_index()]
        v = [_in_view(env, r)]
        a = []
        done = False
        while not done:
            action = env.rng.integers(0, 4, env.n_envs)
            ob, done = env.step(action)
            o.append(ob.reshape(env.n_envs, -1))
            a.append(action)
            p.append(env.position_index())
            v.append(_in_view(env, r))
        obs.append(np.stack(o, 1))
        acts.append(np.stack(a, 1))
        pos.append(np.stack(p, 1))
        seen.append(np.stack(v, 1))
        lm = env.landmarks
        marks.append(env.maps[:, lm[:, 0], lm[:, 1]] if len(lm) else np.zeros((env.n_envs, 0)))

    def cat(parts: list[np.ndarray]) -> Tensor:
        return torch.as_tensor(np.concatenate(parts)[:episodes])

    return Episodes(cat(obs), cat(acts), cat(pos), cat(marks), cat(seen).bool())


def _in_view(env: GridWorld, r: int) -> np.ndarray:
    """Whether each landmark is in each agent's patch, ``(n_envs, L)``."""
    if not len(env.landmarks):
        return np.zeros((env.n_envs, 0), dtype=bool)
    return np.abs(env.landmarks[None] - env.positions[:, None]).max(-1) <= r


def _fit_linear(
    x: Tensor, y: Tensor, classes: int, l2: float = 1e-4, steps: int = 200
) -> torch.nn.Linear:
    """A multinomial logistic regression of ``y`` on ``x`` (full-batch Adam, L2 ``l2``)."""
    gen = torch.Generator().manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], classes)
    with torch.no_grad():
        probe.weight.copy_(torch.randn(probe.weight.shape, generator=gen) * 0.01)
        probe.bias.zero_()
    opt = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(probe(x), y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        opt.step()
    return probe


@torch.no_grad()
def frozen_beliefs(model, episodes: Episodes) -> Tensor:
    """The model's beliefs ``b_0..b_T`` on the episodes, ``(n, T+1, hidden)``, no gradient."""
    n = len(episodes.obs)
    none = torch.full((n, 1), model.no_action, dtype=torch.long)
    prev = torch.cat([none, episodes.actions.long()], 1)
    return model.beliefs(episodes.obs, prev)


def probe_scores(model, episodes: Episodes, n_positions: int) -> dict[str, float]:
    """Test accuracies of linear probes on the frozen belief: ``position`` (the agent's cell,
    chance ``1 / n_positions``) and ``map`` (each landmark's value while it is out of view
    and was seen before in the episode; balanced accuracy, the mean recall of its two values,
    so chance is 0.5; nan without landmarks)."""
    beliefs = frozen_beliefs(model, episodes)
    n = len(beliefs)
    half = n // 2
    feats = beliefs.flatten(0, 1)
    features = (feats - feats[: half * beliefs.shape[1]].mean(0)) / (feats.std(0) + 1e-6)
    features = features.view(beliefs.shape)
    with torch.enable_grad():
        probe = _fit_linear(
            features[:half].flatten(0, 1), episodes.positions[:half].flatten().long(), n_positions
        )
    guess = probe(features[half:].flatten(0, 1)).argmax(-1)
    scores = {"position": float((guess == episodes.positions[half:].flatten()).float().mean())}
    seen_before = episodes.landmark_in_view.long().cummax(1).values.bool()
    hidden = seen_before & ~episodes.landmark_in_view  # (n, T+1, L): known, out of view
    recalls: list[float] = []
    for j in range(episodes.landmarks.shape[1]):
        label = (episodes.landmarks[:, j] - episodes.landmarks[:, j].min()).long()
        rows = hidden[:, :, j]
        if rows[:half].sum() < 10 or rows[half:].sum() < 1 or label.max() == 0:
            continue
        y = label[:, None].expand(-1, beliefs.shape[1])
        with torch.enable_grad():
            p = _fit_linear(features[:half][rows[:half]], y[:half][rows[:half]], 2, l2=1e-2)
        pred, truth = p(features[half:][rows[half:]]).argmax(-1), y[half:][rows[half:]]
        for value in (0, 1):  # balanced: chance is 0.5 whatever the share of each value
            if (truth == value).any():
                recalls.append(float((pred[truth == value] == value).float().mean()))
    scores["map"] = float(np.mean(recalls)) if recalls else float("nan")
    return scores
