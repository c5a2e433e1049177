"""Language models as a chain of conditionals, and the LSTM language model.

``P(w_1..w_L) = prod_i P(w_i | w_<i)``: a network reads ``<start>, w_1, ..., w_{L-1}`` and
predicts each next token. The start symbol is an extra input id (``levels``), never an output,
so the model is a normalised distribution over exactly the ``levels ** L`` sequences of the data.

Conditional on an input (``condition_len = M > 0``): ``P(y | x) = prod_i P(y_i | x, y_<i)``,
the survey's ``Q(Y | X)`` for text. The input ``x`` (``M`` ids of the same vocabulary, padded
with ``<pad>``) is a *conditioning prefix*: the network reads ``x_1..x_M, <start>, y_1, ...,
y_{L-1}`` (the start symbol doubles as the separator) and only the ``L`` output positions are
scored, so ``log_prob(y, c=x)`` is the exact conditional log-likelihood (nats) of the output
given the input, the input's own tokens are never predicted, and ``loss`` is the cross-entropy
of the outputs only. ``sample(n, c=x)`` draws outputs for the inputs ``x`` (``(n, M)``, or one
input ``(M,)`` for all ``n``). The condition kind is ``"tokens"``. With ``condition_len=0``
(the default) a model is the unconditional language model, unchanged.

References:
    Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997.
    Holtzman, Buys, Du, Forbes & Choi, "The curious case of neural text degeneration",
    ICLR 2020 (nucleus / top-p sampling).
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
from genzoo.models.conditioning import check_token_input
from genzoo.registry import register_model


class SequenceLM(DiscreteModel):
    """Base of the language models: data ``(n, seq_len)`` token ids, exact ``log_prob``.

    Subclasses give ``logits(tokens)`` (all next-token logits of a prefix that starts with the
    start id) and ``step(tokens, state)`` (the next-token logits after feeding ``tokens``).

    Arguments:
        data_shape: ``[seq_len]``.
        levels: vocabulary size.
        temperature, top_k, top_p: default sampling settings (see ``generate``).
        condition_len: ``M > 0`` makes the model ``P(output | input)`` given an input of ``M``
            token ids (the condition ``c``, read as a prefix; see the module docstring);
            0: unconditional.
    """

    data_kinds = ("text",)
    condition_kinds = ("tokens",)

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        condition_len: int = 0,
    ) -> None:
        super().__init__(data_shape, levels)
        if len(self.data_shape) != 1:
            raise ValueError(
                f"a language model takes token sequences shaped (n, seq_len); got examples "
                f"shaped {self.data_shape}: use made or pixelcnn for images"
            )
        check_sampling(temperature, top_k, top_p)
        self.seq_len = self.data_shape[0]
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)
        m = condition_len
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ValueError(
                f"condition_len must be 0 (no condition) or the number of input token ids, "
                f"got {condition_len!r}"
            )
        self.condition_len = condition_len

    @model_fact(None)
    def condition_kind(self) -> str | None:
        """``"tokens"`` (an input of ``condition_len`` ids) or ``None`` (unconditional)."""
        return "tokens" if self.condition_len else None

    def check_condition(self, c: Any, n: int | None = None) -> Tensor | None:
        """An input ``c`` checked: ``(n, condition_len)`` (or one ``(condition_len,)`` for all
        ``n``) integer ids in ``0..levels-1``, returned int64 on the model's device; ``None``
        for an unconditional model. Anything else is a one-line ``DataError``."""
        name = self.name or type(self).__name__
        m = self.condition_len
        if not m:
            if c is None:
                return None
            raise DataError(f"{name} was built without a condition (condition_len=0), so it "
                            "takes no c: build it with condition_len=M to model P(output | "
                            "input) given M input token ids")  # fmt: skip
        return check_token_input(name, c, n, m, self.levels).to(self.device)

    @property
    def start(self) -> int:
        """The id of the start symbol (an input only)."""
        return self.levels

    def logits(self, tokens: Tensor) -> Tensor:
        """Next-token logits at every position, ``(n, t)`` ids -> ``(n, t, levels)``."""
        raise NotImplementedError

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Feed ``(n, t)`` new ids after ``state``; the next logits ``(n, levels)`` and state."""
        raise NotImplementedError

    def log_prob_terms(self, x: Tensor, c: Any = None) -> Tensor:
        """``log P(w_i | w_<i)`` (given the input ``c``: ``log P(y_i | c, y_<i)``) for
        ``i = 1..L``: ``(n, L) -> (n, L)``, one network pass; the input is never scored."""
        x = self.check_input(x)
        c = self.check_condition(c, len(x))
        start = torch.full_like(x[:, :1], self.start)
        if c is None:
            return gather_log_softmax(self.logits(torch.cat([start, x[:, :-1]], 1)), x)
        logits = self.logits(torch.cat([c, start, x[:, :-1]], 1))[:, self.condition_len :]
        return gather_log_softmax(logits, x)

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Exact ``log P(x)`` (``log P(y | c)``: the output given the input) in nats, ``(n,)``."""
        return self.log_prob_terms(x, c).sum(-1).to(self.dtype)

    def loss(self, batch: Tensor | None, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        """Cross-entropy per (output) token, ``-1/L sum_i log P(w_i | [c,] w_<i)``."""
        ce = -self.log_prob_terms(batch, c).mean()
        return {"cross_entropy": ce, "diag/bits_per_dim": ce.detach() / math.log(2)}

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor | Sequence[int],
        length: int | None = None,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        c: Any = None,
    ) -> Tensor:
        """Continue ``prompt`` ids ``(n, p)`` (or one prompt ``(p,)``) up to ``length`` tokens.

        Returns ``(n, length)`` ids, the prompt first; ``length`` defaults to ``seq_len``.
        ``temperature``, ``top_k`` and ``top_p`` default to the model's settings. A conditional
        model generates the output for the input ``c`` (``(n, condition_len)`` ids, or one
        ``(condition_len,)`` for every row), the prompt being the output's first tokens.
        """
        temperature = self.temperature if temperature is None else temperature
        top_k = self.top_k if top_k is None else top_k
        top_p = self.top_p if top_p is None else top_p
        check_sampling(temperature, top_k, top_p)
        prompt = torch.as_tensor(prompt, dtype=torch.long, device=self.device)
        prompt = prompt[None] if prompt.ndim == 1 else prompt
        length = self.seq_len if length is None else int(length)
        if prompt.ndim != 2 or prompt.shape[1] > length:
            raise DataError(f"prompt must be (n, p) ids with p <= length={length}")
        if prompt.numel() and (prompt.min() < 0 or prompt.max() >= self.levels):
            raise DataError(f"prompt ids must lie in 0..{self.levels - 1}")
        c = self.check_condition(c, prompt.shape[0])
        start = torch.full((prompt.shape[0], 1), self.start, dtype=torch.long, device=self.device)
        first = [start, prompt] if c is None else [c, start, prompt]
        logits, state = self.step(torch.cat(first, 1), None)
        out = [prompt]
        for _ in range(length - prompt.shape[1]):
            token = sample_logits(logits, generator, temperature, top_k, top_p)[:, None]
            out.append(token)
            logits, state = self.step(token, state)
        return torch.cat(out, 1)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        c: Any = None,
    ) -> Tensor:
        """``(n, seq_len)`` token ids (outputs for the inputs ``c``, for a conditional model);
        with the defaults (``temperature=1``, no filtering) these are exact draws from the
        model's distribution."""
        empty = torch.zeros(n, 0, dtype=torch.long, device=self.device)
        return self.generate(empty, None, generator, temperature, top_k, top_p, c=c)


