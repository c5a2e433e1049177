"""A world model: a recurrent belief over an agent's history and the observation k steps ahead.

After the World Discovery Models of Azar, Piot, Avila Pires, Grill, Altche & Munos 2019
("World Discovery Models", arXiv:1902.07685, section 3): a recurrent network (a GRU here)
folds the agent's history of observations and actions into a *belief* ``b_t``,

    b_t = GRU(b_{t-1}, [onehot(o_t), onehot(a_{t-1})]),        b_{-1} = 0,

and a conditional generative model predicts the observation ``k = 1..K`` steps ahead from the
belief and the ``k`` actions taken in between,

    p(o_{t+k} | b_t, a_t..a_{t+k-1}) = prod_cells softmax(g([b_t, a_t..a_{t+k-1}, k]))[o_{t+k}],

one categorical per cell of the observed patch, so ``log_prob`` is exact (nats). The model is
trained by maximum likelihood of every horizon, the loss of the paper's frame predictors.

As a genzoo model it is ``Q(x | c)`` with a ``"tokens"`` condition: ``x`` is the patch
``o_{t+k}`` (``levels`` values per cell) and ``c`` one row of ``condition_len`` integer ids
laid out as ``encode_condition`` writes them (the last ``H`` steps of history, left-padded, the
``K`` next actions and the horizon ``k``), so the Trainer fits it on recorded trajectories
like any conditional model (``genzoo.world.record.transitions`` builds ``(x, c)``). The agent
loop uses the same network through ``sequence_log_probs``, which scores every ``(t, k)`` of a
batch of episodes in one pass. Built without a condition (``condition_len=0``) it is a table
of independent categoricals, ``Q(x) = prod_i softmax(theta_i)[x_i]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genzoo.errors import DataError
from genzoo.models.autoregressive.common import DiscreteModel, gather_log_softmax, sample_logits
from genzoo.models.base import model_fact
from genzoo.registry import register_model


@register_model("world-model", family="world")
class WorldModel(DiscreteModel):
    """World model of NDIGO (Azar et al. 2019): GRU belief, exact k-step observation model.

    Arguments:
        data_shape: shape of one observation patch (e.g. ``[5, 5]``).
        levels: values a cell of the patch takes.
        n_actions: number of actions of the agent.
        horizons: ``K``, the largest number of steps ahead predicted.
        condition_len: ids of the ``"tokens"`` condition, ``H * (D + 1) + K + 1`` for a
            history of ``H`` steps of a ``D``-cell patch (0: unconditional).
        hidden: width of the belief (GRU state) and of the predictor's hidden layer.

    Example:
        >>> import torch, genzoo
        >>> from genzoo.models.world_model import WorldModel
        >>> m = WorldModel([2, 2], levels=3, horizons=2, condition_len=2 * 5 + 3)
        >>> c = m.encode_condition(torch.zeros(1, 2, 4), torch.zeros(1, 2), torch.zeros(1, 2), 1)
        >>> m.log_prob(torch.zeros(1, 2, 2), c=c).shape
        torch.Size([1])
    """

    data_kinds = ("image", "tabular")
    condition_kinds = ("tokens",)

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        n_actions: int = 4,
        horizons: int = 4,
        condition_len: int = 0,
        hidden: int = 64,
    ) -> None:
        super().__init__(data_shape, levels)
        for key, value, low in (
            ("n_actions", n_actions, 1),
            ("horizons", horizons, 1),
            ("hidden", hidden, 1),
            ("condition_len", condition_len, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} of world-model must be an integer >= {low}, got {value!r}")
        self.n_actions, self.horizons, self.hidden = n_actions, horizons, hidden
        self.condition_len = condition_len
        d, step = self.data_dim, self.data_dim + 1
        if condition_len:
            history = (condition_len - horizons - 1) / step
            if history < 1 or history != int(history):
                raise ValueError(
                    f"condition_len {condition_len} is not H * (D + 1) + K + 1 for a D = {d} "
                    f"cell patch and K = {horizons} horizons; use {step + horizons + 1} for a "
                    "history of one step"
                )
            self.history = int(history)
            self.gru = nn.GRU(d * (levels + 1) + n_actions + 1, hidden, batch_first=True)
            self.predictor = nn.Sequential(
                nn.Linear(hidden + horizons * (n_actions + 1), hidden),
                nn.ELU(),
                nn.Linear(hidden, d * levels),
            )
        else:
            self.history = 0
            self.logits = nn.Parameter(torch.zeros(d, levels))

    # -- the token vocabulary of the condition -----------------------------------------------
    @property
    def pad(self) -> int:
        """Id of a cell not observed (a history step before the episode started)."""
        return self.levels

    @property
    def no_action(self) -> int:
        """Index of "no action" among the action ids (before the first step, after ``k``)."""
        return self.n_actions

    def action_id(self, a: Tensor) -> Tensor:
        """Token id of action ``a`` (``n_actions`` = no action)."""
        return self.levels + 1 + a

    @property
    def vocab_size(self) -> int:
        """Number of token ids of the condition: cells, pad, actions, no action, horizons."""
        return self.levels + 2 + self.n_actions + self.horizons

    @model_fact(None)
    def condition_kind(self) -> str | None:
        """``"tokens"`` (a history, the next actions and a horizon) or ``None``."""
        return "tokens" if self.condition_len else None

    def encode_condition(
        self, obs: Tensor, prev_actions: Tensor, next_actions: Tensor, k: int | Tensor
    ) -> Tensor:
        """The condition ids of ``log p(o_{t+k} | b_t, a_t..a_{t+k-1})``, ``(n, condition_len)``.

        ``obs``: the last ``H`` observations ``o_{t-H+1}..o_t`` flattened, ``(n, H, D)``, cells
        ``-1`` (or ``levels``) where there was none; ``prev_actions``: the action before each,
        ``(n, H)``, ``-1`` (or ``n_actions``) for none; ``next_actions``: ``a_t..``, ``(n, >=k)``
        (those after the ``k``-th are ignored); ``k``: the horizon, 1..K, one or one per row.
        """
        n, h = obs.shape[0], self.history
        if obs.shape[1:] != (h, self.data_dim) or prev_actions.shape != (n, h):
            raise DataError(
                f"world-model takes a history of {h} steps: obs (n, {h}, "
                f"{self.data_dim}) and prev_actions (n, {h}), got "
                f"{tuple(obs.shape)} and {tuple(prev_actions.shape)}"
            )
        k = torch.as_tensor(k, dtype=torch.long).expand(n)
        if k.min() < 1 or k.max() > self.horizons:
            raise DataError(f"horizon k must be in 1..{self.horizons}, got {k.tolist()}")
        obs = torch.where(obs < 0, self.pad, obs.long())
        prev = torch.where(prev_actions < 0, self.no_action, prev_actions.long())
        nxt = torch.full((n, self.horizons), self.no_action, dtype=torch.long)
        width = min(next_actions.shape[1], self.horizons)
        nxt[:, :width] = next_actions[:, :width].long()
        nxt[torch.arange(self.horizons)[None] >= k[:, None]] = self.no_action
        steps = torch.cat([obs, self.action_id(prev)[..., None]], -1).flatten(1)
        horizon = (self.levels + 2 + self.n_actions + k - 1)[:, None]
        return torch.cat([steps, self.action_id(nxt), horizon], 1)

    def check_condition(self, c: Any, n: int | None = None) -> Tensor | None:
        """``c`` as ``(n, condition_len)`` int64 ids in the layout of ``encode_condition``
        (one row ``(condition_len,)`` is repeated); a one-line ``DataError`` otherwise."""
        m = self.condition_len
        if not m:
            if c is None:
                return None
            raise DataError(
                "world-model was built without a condition (condition_len=0), so it "
                "takes no c: build it with condition= ids from encode_condition"
            )
        what = f"a history of {m} token ids (WorldModel.encode_condition)"
        if c is None:
            raise DataError(f"world-model is conditional on {what}: pass c=...")
        try:
            t = torch.as_tensor(c)
        except (TypeError, ValueError, RuntimeError) as err:
            raise DataError(f"world-model is conditional on {what}; cannot read {c!r}") from err
        if t.ndim == 1 and len(t) == m and n is not None:
            t = t.expand(n, m)
        if t.ndim != 2 or t.shape[1] != m or (n is not None and len(t) != n):
            raise DataError(
                f"world-model is conditional on {what}: give c shaped ({m},) or "
                f"(n, {m}), got shape {tuple(t.shape)}"
            )
        if t.is_floating_point() and not bool((t == t.round()).all()):
            raise DataError(f"world-model is conditional on {what}; got non-integer ids")
        t = t.long()
        low, high = self._id_ranges()
        if t.numel() and bool(((t < low) | (t > high)).any()):
            raise DataError(
                "world-model: condition ids out of range for their position; "
                "build c with WorldModel.encode_condition"
            )
        return t.to(self.device)

    def _id_ranges(self) -> tuple[Tensor, Tensor]:
        """Smallest and largest valid id at each position of the condition."""
        d, h, k = self.data_dim, self.history, self.horizons
        first_action, last_action = self.levels + 1, self.levels + 1 + self.n_actions
        low = torch.tensor(([0] * d + [first_action]) * h + [first_action] * k + [last_action + 1])
        high = torch.tensor(
            ([self.pad] * d + [last_action]) * h + [last_action] * k + [last_action + k]
        )
        return low, high

    # -- the networks ----------------------------------------------------------------------
    def step_input(self, obs: Tensor, prev_actions: Tensor) -> Tensor:
        """GRU input of observations ``(..., D)`` (``pad`` where unseen) and the actions before
        them ``(...)`` (``n_actions`` for none): one-hot cells and action."""
        cells = F.one_hot(obs.long(), self.levels + 1).flatten(-2)
        return torch.cat([cells, F.one_hot(prev_actions.long(), self.n_actions + 1)], -1).to(
            self.dtype
        )

    def beliefs(self, obs: Tensor, prev_actions: Tensor, state: Tensor | None = None) -> Tensor:
        """Beliefs ``b_0..b_{T-1}`` after each of ``T`` steps, ``(n, T, hidden)``, from the
        observations ``(n, T, D)`` and the action before each ``(n, T)`` (``state``: the belief
        before the first, ``(n, hidden)``; zero by default)."""
        h0 = None if state is None else state[None].contiguous()
        out, _ = self.gru(self.step_input(obs, prev_actions), h0)
        return out

    def predict_logits(self, belief: Tensor, actions: Tensor, k: Tensor) -> Tensor:
        """Logits of ``o_{t+k}`` given ``b_t`` ``(..., hidden)``, the next actions ``(..., K)``
        (``n_actions`` after the ``k``-th) and ``k`` ``(...)``: ``(..., D, levels)``."""
        mask = torch.arange(self.horizons, device=actions.device) < k[..., None]
        acts = torch.where(mask, actions.long(), self.no_action)
        onehot = F.one_hot(acts, self.n_actions + 1).flatten(-2).to(belief.dtype)
        logits = self.predictor(torch.cat([belief, onehot], -1))
        return logits.view(*belief.shape[:-1], self.data_dim, self.levels)

    def sequence_log_probs(self, obs: Tensor, actions: Tensor, beliefs: Tensor | None = None):
        """``log p(o_{t+k} | b_t, a_t..a_{t+k-1})`` for every ``t`` and ``k = 1..K`` of episodes.

        ``obs``: ``o_0..o_T`` flattened, ``(n, T+1, D)``; ``actions``: ``a_0..a_{T-1}``,
        ``(n, T)``; ``beliefs``: ``b_0..b_T`` if already computed. Returns ``(logp, beliefs)``:
        ``logp`` ``(n, T+1, K)`` in nats, ``nan`` where ``t + k > T``, and ``(n, T+1, hidden)``.
        """
        n, t1, _ = obs.shape
        if beliefs is None:
            none = torch.full((n, 1), self.no_action, dtype=torch.long, device=obs.device)
            beliefs = self.beliefs(obs, torch.cat([none, actions.long()], 1))
        padded = torch.cat(
            [actions.long(), torch.full((n, self.horizons), self.no_action, device=obs.device)], 1
        )
        windows = padded.unfold(1, self.horizons, 1)[:, :t1]  # (n, T+1, K): a_t..a_{t+K-1}
        logps = []
        for k in range(1, self.horizons + 1):
            ks = torch.full((n, t1), k, device=obs.device)
            logits = self.predict_logits(beliefs, windows, ks)[:, : max(t1 - k, 0)]
            lp = gather_log_softmax(logits.flatten(0, 1), obs[:, k:].flatten(0, 1).long())
            lp = lp.sum(-1).view(n, -1)
            logps.append(F.pad(lp, (0, k), value=math.nan))
        return torch.stack(logps, -1), beliefs

    def sequence_loss(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean ``-log p`` per cell over every ``(t, k)`` of episodes (the training loss), with
        the log-probabilities and beliefs it came from (``sequence_log_probs``)."""
        logp, beliefs = self.sequence_log_probs(obs, actions)
        valid = ~torch.isnan(logp)
        return -logp[valid].mean() / self.data_dim, logp, beliefs

    # -- the protocol ------------------------------------------------------------------------
    def _table(self, c: Tensor | None, n: int) -> Tensor:
        """Logits ``(n, D, levels)`` of the checked conditions ``c``."""
        if c is None:
            return self.logits.expand(n, -1, -1)
        d, h, k = self.data_dim, self.history, self.horizons
        steps = c[:, : h * (d + 1)].view(n, h, d + 1)
        obs, prev = steps[..., :d], steps[..., d] - self.levels - 1
        valid = (obs != self.pad).any(-1)  # a step of history, not padding before the episode
        state = torch.zeros(1, n, self.hidden, device=c.device, dtype=self.dtype)
        inputs = self.step_input(obs, prev)
        for i in range(h):  # padded steps leave the belief as it was (zero before the episode)
            _, new = self.gru(inputs[:, i : i + 1], state)
            state = torch.where(valid[None, :, i, None], new, state)
        actions = c[:, h * (d + 1) : h * (d + 1) + k] - self.levels - 1
        horizon = c[:, -1] - self.levels - 1 - self.n_actions
        return self.predict_logits(state[0], actions, horizon)

    def log_prob_terms(self, x: Tensor, c: Any = None) -> Tensor:
        """``log p`` of each cell of ``x`` given ``c``, ``(n, D)``, nats."""
        x = self.check_input(x).flatten(1)
        return gather_log_softmax(self._table(self.check_condition(c, len(x)), len(x)), x)

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Exact ``log p(o_{t+k} | b_t, a_t..a_{t+k-1})`` per example in nats, ``(n,)``."""
        return self.log_prob_terms(x, c).sum(-1).to(self.dtype)

    def loss(self, batch: Tensor | None, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        """Cross-entropy per cell, ``-1/D log p(x | c)`` (maximum likelihood)."""
        ce = -self.log_prob_terms(batch, c).mean()
        return {"cross_entropy": ce, "diag/bits_per_dim": ce.detach() / math.log(2)}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, c: Any = None) -> Tensor:
        """``n`` patches drawn cell by cell (the cells are independent given ``c``)."""
        logits = self._table(self.check_condition(c, n), n)
        x = sample_logits(logits.reshape(n * self.data_dim, logits.shape[-1]), generator)
        return x.view(n, *self.data_shape).to(self.dtype)
