"""Paired text, input -> output, for language models of ``P(output | input)``.

Each example is an input of ``M`` token ids (the condition ``c``, padded with ``<pad>``) and an
output of ``L`` ids (its tokens, ``<eos>``, then ``<pad>``), in the id layout of
:mod:`genzoo.data.text` (ids ``0..3`` are the special tokens). A language model built with
``condition_len=M`` learns ``P(output | input)`` on them (``lstm-lm``, ``transformer-lm``).

- :func:`synthetic_pairs`: the survey's "generate different y's for a given input X" with a
  known ``P(Y | X)``: the input is a word of 3 to 5 letters over ``a..f``; the output is the
  word reversed with probability :data:`P_REVERSE` (0.75), the word itself otherwise. The exact
  ``log P(y | x)`` is :func:`synthetic_pairs_log_prob`, so a learned model can be checked by KL.
- :func:`stdlib_pairs`: a docstring's first line (characters) -> the name of its module, for
  the public classes and functions of :data:`genzoo.data.text.STDLIB_MODULES`.
- :func:`sentiment_text`: the survey's tweet -> sentiment with a known ``P(Y | X)``, the
  input a text: a label (0 negative, 1 neutral, 2 positive) given a "tweet" of 3 to 8 words;
  ``P(Y | X) = softmax(mean of the words' scores)`` (:func:`sentiment_text_probs`), so a
  learned ``Q(Y | X)`` of the label given the text is checked by exact KL.
"""

from __future__ import annotations

import importlib
import inspect
import math
import warnings

import numpy as np
import torch

from genzoo.data._common import check_split, make_rng, split_sizes
from genzoo.data.text import ASCII_CHARS, EOS, PAD, SPECIALS, STDLIB_MODULES, Tokenizer
from genzoo.errors import DataError

#: The letters of the synthetic pairs, ids ``4..9``.
PAIR_SYMBOLS: tuple[str, ...] = ("a", "b", "c", "d", "e", "f")
#: Probability that the output of a synthetic pair is its input reversed (else a copy).
P_REVERSE = 0.75
#: Input length (letters, padded) and output length (letters, ``<eos>``, padded).
PAIR_INPUT_LEN, PAIR_OUTPUT_LEN = 5, 6
#: Lengths of the characters kept of a docstring's first line, and of a module name + <eos>.
STDLIB_INPUT_LEN, STDLIB_OUTPUT_LEN = 48, 16


def pairs_tokenizer() -> Tokenizer:
    """The tokenizer of :func:`synthetic_pairs` (vocabulary 10: 4 specials + 6 letters)."""
    return Tokenizer(PAIR_SYMBOLS, "char")


def _pad(rows: list[list[int]], length: int, eos: bool) -> np.ndarray:
    out = np.full((len(rows), length), PAD, dtype=np.int64)
    for i, row in enumerate(rows):
        row = (row + [EOS] * eos)[:length]
        out[i, : len(row)] = row
    return out


def synthetic_pairs(
    split: str = "train", n: int = 2000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, x)``: outputs ``(n, 6)`` and inputs ``(n, 5)``, int64 ids (fresh draws per split).

    ``x`` is a word of 3..5 letters (uniform length, uniform letters); ``y`` is ``x`` reversed
    with probability ``P_REVERSE``, ``x`` itself otherwise, then ``<eos>``.
    """
    check_split(split)
    rng = make_rng(seed, "synthetic-pairs", split)
    lengths = rng.integers(3, PAIR_INPUT_LEN + 1, n)
    reverse = rng.random(n) < P_REVERSE
    inputs, outputs = [], []
    for length, flip in zip(lengths, reverse, strict=True):
        word = (rng.integers(0, len(PAIR_SYMBOLS), length) + len(SPECIALS)).tolist()
        inputs.append(word)
        outputs.append(word[::-1] if flip else word)
    x = _pad(inputs, PAIR_INPUT_LEN, eos=False)
    y = _pad(outputs, PAIR_OUTPUT_LEN, eos=True)
    return torch.from_numpy(y), torch.from_numpy(x)


def synthetic_pairs_log_prob(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The exact ``log P(y | x)`` (nats, float64) of outputs ``y`` ``(n, 6)`` given inputs
    ``x`` ``(n, 5)``: ``log 0.75`` for the reversal, ``log 0.25`` for the copy, ``0`` for a
    palindrome (both), ``-inf`` for anything else."""
    out = torch.full((len(y),), -math.inf, dtype=torch.float64)
    for i, (yi, xi) in enumerate(zip(y.tolist(), x.tolist(), strict=True)):
        word = [t for t in xi if t != PAD]
        p = 0.0
        if yi == _pad([word[::-1]], PAIR_OUTPUT_LEN, True)[0].tolist():
            p += P_REVERSE
        if yi == _pad([word], PAIR_OUTPUT_LEN, True)[0].tolist():
            p += 1 - P_REVERSE
        if p:
            out[i] = math.log(p)
    return out


