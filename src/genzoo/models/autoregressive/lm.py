"""Language models as a chain of conditionals, and the LSTM language model.

``P(w_1..w_L) = prod_i P(w_i | w_<i)``: a network reads ``<start>, w_1, ..., w_{L-1}`` and
predicts each next token. The start symbol is an extra input id (``levels``), never an output,
so the model is a normalised distribution over exactly the ``levels ** L`` sequences of the data.

References:
    Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997.
    Holtzman, Buys, Du, Forbes & Choi, "The curious case of neural text degeneration",
    ICLR 2020 (nucleus / top-p sampling).
"""

from __future__ import annotations

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
from genzoo.registry import register_model


class SequenceLM(DiscreteModel):
    """Base of the language models: data ``(n, seq_len)`` token ids, exact ``log_prob``.

    Subclasses give ``logits(tokens)`` (all next-token logits of a prefix that starts with the
    start id) and ``step(tokens, state)`` (the next-token logits after feeding ``tokens``).

    Arguments:
        data_shape: ``[seq_len]``.
        levels: vocabulary size.
        temperature, top_k, top_p: default sampling settings (see ``generate``).
    """

    data_kinds = ("text",)

    def __init__(
        self,
        data_shape: Sequence[int],
        levels: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
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

    def log_prob_terms(self, x: Tensor) -> Tensor:
        """``log P(w_i | w_<i)`` for ``i = 1..L``: ``(n, L) -> (n, L)``, one network pass."""
        x = self.check_input(x)
        start = torch.full_like(x[:, :1], self.start)
        return gather_log_softmax(self.logits(torch.cat([start, x[:, :-1]], 1)), x)

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor | Sequence[int],
        length: int | None = None,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> Tensor:
        """Continue ``prompt`` ids ``(n, p)`` (or one prompt ``(p,)``) up to ``length`` tokens.

        Returns ``(n, length)`` ids, the prompt first; ``length`` defaults to ``seq_len``.
        ``temperature``, ``top_k`` and ``top_p`` default to the model's settings.
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
        start = torch.full((prompt.shape[0], 1), self.start, dtype=torch.long, device=self.device)
        logits, state = self.step(torch.cat([start, prompt], 1), None)
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
    ) -> Tensor:
        """``(n, seq_len)`` token ids; with the defaults (``temperature=1``, no filtering) these
        are exact draws from the model's distribution."""
        empty = torch.zeros(n, 0, dtype=torch.long, device=self.device)
        return self.generate(empty, None, generator, temperature, top_k, top_p)


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
