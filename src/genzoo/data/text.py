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
- The user's own UTF-8 text file, by path (with or without a ``.txt`` extension):
  ``genzoo.load_dataset(path, tokens="words")`` or ``open_text_file(path, ...)``; see
  :func:`open_text_file` for the data options (``tokens``, ``layout``, ``seq_len``,
  ``max_vocab``, ``lowercase``). ``load_text_file`` is the older, tuple-returning reader.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import math
import re
import string
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genzoo.data import files
from genzoo.data._common import check_n, check_split, make_rng, split_sizes
from genzoo.errors import DataError, unknown_name
from genzoo.io import RUN_INFO_FILE

SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = 0, 1, 2, 3
LEVELS = ("char", "word")
#: The characters of ``stdlib-chars``: printable ASCII without tabs and form feeds (96).
ASCII_CHARS: tuple[str, ...] = tuple(
    string.ascii_letters + string.digits + string.punctuation + " \n"
)
_WORD = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]")
#: Words of any script (user files): runs of letters, runs of digits, other single characters.
_UNICODE_WORD = re.compile(r"[^\W\d_]+|\d+|[^\s\w]|_")


class Tokenizer:
    """Characters or words to ids and back; ids ``0..3`` are ``<pad> <bos> <eos> <unk>``.

    Arguments:
        tokens: the vocabulary without the specials (they are prepended).
        level: ``"char"`` or ``"word"`` (words: runs of letters, runs of digits, and single
            punctuation marks; ``decode`` joins words with spaces).
        lowercase: lower-case text before splitting it.
        unicode_words: words are runs of letters of any script (``café`` is one word), not
            only of ``A-Za-z`` (the shipped datasets' rule, kept for them).

    Example:
        >>> tok = Tokenizer.fit("hello world", level="char")
        >>> tok.decode(tok.encode("hold"))
        'hold'
        >>> tok.encode("z")  # unknown character
        [3]
    """

    def __init__(
        self,
        tokens: Sequence[str],
        level: str = "char",
        lowercase: bool = False,
        unicode_words: bool = False,
    ):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        tokens = [t for t in tokens if t not in SPECIALS]
        if len(set(tokens)) != len(tokens):
            raise ValueError("the vocabulary holds duplicate tokens")
        self.level, self.lowercase = level, bool(lowercase)
        self.unicode_words = bool(unicode_words)
        self.tokens: tuple[str, ...] = SPECIALS + tuple(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def fit(
        cls,
        text: str | Iterable[str],
        level: str = "char",
        max_vocab: int | None = None,
        lowercase: bool = False,
        unicode_words: bool = False,
    ) -> Tokenizer:
        """The ``max_vocab`` most frequent tokens of ``text`` (ties by order), plus specials."""
        if max_vocab is not None and max_vocab < 1:
            raise ValueError(f"max_vocab must be a positive integer or None, got {max_vocab}")
        probe = cls((), level, lowercase, unicode_words)
        texts = [text] if isinstance(text, str) else list(text)
        counts = Counter(t for chunk in texts for t in probe.split(chunk))
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        return cls(ranked[:max_vocab], level, lowercase, unicode_words)

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included."""
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        """``text`` as a list of token strings (before the vocabulary is applied)."""
        if self.lowercase:
            text = text.lower()
        if self.level == "char":
            return list(text)
        return (_UNICODE_WORD if self.unicode_words else _WORD).findall(text)

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
        out = {"tokens": list(self.tokens[len(SPECIALS) :]), "level": self.level,
               "lowercase": self.lowercase}  # fmt: skip
        if self.unicode_words:
            out["unicode_words"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        """The tokenizer described by ``to_dict()``."""
        return cls(
            d["tokens"], d["level"], d.get("lowercase", False), d.get("unicode_words", False)
        )

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


#: The paired text sets of :mod:`genzoo.data.pairs` (outputs given inputs), decoded here too;
#: ``sentiment-text``'s outputs are labels, and its tokenizer is its inputs'.
PAIRED_TEXT_DATASETS: tuple[str, ...] = ("synthetic-pairs", "stdlib-pairs", "sentiment-text")


def _paired_tokenizer(name: str) -> Tokenizer:
    """The tokenizer of a paired text set's outputs and inputs (both use the same ids)."""
    from genzoo.data.pairs import pairs_tokenizer, sentiment_tokenizer  # pairs imports text

    if name == "sentiment-text":
        return sentiment_tokenizer()
    return pairs_tokenizer() if name == "synthetic-pairs" else Tokenizer(ASCII_CHARS, "char")


def text_vocab_size(name: str) -> int:
    """Vocabulary size (specials included) of a text dataset, without building its corpus."""
    if name in PAIRED_TEXT_DATASETS:
        return _paired_tokenizer(name).vocab_size
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


def tokenizer_for(name_or_path: str | Path, **options: Any) -> Tokenizer:
    """The tokenizer that ``decode``s a text dataset's ids (and ``encode``s prompts).

    ``name_or_path`` is one of:

    - a shipped text dataset (:data:`TEXT_DATASETS`, or a paired text set of
      :data:`PAIRED_TEXT_DATASETS`, whose inputs and outputs share the tokenizer);
    - the path of a user's text file, optionally ``PATH?key=value&...``: the tokenizer fitted
      to the file with the data ``options`` (default ``tokens="chars"``, as
      ``genzoo.load_dataset(path)`` uses; see :func:`open_text_file`);
    - a run folder written by ``genzoo train`` on text: the tokenizer recorded in its
      ``run.json`` (for a text file, its vocabulary as trained, whatever became of the file).
    """
    if isinstance(name_or_path, str) and name_or_path in TEXT_DATASETS:
        if options:
            raise DataError(
                f"{name_or_path} is a shipped dataset with a fixed tokenizer; the options "
                f"{', '.join(options)} apply to text files given by path"
            )
        return _shipped_tokenizer(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in PAIRED_TEXT_DATASETS:
        if options:
            raise DataError(f"{name_or_path} is a shipped dataset with a fixed tokenizer")
        return _paired_tokenizer(name_or_path)
    path = Path(name_or_path)
    if path.is_dir():
        return _run_tokenizer(path)
    if files.is_user_file(name_or_path, TEXT_DATASETS):
        return open_text_file(name_or_path, **options).tokenizer
    raise unknown_name("text dataset", str(name_or_path), TEXT_DATASETS)


def _run_tokenizer(run: Path) -> Tokenizer:
    """The tokenizer recorded in a run folder, or that of the text dataset it names."""
    info_file = run / RUN_INFO_FILE
    if not info_file.is_file():
        raise DataError(f"{run} is a folder without {RUN_INFO_FILE}: give a run folder written "
                        "by genzoo train, a text dataset's name or a text file")  # fmt: skip
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{info_file} is not valid JSON ({err}); the file is corrupt") from err
    if isinstance(info.get("tokenizer"), dict):
        return Tokenizer.from_dict(info["tokenizer"])
    dataset = info.get("dataset")
    if isinstance(dataset, str) and (
        dataset in TEXT_DATASETS
        or dataset in PAIRED_TEXT_DATASETS
        or files.is_user_file(dataset, TEXT_DATASETS)
    ):
        return tokenizer_for(dataset)
    raise DataError(f"{run} was not trained on text (its dataset is {dataset!r}), so it has "
                    "no tokenizer")  # fmt: skip


@functools.cache
def _shipped_tokenizer(name: str) -> Tokenizer:
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
    text = files.read_text_file(path)
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


# -- the user's text files ----------------------------------------------------------------------
#: Data options of a text file; ``genzoo train`` takes them out of the model's ``--set`` values.
TEXT_FILE_OPTIONS: tuple[str, ...] = (
    "tokens", "layout", "seq_len", "max_vocab", "lowercase", "vocab",
)  # fmt: skip
TOKEN_LEVELS = {"chars": "char", "words": "word"}
LAYOUTS = ("windows", "lines")
#: ``seq_len`` of ``layout="windows"`` when none is given.
DEFAULT_WINDOW = {"chars": 64, "words": 32}
#: The longest default ``seq_len`` of ``layout="lines"`` (the longest line + 1 up to this).
MAX_DEFAULT_LINE = {"chars": 256, "words": 64}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def vocab_fingerprint(tokenizer: Tokenizer) -> str:
    """12 hex digits identifying a tokenizer's vocabulary (a hash of ``to_dict()``)."""
    blob = json.dumps(tokenizer.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def _positive(key: str, value: Any, allow_none: bool) -> int | None:
    if allow_none and (value is None or str(value).lower() in ("none", "null", "")):
        return None
    least = 2 if key == "seq_len" else 1  # a window or a line needs 2 tokens to be learnt
    try:
        number = None if isinstance(value, (bool, float)) else int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < least:
        raise DataError(f"{key} must be an integer >= {least}, got {value!r}")
    return number


def text_file_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The data options of a text file checked and typed (strings such as ``"32"`` or
    ``"true"`` from a ``PATH?key=value`` name become numbers and booleans); unknown keys and
    bad values raise ``DataError``. Missing options are left out (defaults apply later)."""
    unknown = sorted(set(options) - set(TEXT_FILE_OPTIONS))
    if unknown:
        raise DataError(
            f"unknown text file option {', '.join(map(repr, unknown))}; text files take "
            f"{', '.join(TEXT_FILE_OPTIONS)}"
        )
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key == "tokens":
            value = {"char": "chars", "word": "words"}.get(value, value)
            if value not in TOKEN_LEVELS:
                raise DataError(f"tokens must be 'chars' or 'words', got {value!r}")
        elif key == "layout":
            if value not in LAYOUTS:
                raise DataError(f"layout must be 'windows' or 'lines', got {value!r}")
        elif key in ("seq_len", "max_vocab"):
            value = _positive(key, value, allow_none=True)
        elif key == "lowercase":
            if not isinstance(value, bool):
                word = str(value).lower()
                if word not in _TRUE + _FALSE:
                    raise DataError(f"lowercase must be true or false, got {value!r}")
                value = word in _TRUE
        elif key == "vocab" and not isinstance(value, str):
            raise DataError(f"vocab must be a vocabulary fingerprint string, got {value!r}")
        out[key] = value
    return out


@dataclass(frozen=True)
class TextFile:
    """A user's text file cut into examples, with the tokenizer and options that made them.

    ``examples`` holds every example ``(m, seq_len)`` (int64, read only) before the split;
    ``options`` and ``spec`` (``PATH?options``) rebuild exactly these examples, the
    vocabulary's fingerprint included; ``split(split, seed)`` gives one split.
    """

    path: Path
    tokens: str
    layout: str
    seq_len: int
    max_vocab: int | None
    lowercase: bool
    tokenizer: Tokenizer
    examples: np.ndarray
    n_chars: int
    n_lines: int
    dropped: int

    @property
    def options(self) -> dict[str, Any]:
        """The resolved data options, JSON-ready, with the vocabulary's fingerprint."""
        out: dict[str, Any] = {"tokens": self.tokens, "layout": self.layout,
                               "seq_len": self.seq_len}  # fmt: skip
        if self.max_vocab is not None:
            out["max_vocab"] = self.max_vocab
        if self.lowercase:
            out["lowercase"] = True
        out["vocab"] = vocab_fingerprint(self.tokenizer)
        return out

    @property
    def spec(self) -> str:
        """``PATH?tokens=...&layout=...&seq_len=...&vocab=...``: a dataset name that
        ``genzoo.load_dataset`` and ``dataset_info`` read back into these examples."""
        query = "&".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                         for k, v in self.options.items())  # fmt: skip
        return f"{self.path}?{query}"

    def record(self) -> dict[str, Any]:
        """What a run folder keeps so that sampling needs no text file: the file's path, the
        options, the tokenizer (its whole vocabulary)."""
        return {"data_file": str(self.path), "data_options": self.options,
                "tokenizer": self.tokenizer.to_dict()}  # fmt: skip

    def split(self, split: str, seed: int = 0) -> np.ndarray:
        """The examples of ``split``. ``layout="lines"``: 80/10/10 by a permutation seeded
        with ``seed``, as for array files. ``layout="windows"``: the stream's first 80%, next
        10% and last 10% (neighbouring windows share their text, so a random split would
        leak it into the test split), each shuffled with ``seed``."""
        if self.layout == "lines":
            return files.split_rows(self.examples, split, seed, self.path)
        return _stream_split(self.examples, split, seed, "file")

    def describe(self) -> str:
        """One line for ``DatasetInfo.description``."""
        level = self.tokens + (", lower-cased" if self.lowercase else "")
        if self.layout == "windows":
            made = f"{len(self.examples)} windows of {self.seq_len} {self.tokens}"
        else:
            made = (f"{len(self.examples)} lines of up to {self.seq_len - 1} {self.tokens} + "
                    "<eos>, padded")  # fmt: skip
            if self.dropped:
                made += f" ({self.dropped} longer lines left out)"
        split = "seeded 80/10/10 split" if self.layout == "lines" else "80/10/10 regions"
        return (f"text file {self.path}: {self.n_chars} characters, vocabulary "
                f"{self.tokenizer.vocab_size} ({level} + 4 specials), {made}; {split}")  # fmt: skip


def open_text_file(
    path_or_spec: str | Path, layout_default: str = "windows", **options: Any
) -> TextFile:
    """The user's UTF-8 text file cut into examples of token ids (cached in memory by the
    file's path, size and modification time, so an edited file is read again).

    Data options (``options``, or ``PATH?key=value&...`` in ``path_or_spec``; the keywords win):

    - ``tokens``: ``"chars"`` (default) or ``"words"`` (runs of letters of any script, runs of
      digits, single punctuation marks; decoded text joins them with spaces).
    - ``layout``: ``"windows"`` (``layout_default``): the whole text as one token stream cut
      into non-overlapping windows of ``seq_len`` tokens, for language models; ``"lines"``: one
      non-blank line (whitespace stripped) per example, its tokens then ``<eos>`` then
      ``<pad>`` up to ``seq_len``, as ``stdlib-sentences`` and ``sentence-vae`` want; lines
      longer than ``seq_len - 1`` tokens are left out.
    - ``seq_len``: windows: 64 characters or 32 words by default; lines: the longest line + 1
      (for ``<eos>``), at most 256 characters or 64 words by default.
    - ``max_vocab``: keep the most frequent tokens (others become ``<unk>``); default all.
    - ``lowercase``: lower-case the text first (default false).
    - ``vocab``: a fingerprint from ``TextFile.options``; if the file's vocabulary no longer
      matches it (the file changed since a run was trained), ``DataError``.

    The tokenizer is fitted on the whole file, so all splits share it; at least 10 examples
    are needed.
    """
    path, in_name = files.split_options(path_or_spec)
    given = text_file_options({**in_name, **options})
    if files.file_kind(path) != "text":
        raise DataError(
            f"{path} holds arrays, not text; the options {', '.join(given) or 'tokens, layout'} "
            "apply to text files only"
        )
    layout = given.get("layout", layout_default)
    if layout not in LAYOUTS:
        raise DataError(f"layout must be 'windows' or 'lines', got {layout!r}")
    made = _text_file(files.stat_key(path), str(path), given.get("tokens", "chars"), layout,
                      given.get("seq_len"), given.get("max_vocab"),
                      given.get("lowercase", False))  # fmt: skip
    expected = given.get("vocab")
    if expected is not None and expected != vocab_fingerprint(made.tokenizer):
        raise DataError(
            f"the vocabulary of {path} is no longer the one this run was trained with "
            f"(fingerprint {vocab_fingerprint(made.tokenizer)}, expected {expected}): the file "
            "changed since; restore it, or train again on the new text"
        )
    return made


@functools.lru_cache(maxsize=8)
def _text_file(
    key: tuple[str, int, int],
    shown: str,
    tokens: str,
    layout: str,
    seq_len: int | None,
    max_vocab: int | None,
    lowercase: bool,
) -> TextFile:
    path = Path(shown)
    body = files.read_text_file(path)
    level = TOKEN_LEVELS[tokens]
    fit = functools.partial(Tokenizer.fit, level=level, max_vocab=max_vocab, lowercase=lowercase,
                            unicode_words=level == "word")  # fmt: skip
    lines = [line.strip() for line in body.splitlines()]
    lines = [line for line in lines if line]
    dropped = 0
    if layout == "windows":
        tok = fit(body)
        seq_len = seq_len or DEFAULT_WINDOW[tokens]
        examples = windows(tok.encode(body), seq_len)
        if len(examples) < 10:
            raise DataError(
                f"{path} gives {len(examples)} windows of {seq_len} {tokens}; give a longer "
                "text (at least 10 windows) or a smaller seq_len (--set seq_len=N)"
            )
    else:
        tok = fit(lines)
        encoded = [tok.encode(line) for line in lines]
        longest = max((len(e) for e in encoded), default=0)
        seq_len = seq_len or min(longest + 1, MAX_DEFAULT_LINE[tokens])
        kept = [e for e in encoded if len(e) < seq_len]
        dropped = len(encoded) - len(kept)
        if len(kept) < 10:
            raise DataError(
                f"{path}: {len(kept)} of its {len(encoded)} non-blank lines fit in seq_len="
                f"{seq_len} {tokens} with <eos>; give at least 10 lines, a larger seq_len "
                "(--set seq_len=N) or layout=windows"
            )
        examples = pad_sequences(kept, seq_len)
    examples.setflags(write=False)
    return TextFile(path, tokens, layout, seq_len, max_vocab, lowercase, tok, examples,
                    len(body), len(lines), dropped)  # fmt: skip


def load_text_file_split(
    path_or_spec: str | Path,
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    **options: Any,
) -> torch.Tensor:
    """Token ids ``(n, seq_len)`` (int64) of ``split`` of the user's text file: the first
    ``n`` of :meth:`TextFile.split`; options as in :func:`open_text_file`."""
    check_split(split)
    n = check_n(n)
    x = open_text_file(path_or_spec, **options).split(split, seed)
    return torch.from_numpy(np.array(x[:n], dtype=np.int64))
