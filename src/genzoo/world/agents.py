"""Agents that discover a grid world: random walk, prediction-error curiosity and NDIGO.

Every agent trains the same registered ``world-model`` online on the episodes it collects
(one Adam step per batch of episodes on the loss of every horizon, Azar et al. 2019 section 3);
they differ only in what drives the policy (:mod:`genzoo.world.rewards`):

- ``random``: uniform actions (the policy is not trained);
- ``prediction-error``: the model's loss on the next observation;
- ``ndigo``: the differential information gain of horizon ``k`` (NDIGO-k).

The policy learner is deliberately simple (the paper uses a distributed recurrent agent): an
advantage actor-critic over the model's frozen belief ``b_t`` (a two-layer MLP with a policy
and a value head), discounted returns within an episode (``gamma``), rewards divided by a
running standard deviation, and an entropy bonus. Hyper-parameters are those of
:class:`AgentConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genzoo.models.world_model import WorldModel
from genzoo.world.env import LEVELS, N_ACTIONS, GridWorld
from genzoo.world.probes import Episodes, probe_scores, record_random_walks
from genzoo.world.rewards import ndigo_reward, prediction_error_reward

AGENTS = ("random", "prediction-error", "ndigo")
#: Seed of the random-walk episodes the probes are fitted and scored on (the same for all runs).
EVAL_SEED = 10_000


@dataclass
class AgentConfig:
    """One agent's run: the world, the model, the policy learner and the budget."""

    agent: str = "ndigo"
    noise: str = "none"
    layout: str = "four-rooms"
    view: int = 5
    n_envs: int = 16
    episode_length: int = 80
    iterations: int = 60
    eval_every: int = 10
    eval_episodes: int = 32
    horizon: int = 2  # NDIGO's k; the model predicts k + 1 steps ahead
    hidden: int = 64
    model_lr: float = 3e-3
    policy_lr: float = 3e-3
    gamma: float = 0.95
    entropy: float = 0.05
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.agent not in AGENTS:
            raise ValueError(f"agent must be one of {AGENTS}, got {self.agent!r}")


class Policy(nn.Module):
    """Actor-critic over the belief: action logits and a value."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(hidden, 64), nn.ELU())
        self.pi = nn.Linear(64, N_ACTIONS)
        self.v = nn.Linear(64, 1)
        nn.init.zeros_(self.pi.weight)
        nn.init.zeros_(self.pi.bias)

    def forward(self, belief: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(belief)
        return self.pi(h), self.v(h).squeeze(-1)


def make_model(config: AgentConfig) -> WorldModel:
    """The world model of a run: a ``view x view`` patch, ``horizon + 1`` steps ahead."""
    horizons = config.horizon + 1
    d = config.view * config.view
    return WorldModel(
        [config.view, config.view],
        levels=LEVELS,
        n_actions=N_ACTIONS,
        horizons=horizons,
        condition_len=d + 1 + horizons + 1,
        hidden=config.hidden,
    )


def make_env(config: AgentConfig, seed: int) -> GridWorld:
    """The run's maze (landmark values drawn per episode) under ``seed``."""
    return GridWorld(config.layout, config.view, config.noise, config.n_envs,
                     config.episode_length, random_landmarks=True, seed=seed)  # fmt: skip


def rollout(env: GridWorld, model: WorldModel, policy: Policy | None, gen: torch.Generator):
    """One batch of episodes acting on the model's online belief; numpy arrays of the
    observations ``(n, T+1, D)``, actions ``(n, T)``, positions ``(n, T+1, 2)`` and the
    number of screen cells in view ``(n, T+1)``."""
    n = env.n_envs
    obs = [env.reset().reshape(n, -1)]
    positions, screen = [env.positions.copy()], [env.noise_in_view()]
    actions = []
    state = torch.zeros(1, n, model.hidden)
    prev = torch.full((n,), model.no_action, dtype=torch.long)
    done = False
    with torch.no_grad():
        while not done:
            x = model.step_input(torch.as_tensor(obs[-1])[:, None], prev[:, None])
            _, state = model.gru(x, state)
            if policy is None:
                a = torch.randint(0, N_ACTIONS, (n,), generator=gen)
            else:
                logits, _ = policy(state[0])
                a = torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(-1)
            ob, done = env.step(a.numpy())
            obs.append(ob.reshape(n, -1))
            actions.append(a.numpy())
            positions.append(env.positions.copy())
            screen.append(env.noise_in_view())
            prev = a
    return (np.stack(obs, 1), np.stack(actions, 1), np.stack(positions, 1), np.stack(screen, 1))


