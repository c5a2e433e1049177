"""Parts every discrete autoregressive model shares: input checks, sampling filters, units.

A model here factorises ``P(x) = prod_i P(x_i | x_<i)`` over the ``D`` scalars of an example,
each a categorical over ``levels`` values, and is fitted by cross-entropy (maximum likelihood).
Its ``log_prob`` is exact, in nats; ``bits_per_token`` turns it into bits per character/pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.errors import DataError
from genzoo.models.base import GenerativeModel
from genzoo.validation import check_shape


def bits_per_token(log_prob: Tensor, n_tokens: int) -> float:
    """Mean ``-log2 P`` per token of per-sequence log probabilities (nats), ``(n,) -> float``."""
    return float(-log_prob.double().mean() / (n_tokens * math.log(2)))


def perplexity(log_prob: Tensor, n_tokens: int) -> float:
    """``exp`` of the mean cross-entropy per token: ``2 ** bits_per_token``."""
    return float(torch.exp(-log_prob.double().mean() / n_tokens))


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Keep the ``top_k`` largest logits, then the smallest set whose probability reaches ``top_p``.

    Nucleus sampling after Holtzman et al. 2020; the rest become ``-inf``. ``(..., V)`` in and
    out; ``top_k=0`` and ``top_p=1`` keep everything. The most probable token is always kept.
    """
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        outside = probs.cumsum(-1) - probs >= top_p  # mass before this token already >= p
        logits = logits.masked_fill(outside.scatter(-1, order, outside), -math.inf)
    return logits


