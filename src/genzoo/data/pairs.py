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
