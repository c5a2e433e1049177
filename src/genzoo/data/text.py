"""Text, offline: tokenizers, the standard-library corpus, a synthetic language, user files.

Every text dataset is a ``LongTensor`` of token ids shaped ``(n, seq_len)``; ``tokenizer_for``
gives the ``Tokenizer`` that turns ids back into text. Ids ``0..3`` are always the special
tokens ``<pad>``, ``<bos>``, ``<eos>`` and ``<unk>``.

- ``stdlib-chars`` / ``stdlib-words``: windows of the docstrings of a fixed, sorted list of
  standard-library modules (:data:`STDLIB_MODULES`: the module's docstring, then those of its
  public classes and functions, by name). The corpus is identical on every machine with the same
  Python version (about 220,000 characters on Python 3.11) and builds in about 0.2 s. The stream
  is cut 80/10/10 into train/val/test regions, then into non-overlapping windows.
- ``stdlib-sentences``: one sentence of that corpus per example (words, lower case), followed by
  ``<eos>`` and padded with ``<pad>``; sentences longer than ``seq_len - 1`` words are left out.
- ``grammar``: a synthetic language sampled from a finite-state grammar (a first-order Markov
  chain over 8 symbols, :data:`GRAMMAR`) whose entropy rate is known exactly:
  ``H = -sum_i pi_i sum_j P_ij log P_ij`` (Cover & Thomas, eq. 4.27). Each split is a fresh
  draw started from the stationary distribution.
- The user's own text file: ``load_text_file(path, ...)``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import re
import string
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genzoo.data._common import check_n, check_split, make_rng, split_sizes
from genzoo.errors import DataError, unknown_name

SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = 0, 1, 2, 3
LEVELS = ("char", "word")
#: The characters of ``stdlib-chars``: printable ASCII without tabs and form feeds (96).
ASCII_CHARS: tuple[str, ...] = tuple(
    string.ascii_letters + string.digits + string.punctuation + " \n"
)
_WORD = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]")


class Tokenizer:
    """Characters or words to ids and back; ids ``0..3`` are ``<pad> <bos> <eos> <unk>``.

    Arguments:
        tokens: the vocabulary without the specials (they are prepended).
        level: ``"char"`` or ``"word"`` (words: runs of letters, runs of digits, and single
            punctuation marks; ``decode`` joins words with spaces).
        lowercase: lower-case text before splitting it.

    Example:
        >>> tok = Tokenizer.fit("hello world", level="char")
        >>> tok.decode(tok.encode("hold"))
        'hold'
        >>> tok.encode("z")  # unknown character
        [3]
    """

    def __init__(self, tokens: Sequence[str], level: str = "char", lowercase: bool = False):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        tokens = [t for t in tokens if t not in SPECIALS]
        if len(set(tokens)) != len(tokens):
            raise ValueError("the vocabulary holds duplicate tokens")
        self.level, self.lowercase = level, bool(lowercase)
        self.tokens: tuple[str, ...] = SPECIALS + tuple(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def fit(
        cls,
        text: str | Iterable[str],
        level: str = "char",
        max_vocab: int | None = None,
        lowercase: bool = False,
    ) -> Tokenizer:
        """The ``max_vocab`` most frequent tokens of ``text`` (ties by order), plus specials."""
        if max_vocab is not None and max_vocab < 1:
            raise ValueError(f"max_vocab must be a positive integer or None, got {max_vocab}")
        probe = cls((), level, lowercase)
        texts = [text] if isinstance(text, str) else list(text)
        counts = Counter(t for chunk in texts for t in probe.split(chunk))
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        return cls(ranked[:max_vocab], level, lowercase)

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included."""
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        """``text`` as a list of token strings (before the vocabulary is applied)."""
        if self.lowercase:
            text = text.lower()
        return list(text) if self.level == "char" else _WORD.findall(text)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids of ``text``; tokens outside the vocabulary become ``<unk>`` (3)."""
        ids = [self.index.get(t, UNK) for t in self.split(text)]
        return [BOS] * bos + ids + [EOS] * eos

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_special: bool = True) -> str:
        """Text of a sequence of ids; stops at ``<eos>`` and drops ``<pad>`` and ``<bos>``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.flatten().tolist()
        words = []
        for i in ids:
            i = int(i)
            if i == EOS and skip_special:
                break
            if skip_special and i in (PAD, BOS):
                continue
            words.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIALS[UNK])
        return ("" if self.level == "char" else " ").join(words)

    def decode_batch(self, ids: torch.Tensor) -> list[str]:
        """``decode`` of every row of a ``(n, seq_len)`` tensor."""
        return [self.decode(row) for row in ids]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; ``Tokenizer.from_dict`` rebuilds it."""
        return {"tokens": list(self.tokens[len(SPECIALS) :]), "level": self.level,
                "lowercase": self.lowercase}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        return cls(d["tokens"], d["level"], d.get("lowercase", False))

    def __repr__(self) -> str:
        return f"Tokenizer(level={self.level!r}, vocab_size={self.vocab_size})"


# -- the standard-library corpus ----------------------------------------------------------------
#: Modules present on every CPython >= 3.10, sorted; their docstrings make the corpus.
STDLIB_MODULES: tuple[str, ...] = (
    "abc", "argparse", "base64", "bisect", "calendar", "collections", "contextlib", "copy",
    "csv", "dataclasses", "datetime", "decimal", "difflib", "enum", "fractions", "functools",
    "glob", "heapq", "html", "inspect", "ipaddress", "itertools", "json", "logging", "operator",
    "os", "pathlib", "pprint", "queue", "random", "re", "secrets", "shlex", "shutil",
    "statistics", "string", "tempfile", "textwrap", "threading", "typing", "unittest",
    "urllib.parse", "uuid", "warnings", "zipfile",
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def stdlib_corpus() -> str:
    """The docstrings of :data:`STDLIB_MODULES`, joined by blank lines (tabs become spaces)."""
    with warnings.catch_warnings():  # typing.io and typing.re warn when read
        warnings.simplefilter("ignore", DeprecationWarning)
        parts = _docstrings()
    return "\n\n".join(p for p in parts if p).replace("\t", "    ")


def _docstrings() -> list[str]:
    parts = []
    for name in STDLIB_MODULES:
        module = importlib.import_module(name)
        parts.append(inspect.getdoc(module) or "")
        for attr in sorted(dir(module)):
            obj = getattr(module, attr, None)
            if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", None) == name:
                parts.append(inspect.getdoc(obj) or "")
    return parts


def stdlib_sentences() -> list[str]:
    """The corpus cut into sentences (at ``.``, ``!``, ``?`` or a blank line), spaces normalised."""
    out = []
    for paragraph in re.split(r"\n\s*\n", stdlib_corpus()):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split())):
            if sentence:
                out.append(sentence)
    return out


# -- the synthetic language ---------------------------------------------------------------------
@dataclass(frozen=True)
class MarkovGrammar:
    """A finite-state grammar: symbol ``j`` follows symbol ``i`` with probability ``P[i, j]``.

    Sequences start from the stationary distribution ``pi`` (``pi P = pi``), so every position
    has marginal ``pi`` and the entropy of ``L`` symbols is ``H(pi) + (L - 1) H_rate`` exactly.
    """

    symbols: tuple[str, ...]
    transitions: tuple[tuple[float, ...], ...]

    @functools.cached_property
    def matrix(self) -> np.ndarray:
        p = np.asarray(self.transitions, dtype=np.float64)
        if p.shape != (len(self.symbols),) * 2 or not np.allclose(p.sum(1), 1.0):
            raise ValueError("transitions must be a square row-stochastic matrix")
        return p

    @functools.cached_property
    def stationary(self) -> np.ndarray:
        """``pi`` with ``pi P = pi``, ``sum pi = 1`` (solved as a linear system)."""
        k = len(self.symbols)
        a = np.vstack([self.matrix.T - np.eye(k), np.ones((1, k))])
        b = np.concatenate([np.zeros(k), [1.0]])
        return np.linalg.lstsq(a, b, rcond=None)[0]

    @property
    def entropy_rate(self) -> float:
        """``H = -sum_i pi_i sum_j P_ij log P_ij`` in nats per symbol."""
        p = self.matrix
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        return float(-(self.stationary * plogp.sum(1)).sum())

    def sequence_entropy(self, length: int) -> float:
        """Entropy of ``length`` consecutive symbols in nats: ``H(pi) + (length - 1) H``."""
        pi = self.stationary
        return float(-(pi * np.log(pi)).sum()) + (length - 1) * self.entropy_rate

    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, length)`` symbol indices, by inverse-CDF sampling of each transition."""
        cdf = np.cumsum(self.matrix, axis=1)
        x = np.empty((n, length), dtype=np.int64)
        x[:, 0] = np.searchsorted(np.cumsum(self.stationary), rng.random(n) * (1 - 1e-12))
        for t in range(1, length):
            u = rng.random(n)[:, None]
            x[:, t] = (u > cdf[x[:, t - 1]]).sum(1)
        return np.minimum(x, len(self.symbols) - 1)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log probability (nats) of ``(n, length)`` symbol-index sequences."""
        with np.errstate(divide="ignore"):
            logp = np.log(self.matrix)
            start = np.log(self.stationary)
        return start[x[:, 0]] + logp[x[:, :-1], x[:, 1:]].sum(1)


#: Consonant-vowel words separated by spaces; entropy rate 1.0617 nats (1.532 bits) a symbol.
GRAMMAR = MarkovGrammar(
    symbols=("a", "e", "o", "k", "l", "m", "t", " "),
    transitions=(
        # a    e     o    k    l    m    t    " "
        (0.0, 0.0, 0.0, 0.4, 0.3, 0.0, 0.0, 0.3),  # a
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.25, 0.25),  # e
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.6, 0.4),  # o
        (0.5, 0.3, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0),  # k
        (0.7, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # l
        (0.25, 0.25, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0),  # m
        (0.0, 0.6, 0.2, 0.0, 0.0, 0.0, 0.0, 0.2),  # t
        (0.1, 0.0, 0.1, 0.3, 0.2, 0.2, 0.1, 0.0),  # " "
    ),
)


def true_entropy_rate(name: str = "grammar") -> float:
    """Exact entropy rate of a synthetic text dataset, nats per token."""
    if name != "grammar":
        raise DataError(
            f"only the synthetic 'grammar' dataset has a known entropy rate, not {name!r}"
        )
    return GRAMMAR.entropy_rate


# -- datasets -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextSpec:
    """How a text dataset is made: source, tokenizer level, vocabulary and window length."""

    source: str  # stdlib | sentences | grammar
    level: str
    seq_len: int
    max_vocab: int | None
    description: str


TEXT_DATASETS: dict[str, TextSpec] = {
    "stdlib-chars": TextSpec(
        "stdlib", "char", 64, None,
        "standard-library docstrings, characters (96 ASCII + 4 specials), windows of 64",
    ),
    "stdlib-words": TextSpec(
        "stdlib", "word", 32, 1000,
        "standard-library docstrings, lower-case words (1000 + <unk>), windows of 32",
    ),
    "stdlib-sentences": TextSpec(
        "sentences", "word", 24, 1000,
        "standard-library docstring sentences, lower-case words (1000 + <unk>), <eos>, padded",
    ),
    "grammar": TextSpec(
        "grammar", "char", 32, None,
        "synthetic language of a finite-state grammar with exact entropy rate, length 32",
    ),
}  # fmt: skip


def text_vocab_size(name: str) -> int:
    """Vocabulary size (specials included) of a text dataset, without building its corpus."""
    spec = _spec(name)
    if spec.source == "grammar":
        return len(SPECIALS) + len(GRAMMAR.symbols)
    if spec.level == "char":
        return len(SPECIALS) + len(ASCII_CHARS)
    return len(SPECIALS) + spec.max_vocab


def _spec(name: str) -> TextSpec:
    if name not in TEXT_DATASETS:
        raise unknown_name("text dataset", str(name), TEXT_DATASETS)
    return TEXT_DATASETS[name]


@functools.cache
def tokenizer_for(name: str) -> Tokenizer:
    """The tokenizer of a text dataset, to ``decode`` its ids (and ``encode`` prompts)."""
    spec = _spec(name)
    if spec.source == "grammar":
        return Tokenizer(GRAMMAR.symbols, "char")
    if spec.level == "char":
        return Tokenizer(ASCII_CHARS, "char")
    tok = Tokenizer.fit(stdlib_corpus(), "word", spec.max_vocab, lowercase=True)
    if tok.vocab_size != text_vocab_size(name):
        raise DataError(f"the corpus of {name} holds fewer than {spec.max_vocab} distinct words")
    return tok


def windows(ids: Sequence[int] | np.ndarray, seq_len: int) -> np.ndarray:
    """Non-overlapping windows ``(len(ids) // seq_len, seq_len)`` of a token stream."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids) // seq_len
    return ids[: n * seq_len].reshape(n, seq_len)


def pad_sequences(seqs: Sequence[Sequence[int]], seq_len: int, eos: bool = True) -> np.ndarray:
    """``(n, seq_len)`` ids: each sequence, ``<eos>`` if asked, then ``<pad>``; longer ones cut."""
    out = np.full((len(seqs), seq_len), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        s = (list(s) + [EOS] * eos)[:seq_len]
        out[i, : len(s)] = s
    return out


def _stream_split(windowed: np.ndarray, split: str, seed: int, name: str) -> np.ndarray:
    """Contiguous 80/10/10 regions (no window shared by two splits), shuffled with ``seed``."""
    k = check_split(split)
    sizes = split_sizes(len(windowed), (0.8, 0.1, 0.1))
    part = windowed[sum(sizes[:k]) : sum(sizes[: k + 1])]
    if len(part) == 0:
        raise DataError(f"{name}: the text is too short for a {split!r} split of windows")
    return part[make_rng(seed, name, split).permutation(len(part))]


def load_text_dataset(
    name: str, split: str = "train", n: int | None = None, seed: int = 0
) -> torch.Tensor:
    """Token ids ``(n, seq_len)`` (int64) of a text dataset in :data:`TEXT_DATASETS`.

    ``grammar`` draws ``n`` fresh sequences per split (default 10,000); the corpus datasets keep
    the first ``n`` of the split's windows, shuffled with ``seed``.
    """
    spec = _spec(name)
    check_split(split)
    n = check_n(n)
    if spec.source == "grammar":
        symbols = GRAMMAR.sample(n or 10_000, spec.seq_len, make_rng(seed, name, split))
        return torch.from_numpy(symbols + len(SPECIALS))
    tok = tokenizer_for(name)
    if spec.source == "stdlib":
        x = _stream_split(windows(tok.encode(stdlib_corpus()), spec.seq_len), split, seed, name)
    else:
        sentences = [tok.encode(s) for s in stdlib_sentences()]
        kept = [s for s in sentences if 0 < len(s) < spec.seq_len]
        x = _stream_split(pad_sequences(kept, spec.seq_len), split, seed, name)
    return torch.from_numpy(np.ascontiguousarray(x[:n]))


def grammar_log_prob(x: torch.Tensor) -> torch.Tensor:
    """Exact log probability (nats, float64) of ``grammar`` sequences of token ids ``(n, L)``."""
    ids = x.detach().cpu().long().numpy() - len(SPECIALS)
    bad = (ids < 0) | (ids >= len(GRAMMAR.symbols))
    out = np.full(len(ids), -math.inf)
    ok = ~bad.any(1)
    if ok.any():
        out[ok] = GRAMMAR.log_prob(ids[ok])
    return torch.from_numpy(out)


def load_text_file(
    path: str | Path,
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    level: str = "char",
    seq_len: int = 64,
    max_vocab: int | None = None,
    lowercase: bool = False,
) -> tuple[torch.Tensor, Tokenizer]:
    """The user's UTF-8 text file as ``(n, seq_len)`` windows of ids, and its tokenizer.

    The tokenizer is fitted on the whole file (the ``max_vocab`` most frequent tokens), so all
    splits share it; the stream is cut 80/10/10 into train/val/test regions.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such text file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err})") from err
    if seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len}")
    tok = Tokenizer.fit(text, level, max_vocab, lowercase)
    windowed = windows(tok.encode(text), seq_len)
    if len(windowed) < 10:
        raise DataError(
            f"{path} gives {len(windowed)} windows of {seq_len} {level}s; give a longer text "
            "(at least 10 windows) or a smaller seq_len"
        )
    x = _stream_split(windowed, split, seed, "file")
    return torch.from_numpy(np.ascontiguousarray(x[: check_n(n)])), tok