def sample_logits(
    logits: Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> Tensor:
    """One draw per row of ``softmax(filter(logits / temperature))``: ``(n, V) -> (n,)`` int64."""
    probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs.float(), 1, generator=generator).squeeze(-1)


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """Refuse sampling settings outside ``temperature > 0``, ``top_k >= 0``, ``0 < top_p <= 1``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use top_k=1 for greedy), got {temperature}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 keeps every token), got {top_k!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p}")


def levels_of(data: Tensor, what: str) -> int:
    """Number of categories in integer-valued ``data`` (``max + 1``, at least 2)."""
    if data.is_floating_point() and not torch.equal(data, data.round()):
        raise DataError(
            f"{what} models discrete data (integer levels or token ids), but the data hold "
            "non-integer values: use a discrete dataset such as digits-binary, digits or a text "
            "dataset (grammar, stdlib-chars), or a continuous model for continuous data"
        )
    if data.numel() and data.min() < 0:
        raise DataError(f"{what} needs non-negative integer levels; the data hold negative values")
    return max(2, int(data.max()) + 1)


class DiscreteModel(GenerativeModel):
    """Base of the exact discrete models: ``levels`` categories for each of ``D`` scalars.

    Subclasses give ``log_prob_terms(x) -> (n, D)``, the log probability of each scalar given
    what precedes it; ``log_prob`` sums them and ``loss`` is their mean (cross-entropy in nats
    per scalar, so its scale does not depend on the length of the example).
    """

    density = "exact"
    data_kind = "discrete"
    data_fixed = ("data_shape", "levels")

    def __init__(self, data_shape: Sequence[int], levels: int) -> None:
        super().__init__(data_shape)
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be an integer >= 2 (categories a scalar), got {levels}")
        self.levels = levels

    @classmethod
    def config_from_data(cls, data: Tensor) -> dict[str, Any]:
        """``data_shape`` and ``levels`` (largest value + 1: pass ``levels=`` when the training
        split may miss the largest category, e.g. the dataset's ``DatasetInfo.levels``)."""
        return {"data_shape": list(data.shape[1:]), "levels": levels_of(data, cls.__name__)}

    def check_input(self, x: Tensor) -> Tensor:
        """Shape ``(n, *data_shape)`` and integer values ``0..levels-1``; returns int64."""
        check_shape(x, self.data_shape)
        if torch.compiler.is_compiling():  # reads of the values break the graph: a compiling
            return x.to(device=self.device, dtype=torch.long)  # Trainer checks its data itself
        if x.is_floating_point() and not torch.equal(x, x.round()):
            raise DataError(f"{self.name} scores integer levels; got non-integer values")
        if x.numel() and (x.min() < 0 or x.max() >= self.levels):
            raise DataError(
                f"{self.name} was built for values 0..{self.levels - 1}; got values in "
                f"[{int(x.min())}, {int(x.max())}]: rebuild it with levels=... large enough"
            )
        return x.to(device=self.device, dtype=torch.long)

    def log_prob_terms(self, x: Tensor) -> Tensor:
        """``log P(x_i | x_<i)`` for every scalar, ``(n, *data_shape) -> (n, D)``, nats."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log P(x)`` per example in nats, ``(n, *data_shape) -> (n,)``."""
        return self.log_prob_terms(x).sum(-1).to(self.dtype)

    def loss(self, batch: Tensor | None, player: str = "model") -> dict[str, Tensor]:
        """Cross-entropy per scalar, ``-1/D sum_i log P(x_i | x_<i)`` (maximum likelihood)."""
        ce = -self.log_prob_terms(batch).mean()
        return {"cross_entropy": ce, "diag/bits_per_dim": ce.detach() / math.log(2)}

    def bits_per_dim(self, x: Tensor) -> float:
        """Mean bits per scalar (bits per character for text, per pixel for images)."""
        with torch.no_grad():
            return bits_per_token(self.log_prob(x), self.data_dim)


def gather_log_softmax(logits: Tensor, x: Tensor) -> Tensor:
    """``log softmax(logits)[x]``: ``(n, D, V)`` logits, ``(n, D)`` ids -> ``(n, D)``."""
    return logits.log_softmax(-1).gather(-1, x.unsqueeze(-1)).squeeze(-1)


class RasterModel(DiscreteModel):
    """Base of the models whose one network pass gives every conditional (``made``,
    ``pixelcnn``): sampling fills the ``D`` scalars in raster order, one pass each.

    Subclasses give ``_logits(x)``: integer levels ``(n, *data_shape)`` -> the logits of
    every conditional ``(n, D, levels)``, the ``d``-th depending on scalars ``< d`` only. A
    subclass may also give ``_conditional(x)``, the sampler's ``d -> (n, levels)`` logits of
    scalar ``d`` given the scalars of ``x`` before it, with less work than a whole pass.

    Arguments:
        data_shape: shape of one example.
        levels: categories per scalar.
        temperature: default sampling temperature.
    """

    def __init__(self, data_shape: Sequence[int], levels: int, temperature: float = 1.0) -> None:
        super().__init__(data_shape, levels)
        check_sampling(temperature, 0, 1.0)
        self.temperature = float(temperature)

    def _logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _inputs(self, x: Tensor) -> Tensor:
        """Levels as the network reads them, centred in ``[-0.5, 0.5]``: ``x / (levels - 1)
        - 0.5``."""
        return x.to(self.dtype) / (self.levels - 1) - 0.5

    def _conditional(self, x: Tensor) -> Callable[[int], Tensor]:
        """``d -> `` the logits ``(n, levels)`` of scalar ``d`` given the scalars ``< d`` of
        ``x``, which the sampler fills in raster order between calls (d = 0, 1, ...): here a
        whole pass for each."""
        return lambda d: self._logits(x)[:, d]

    def log_prob_terms(self, x: Tensor) -> Tensor:
        x = self.check_input(x)
        return gather_log_softmax(self._logits(x), x.flatten(1))

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float | None = None
    ) -> Tensor:
        """``(n, *data_shape)`` levels (as floats), at ``temperature`` (the model's if None)."""
        temperature = self.temperature if temperature is None else temperature
        check_sampling(temperature, 0, 1.0)
        x = torch.zeros(n, *self.data_shape, dtype=torch.long, device=self.device)
        flat, conditional = x.view(n, self.data_dim), self._conditional(x)
        for d in range(self.data_dim):  # scalar d needs the scalars before it: one at a time
            flat[:, d] = sample_logits(conditional(d), generator, temperature)
        return x.to(self.dtype)