def reverse_and_copy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two possible outputs ``(n, 6)`` of inputs ``x`` ``(n, 5)``: reversed, copied."""
    words = [[t for t in row if t != PAD] for row in x.tolist()]
    rev = _pad([w[::-1] for w in words], PAIR_OUTPUT_LEN, eos=True)
    copy = _pad(words, PAIR_OUTPUT_LEN, eos=True)
    return torch.from_numpy(rev), torch.from_numpy(copy)


def stdlib_pairs_all() -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Every (first docstring line -> module) pair, in a fixed order: outputs ``(N, 16)``
    (the module name's characters, ``<eos>``), inputs ``(N, 48)`` (the line's first 48
    characters), and the module names; ids of :data:`genzoo.data.text.ASCII_CHARS`."""
    tok = Tokenizer(ASCII_CHARS, "char")
    inputs, outputs, names = [], [], []
    with warnings.catch_warnings():  # typing.io and typing.re warn when read
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in STDLIB_MODULES:
            module = importlib.import_module(name)
            for attr in sorted(dir(module)):
                obj = getattr(module, attr, None)
                if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                    continue
                if getattr(obj, "__module__", None) != name:
                    continue
                doc = (inspect.getdoc(obj) or "").strip()
                line = doc.splitlines()[0].replace("\t", " ") if doc else ""
                if not line:
                    continue
                inputs.append(tok.encode(line)[:STDLIB_INPUT_LEN])
                outputs.append(tok.encode(name))
                names.append(name)
    x = _pad(inputs, STDLIB_INPUT_LEN, eos=False)
    y = _pad(outputs, STDLIB_OUTPUT_LEN, eos=True)
    return torch.from_numpy(y), torch.from_numpy(x), tuple(names)


def stdlib_pairs(split: str = "train", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, x)`` of one split (80/10/10 of the shuffled pairs, shuffled with ``seed``):
    module names ``(n, 16)`` given first docstring lines ``(n, 48)``, character ids."""
    k = check_split(split)
    y, x, _ = stdlib_pairs_all()
    order = make_rng(0, "stdlib-pairs-order").permutation(len(y))
    sizes = split_sizes(len(y), (0.8, 0.1, 0.1))
    part = order[sum(sizes[:k]) : sum(sizes[: k + 1])]
    if len(part) == 0:
        raise DataError(f"stdlib-pairs: too few pairs for a {split!r} split")
    part = part[make_rng(seed, "stdlib-pairs", split).permutation(len(part))]
    return y[part], x[part]


#: The words of :func:`sentiment_text` and their scores, the logits (negative, neutral,
#: positive) each adds to the mean that ``P(Y | X)`` is the softmax of.
SENTIMENT_WORDS: dict[str, tuple[float, float, float]] = {
    "good": (-2.0, 0.0, 3.0),
    "great": (-3.0, -1.0, 4.0),
    "love": (-3.0, -1.0, 4.5),
    "fun": (-1.0, 0.0, 2.5),
    "bad": (3.0, 0.0, -2.0),
    "awful": (4.0, -1.0, -3.0),
    "hate": (4.5, -1.0, -3.0),
    "boring": (2.5, 0.5, -1.0),
    "okay": (0.0, 2.5, 0.0),
    "fine": (-0.5, 2.0, 0.5),
    "the": (0.0, 0.5, 0.0),
    "movie": (0.0, 0.5, 0.0),
    "food": (0.0, 0.5, 0.0),
    "was": (0.0, 0.5, 0.0),
    "very": (0.0, 0.0, 0.0),
    "today": (0.0, 0.5, 0.0),
}
#: Labels of :func:`sentiment_text`, and the length of its inputs (words, padded).
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
SENTIMENT_INPUT_LEN = 8


def sentiment_tokenizer() -> Tokenizer:
    """The tokenizer of :func:`sentiment_text`'s inputs (words, lower-cased; vocabulary 20:
    4 specials + 16 words)."""
    return Tokenizer(tuple(SENTIMENT_WORDS), "word", lowercase=True)


def sentiment_text_probs(x: torch.Tensor) -> torch.Tensor:
    """The exact ``P(Y = k | X = x)`` of :func:`sentiment_text` for inputs ``x`` ``(n, 8)``
    (word ids, ``<pad>``-padded): the softmax of the mean score of the input's words,
    ``(n, 3)`` float64 (specials add nothing)."""
    scores = torch.zeros(len(SPECIALS) + len(SENTIMENT_WORDS), len(SENTIMENT_LABELS))
    scores = scores.double()
    scores[len(SPECIALS) :] = torch.tensor(list(SENTIMENT_WORDS.values()), dtype=torch.float64)
    ids = torch.as_tensor(x).long().cpu()
    words = (ids >= len(SPECIALS)).double()
    total = (scores[ids] * words[..., None]).sum(1)
    return (total / words.sum(1, keepdim=True).clamp(min=1)).softmax(-1)


def sentiment_text(
    split: str = "train", n: int = 10_000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, x)``: labels ``(n, 1)`` (torch's default dtype, values 0..2) and inputs
    ``(n, 8)`` int64 word ids, fresh draws per split: ``x`` is 3..8 words drawn uniformly
    from :data:`SENTIMENT_WORDS`, ``y ~ P(Y | x)`` (:func:`sentiment_text_probs`)."""
    check_split(split)
    rng = make_rng(seed, "sentiment-text", split)
    lengths = rng.integers(3, SENTIMENT_INPUT_LEN + 1, n)
    words = [(rng.integers(0, len(SENTIMENT_WORDS), k) + len(SPECIALS)).tolist() for k in lengths]
    x = torch.from_numpy(_pad(words, SENTIMENT_INPUT_LEN, eos=False))
    probs = sentiment_text_probs(x).numpy()
    below = rng.uniform(size=(n, 1)) > probs.cumsum(1)  # inverse-CDF draw
    labels = np.minimum(below.sum(1), len(SENTIMENT_LABELS) - 1)
    return torch.as_tensor(labels[:, None], dtype=torch.get_default_dtype()), x