def intrinsic_reward(config: AgentConfig, logp: Tensor) -> Tensor:
    """The agent's reward per action from the model's log-probabilities, ``(n, T)``."""
    if config.agent == "ndigo":
        return ndigo_reward(logp, config.horizon)
    return prediction_error_reward(logp)


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """``G_t = sum_i gamma^i r_{t+i}`` within each episode, ``(n, T) -> (n, T)``."""
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return out


def run_agent(config: AgentConfig, progress: Any = None) -> dict[str, Any]:
    """Train one agent and its world model; its curves, probe scores and visit counts.

    Returns ``curve`` (one row per iteration: environment steps, share of the floor visited
    per episode, time with the screen in view, model loss, mean reward), ``probes`` (one row
    per evaluation: steps, position and map probe accuracies), ``visits`` (counts per cell)
    and the config.
    """
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    env, eval_env = make_env(config, config.seed), make_env(config, EVAL_SEED)
    evaluation: Episodes = record_random_walks(eval_env, config.eval_episodes)
    model = make_model(config)
    model_opt = torch.optim.Adam(model.parameters(), lr=config.model_lr)
    policy = None if config.agent == "random" else Policy(config.hidden)
    policy_opt = (
        None if policy is None else torch.optim.Adam(policy.parameters(), lr=config.policy_lr)
    )
    reward_scale = None
    visits = np.zeros(env.shape, dtype=np.int64)
    curve, probes = [], []
    n_floor = len(env.floor_cells)
    for it in range(config.iterations):
        obs, actions, positions, screen = rollout(env, model, policy, gen)
        np.add.at(visits, (positions[..., 0].ravel(), positions[..., 1].ravel()), 1)
        flat = positions[..., 0] * env.shape[1] + positions[..., 1]
        coverage = np.mean([len(np.unique(row)) / n_floor for row in flat])
        obs_t, actions_t = torch.as_tensor(obs), torch.as_tensor(actions)
        loss, logp, beliefs = model.sequence_loss(obs_t, actions_t)
        model_opt.zero_grad()
        loss.backward()
        model_opt.step()
        reward = intrinsic_reward(config, logp.detach())
        if policy is not None:
            std = float(reward.std()) + 1e-8
            reward_scale = std if reward_scale is None else 0.9 * reward_scale + 0.1 * std
            returns = discounted_returns(reward / reward_scale, config.gamma)
            logits, values = policy(beliefs.detach()[:, :-1])
            logpi = F.log_softmax(logits, -1)
            chosen = logpi.gather(-1, actions_t[..., None]).squeeze(-1)
            advantage = (returns - values).detach()
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
            entropy = -(logpi.exp() * logpi).sum(-1).mean()
            policy_loss = (
                -(chosen * advantage).mean()
                + 0.5 * (returns - values).pow(2).mean()
                - config.entropy * entropy
            )
            policy_opt.zero_grad()
            policy_loss.backward()
            policy_opt.step()
        steps = (it + 1) * config.n_envs * config.episode_length
        curve.append(
            {
                "iteration": it + 1,
                "steps": steps,
                "coverage": float(coverage),
                "screen_time": float((screen[:, 1:] > 0).mean()),
                "model_loss": float(loss.detach()),
                "reward": float(reward.mean()),
            }
        )
        if (it + 1) % config.eval_every == 0 or it + 1 == config.iterations:
            probes.append({"steps": steps, **probe_scores(model, evaluation, n_floor)})
        if progress is not None:
            progress.update(1)
    return {
        "config": asdict(config),
        "curve": curve,
        "probes": probes,
        "visits": visits,
        "walls": env.walls | env.screen,
        "screen": env.screen,
    }
