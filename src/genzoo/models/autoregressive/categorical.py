"""The categorical distribution, fitted by cross-entropy: the simplest exact model.

``Q(Y)`` over a finite set is a table of probabilities ``softmax(theta)``; minimising the
cross-entropy ``-E_data log Q(y)`` (the survey's first section) gives the empirical frequencies.
``Q(Y | X)`` replaces the table by a network of ``x``: a classifier is a conditional generative
model of its label. ``x`` is a class, a vector of numbers or a text (token ids, read as the
mean of their embeddings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genzoo.errors import DataError
from genzoo.models.autoregressive.common import (
    DiscreteModel,
    check_sampling,
    gather_log_softmax,
    sample_logits,
)
from genzoo.models.base import model_fact
from genzoo.models.conditioning import PAD_ID, Context, TokenBag, check_token_input
from genzoo.models.nn import MLP
from genzoo.registry import register_model

#: Largest table a joint categorical may hold (levels ** D entries).
MAX_JOINT = 2**20


@register_model("categorical", family="autoregressive")
class Categorical(DiscreteModel):
    """Categorical distribution over discrete data, fitted by cross-entropy (the baseline).

    With ``joint=True`` one table over all ``levels ** D`` values of an example (exact and fully
    general, for small ``D``); otherwise independent categoricals, one per scalar,
    ``Q(x) = prod_i softmax(theta_i)[x_i]``. Loss: ``-1/D log Q(x)``.

    Conditional (``n_classes`` or ``condition_dim``), it is the survey's ``Q(Y | X)``: the
    logits become a network of the condition, ``Q(x | c) = prod_i softmax(f_i(c))[x_i]`` (or
    one softmax over the joint table), fitted by the same cross-entropy ``-E log Q(x | c)``:
    a classifier of the label ``x`` given features ``c`` is a conditional generative model
    of its label (``hidden=[]``: multinomial logistic regression). Given a text
    (``condition_len``: an input of that many token ids, ``<pad>``-padded, kind
    ``"tokens"``), the network reads the mean of the input's token embeddings (a bag of
    words, :class:`genzoo.models.conditioning.TokenBag`): a fastText-style classifier
    (Joulin et al. 2017) as ``Q(Y | text)``.

    Arguments:
        data_shape: shape of one example, e.g. ``[1, 8, 8]``.
        levels: categories per scalar.
        joint: one table over whole examples instead of one per scalar.
        n_classes: condition on a class ``0..n_classes-1`` (one-hot into the network).
        condition_dim: condition on a vector of ``condition_dim`` numbers (standardised).
        condition_len: condition on an input of ``condition_len`` token ids (a text).
        condition_vocab: token ids of such an input, ``<pad>`` (0) included (read from the
            conditions by ``create``; from the dataset's tokenizer by ``genzoo train``).
        embed_dim: width of the input tokens' embeddings (a text condition only).
        hidden: widths of the hidden layers of the network of the condition (conditional
            models only).

    Example:
        >>> import torch, genzoo
        >>> y, x = torch.randint(0, 3, (100, 1)), torch.randn(100, 4)
        >>> q = genzoo.create("categorical", data=y, condition=x, hidden=[16])
        >>> q.log_prob(y[:2], c=x[:2]).shape, q.sample(5, c=x[0]).shape
        (torch.Size([2]), torch.Size([5, 1]))
    """

    condition_kinds = ("discrete", "continuous", "tokens")

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        joint: bool = False,
        n_classes: int = 0,
        condition_dim: int = 0,
        hidden: Sequence[int] = (64,),
        condition_len: int = 0,
        condition_vocab: int = 0,
        embed_dim: int = 16,
    ) -> None:
        super().__init__(data_shape, levels)
        if joint and levels**self.data_dim > MAX_JOINT:
            raise ValueError(
                f"a joint table over {levels}^{self.data_dim} values is too large (limit "
                f"{MAX_JOINT}); use joint=False or an autoregressive model (made, pixelcnn)"
            )
        self.joint = bool(joint)
        self.condition_len, self.condition_vocab = _token_config(
            condition_len, condition_vocab, embed_dim, n_classes or condition_dim
        )
        self.setup_condition(n_classes, condition_dim)
        shape = (levels**self.data_dim,) if joint else (self.data_dim, levels)
        self.table_shape = shape
        if self.condition_kind is None:
            self.logits = nn.Parameter(torch.zeros(shape))
        else:
            if self.condition_len:
                self.context: nn.Module = TokenBag(self.condition_vocab, int(embed_dim))
                features = int(embed_dim)
            else:
                self.context = Context(self.n_classes, self.condition_dim)
                features = self.context.features
            widths = [int(h) for h in hidden]
            self.net = MLP(features, math.prod(shape), widths, zero_last=True)
        powers = levels ** torch.arange(self.data_dim - 1, -1, -1) if joint else torch.ones(1)
        self.register_buffer("powers", powers.long(), persistent=False)

    @model_fact(None)
    def condition_kind(self) -> str | None:
        """``"discrete"``, ``"continuous"``, ``"tokens"`` (a text) or ``None``."""
        if self.condition_len:
            return "tokens"
        return "discrete" if self.n_classes else ("continuous" if self.condition_dim else None)

    def check_condition(self, c: Any, n: int | None = None) -> Tensor | None:
        """As :meth:`GenerativeModel.check_condition`; a text condition is ``(n,
        condition_len)`` (or one ``(condition_len,)``) token ids, each input holding at least
        one token that is not ``<pad>``."""
        if not self.condition_len:
            return super().check_condition(c, n)
        name = self.name or type(self).__name__
        t = check_token_input(name, c, n, self.condition_len, self.condition_vocab)
        empty = (t == PAD_ID).all(1)
        if bool(empty.any()):
            raise DataError(f"{name} is conditional on a text: input {int(empty.nonzero()[0])} "
                            "is empty (padding only); give at least one token")  # fmt: skip
        return t.to(self.device)

    def initialize(self, data: Tensor, c: Tensor | None = None) -> None:
        """A conditional model records the class frequencies (a class condition) or the
        standardisation of its vectors (a continuous one) from the training conditions."""
        c = self.check_condition(c, len(data))
        if c is not None and not self.condition_len:
            self.set_class_prior(c)
            self.context.arm()
            with torch.no_grad():
                self.context(c)

    def table(self, c: Tensor | None, n: int) -> Tensor:
        """The logits ``(n, *table_shape)`` of ``n`` examples given their checked conditions."""
        if self.condition_kind is None:
            return self.logits.expand(n, *self.table_shape)
        return self.net(self.context(c).to(self.dtype)).view(n, *self.table_shape)

    def log_prob_terms(self, x: Tensor, c: Any = None) -> Tensor:
        x = self.check_input(x).flatten(1)  # (n, D)
        logits = self.table(self.check_condition(c, len(x)), len(x))
        if self.joint:  # one term per example, the index of the whole configuration
            index = (x * self.powers).sum(-1, keepdim=True)
            return logits.log_softmax(-1).gather(-1, index)
        return gather_log_softmax(logits, x)

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Exact ``log Q(x)`` (``log Q(x | c)``) per example in nats: ``(n,)``."""
        return self.log_prob_terms(x, c).sum(-1).to(self.dtype)

    def loss(self, batch: Tensor | None, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        ce = -self.log_prob(batch, c=c).mean() / self.data_dim  # cross-entropy per scalar
        return {"cross_entropy": ce}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, c: Any = None) -> Tensor:
        logits = self.table(self.check_condition(c, n), n)
        if self.joint:
            index = sample_logits(logits, generator)
            x = index[:, None] // self.powers % self.levels
        else:
            flat = logits.reshape(n * self.data_dim, logits.shape[-1])
            x = sample_logits(flat, generator).view(n, self.data_dim)
        return x.view(n, *self.data_shape).to(self.dtype)


class ConditionalCategorical(nn.Module):
    """``Q(y | x) = softmax(f(x))[y]``, fitted by cross-entropy ``-E log Q(y | x)``.

    The bare network, outside the model protocol; the registered, trainable ``Q(Y | X)`` is
    ``categorical`` with a condition (``genzoo.create("categorical", data=y, condition=x)``).

    Arguments:
        in_features: size of ``x``.
        levels: number of values of ``y``.
        hidden: widths of the network's hidden layers (``()``: multinomial logistic regression).

    Example:
        >>> q = ConditionalCategorical(3, 4, hidden=(8,))
        >>> q.log_prob(torch.tensor([0, 3]), torch.randn(2, 3)).shape
        torch.Size([2])
    """

    def __init__(self, in_features: int, levels: int, hidden: Sequence[int] = (64,)) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.levels = levels
        self.net = MLP(in_features, levels, hidden)

    def logits(self, x: Tensor) -> Tensor:
        """``(n, in_features) -> (n, levels)``."""
        return self.net(x)

    def log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        """``log Q(y | x)`` in nats, ``(n,), (n, in_features) -> (n,)``."""
        return self.logits(x).log_softmax(-1).gather(-1, y.long()[:, None]).squeeze(-1)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy ``-log Q(y | x)``."""
        return -self.log_prob(y, x).mean()

    @torch.no_grad()
    def sample(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
    ) -> Tensor:
        """One ``y ~ Q(y | x)`` per row of ``x``: ``(n, in_features) -> (n,)`` int64."""
        check_sampling(temperature, top_k, top_p)
        return sample_logits(self.logits(x), generator, temperature, top_k, top_p)


def _token_config(length: int, vocab: int, embed_dim: int, other: int) -> tuple[int, int]:
    """``(condition_len, condition_vocab)`` of a text condition checked (both 0: none)."""
    for key, value, low in (("condition_len", length, 0), ("condition_vocab", vocab, 0),
                            ("embed_dim", embed_dim, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key} of categorical must be an integer >= {low}, got {value!r}")
    if length and other:
        raise ValueError("categorical takes one condition: a class (n_classes), a vector "
                         "(condition_dim) or a text (condition_len), not two")  # fmt: skip
    if length and vocab < 2:
        raise ValueError(f"a text condition (condition_len={length}) needs condition_vocab, "
                         f"the number of token ids (>= 2), got {vocab!r}")  # fmt: skip
    return length, vocab if length else 0