@register_model("lstm-lm", family="autoregressive")
class LSTMLM(SequenceLM):
    """LSTM language model (Hochreiter & Schmidhuber 1997) over characters or words.

    ``h_i = LSTM(embed(w_{i-1}), h_{i-1})``, ``P(w_i | w_<i) = softmax(W h_i)``; loss: the
    cross-entropy ``-1/L sum_i log P(w_i | w_<i)``.

    Arguments:
        data_shape: ``[seq_len]``.
        levels: vocabulary size (the dataset's ``DatasetInfo.levels``).
        embedding: size of the token embeddings.
        hidden: size of the LSTM state.
        n_layers: stacked LSTM layers.
        temperature, top_k, top_p: default sampling settings (see ``generate``), those of
            every language model (``SequenceLM``).
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        embedding: int = 64,
        hidden: int = 256,
        n_layers: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, levels, **kwargs)
        if min(embedding, hidden, n_layers) < 1:
            raise ValueError("embedding, hidden and n_layers must be positive integers")
        self.embed = nn.Embedding(levels + 1, embedding)  # + the start symbol
        self.lstm = nn.LSTM(embedding, hidden, n_layers, batch_first=True)
        self.head = nn.Linear(hidden, levels)

    def logits(self, tokens: Tensor) -> Tensor:
        h, _ = self.lstm(self.embed(tokens))  # (n, t, hidden)
        return self.head(h)

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        h, state = self.lstm(self.embed(tokens), state)
        return self.head(h[:, -1]), state
