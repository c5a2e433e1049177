"""The user's own data files: arrays (``.npy``, ``.npz``, ``.csv``, IDX) and UTF-8 text.

Files are read only, never written. What a file holds is decided by :func:`file_kind`: the
suffixes ``.npy``, ``.npz``, ``.csv`` and IDX names (``…-ubyte``, ``….idx3``, ``…-ubyte.gz`` and
the like) are arrays; ``.txt``, or any other file whose bytes decode as UTF-8 text (no NUL
bytes, almost no control characters), is text (:mod:`genzoo.data.text` cuts it into token ids);
anything else is refused with a ``DataError`` listing the accepted formats.

Arrays: examples are along the first axis; a 1-D array becomes a column (n, 1); 3-D IDX images
(n, rows, cols) gain a channel axis: (n, 1, rows, cols). The rows are split 80/10/10 into
train/val/test by a permutation seeded with ``seed``. Every problem raises
``genzoo.errors.DataError`` saying what is wrong and what to do.

A text file may carry data options after a ``?``, as a run folder records them:
``notes.txt?tokens=words&seq_len=32`` (:func:`split_options`).

A file may carry a condition beside the examples (for conditional models): a ``.npz`` with
arrays ``x`` and ``c`` (:data:`NPZ_CONDITION`), or a CSV column named by the data option
``condition_column`` (``data.csv?condition_column=species``), which is then taken out of
the examples. Integer values ``0..K-1`` in one column (``K <= 256``) are classes; anything
else is a vector of numbers per example (:func:`condition_summary`).
"""

from __future__ import annotations

import csv
import functools
import math
import os
import re
import zipfile
from collections.abc import Container
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import torch

from genzoo.data import idx
from genzoo.data._common import check_split, make_rng, split_sizes
from genzoo.errors import DataError
from genzoo.validation import check_finite

FILE_FRACTIONS = (0.8, 0.1, 0.1)
SUPPORTED_SUFFIXES = (".npy", ".npz", ".csv")
TEXT_SUFFIXES = (".txt",)
ACCEPTED = ".npy, .npz, .csv, IDX (…-ubyte[.gz]) or UTF-8 text"
#: Leading bytes of binary formats, to name them when such a file lacks its extension.
_MAGIC = {
    b"\x93NUMPY": "a NumPy .npy array: give it the .npy extension",
    b"PK\x03\x04": "a zip archive (a .npz?): give a .npz file its extension",
    b"\x1f\x8b": "gzip-compressed: decompress it (IDX files keep their …-ubyte.gz name)",
}
_IDX_NAME = re.compile(r"(-ubyte|\.idx\d?(-ubyte)?)(\.gz)?$", re.IGNORECASE)
NPZ_KEYS = ("x", "X", "data", "arr_0")
#: The array of a ``.npz`` that holds the condition of each example.
NPZ_CONDITION = "c"
#: Data options of array files: the CSV column that holds the condition.
ARRAY_OPTIONS = ("condition_column",)
#: Control characters (Unicode category Cc) other than tab, newline, CR, form feed, vertical tab.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def is_idx_name(path: str | Path) -> bool:
    """True for IDX file names: ``train-images-idx3-ubyte[.gz]``, ``x.idx3-ubyte``, ``x.idx``."""
    return _IDX_NAME.search(Path(path).name) is not None


def looks_like_path(name: str | Path) -> bool:
    """True for a ``Path``, a string with a directory separator or a file extension, or an IDX
    file name."""
    if isinstance(name, Path):
        return True
    return "/" in name or "\\" in name or Path(name).suffix != "" or is_idx_name(name)


def is_user_file(name: str | Path, shipped: Container[str]) -> bool:
    """True when ``name`` means a file rather than one of the ``shipped`` dataset names: a
    ``Path``, an existing path, a name with a directory separator, an extension or an IDX name,
    or ``PATH?options`` where ``PATH`` is one of those."""
    if isinstance(name, Path):
        return True
    if name in shipped:
        return False
    if Path(name).exists() or looks_like_path(name):
        return True
    base = name.rpartition("?")[0]
    return bool(base) and (Path(base).exists() or looks_like_path(base))


def split_options(name: str | Path) -> tuple[Path, dict[str, str]]:
    """The file path and the ``key=value`` data options after a ``?`` in ``name``.

    ``"notes.txt?tokens=words&seq_len=32"`` gives ``(Path("notes.txt"), {"tokens": "words",
    "seq_len": "32"})``. A name that is itself an existing file, or a ``Path``, has no options.
    """
    if isinstance(name, Path) or "?" not in name or Path(name).exists():
        return Path(name), {}
    path, _, query = name.rpartition("?")
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    if not pairs or any(not key for key, _ in pairs):
        raise DataError(
            f"cannot read the data options in {name!r}; write them as "
            "PATH?key=value&key=value (e.g. notes.txt?tokens=words)"
        )
    return Path(path), dict(pairs)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise DataError(
            f"no such file: {path}; give the path of an existing {ACCEPTED} file "
            "or the name of a shipped dataset (see genzoo.list_datasets())"
        )
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the path of a {ACCEPTED} file")


def stat_key(path: Path) -> tuple[str, int, int]:
    """The cache key of a file: its resolved path, size and modification time."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _binary_hint(raw: bytes) -> str:
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            return f" (it looks like {what})"
    return ""


@functools.lru_cache(maxsize=4)
def _decode_text(key: tuple[str, int, int]) -> str | None:
    """The UTF-8 text of the file in ``key`` (a leading BOM dropped), or ``None`` when it is
    not text: invalid UTF-8, a NUL byte, or more than 1% control characters (tabs, newlines,
    carriage returns, form feeds and vertical tabs do not count)."""
    raw = Path(key[0]).read_bytes()
    if b"\x00" in raw:
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return None if len(_CONTROL.findall(text)) > 0.01 * len(text) else text


def file_kind(path: str | Path) -> str:
    """``"array"`` or ``"text"``: what the existing file ``path`` holds (see the module doc).

    Raises ``DataError`` for a missing file, a folder, an empty text file, a ``.txt`` that is
    not UTF-8, and a file of another format (binary data) naming the accepted formats.
    """
    path = Path(path)
    _check_exists(path)
    if is_idx_name(path) or path.suffix.lower() in SUPPORTED_SUFFIXES:
        return "array"
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); give a file holding at least one example")
    if _decode_text(stat_key(path)) is not None:
        return "text"
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix.lower() in TEXT_SUFFIXES:
        raise DataError(
            f"{path} is not UTF-8 text (it holds bytes that do not decode, NUL bytes or "
            f"control characters){_binary_hint(head)}; save it as UTF-8 text"
        )
    raise DataError(
        f"{path} is neither an array file nor UTF-8 text{_binary_hint(head)}; genzoo reads "
        f"{ACCEPTED} files: convert the data to one of them"
    )


def read_text_file(path: str | Path) -> str:
    """The UTF-8 text of the file ``path`` (checked by :func:`file_kind`; a BOM is dropped)."""
    path = Path(path)
    _check_exists(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); give a text holding at least one example")
    text = _decode_text(stat_key(path))
    if text is None:
        raise DataError(
            f"{path} is not UTF-8 text (it holds bytes that do not decode, NUL bytes or "
            "control characters); save it as UTF-8 text"
        )
    if not text.strip():
        raise DataError(f"{path} holds only whitespace; give a text holding some words")
    return text


def _read_idx(path: Path) -> np.ndarray:
    array = idx.read_idx(path)
    return array[:, None] if array.ndim == 3 else array  # images (n, rows, cols) get a channel


def _numeric(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise DataError(
            f"{path} holds an array of dtype {array.dtype}, not numbers; "
            "save a numeric (integer or float) array"
        )
    return array


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:  # object arrays need pickle, which we never load
        raise DataError(
            f"{path} cannot be read as a numeric .npy array ({err}); "
            "save it with numpy.save from a numeric array"
        ) from err
    return _numeric(array, path)


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            if not keys:
                raise DataError(f"{path} is an empty .npz archive: it holds no arrays")
            if len(keys) == 1:
                key = keys[0]
            elif len(keys) == 2 and NPZ_CONDITION in keys:
                key = next(k for k in keys if k != NPZ_CONDITION)  # the examples beside c
            else:
                known = [k for k in NPZ_KEYS if k in keys]
                if not known:
                    raise DataError(
                        f"{path} holds several arrays ({', '.join(keys)}) and none is named "
                        f"{', '.join(NPZ_KEYS)}; save the data under the key 'x' "
                        "(numpy.savez(path, x=data)) or save a single array"
                    )
                key = known[0]
            array = archive[key]
    except DataError:
        raise
    except (ValueError, zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path} cannot be read as a .npz archive ({err})") from err
    return _numeric(array, path)


def _separator_hint(text: str) -> str:
    for sep, label in ((";", "';'"), ("\t", "a tab")):
        if sep in text:
            return f" (the file seems to use {label} between values; use commas)"
    return ""


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _read_csv(path: Path) -> np.ndarray:
    return _read_csv_table(path)[0]


def _read_csv_table(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """The numbers of a CSV file and its header (the column names), if it has one."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(i + 1, row) for i, row in enumerate(csv.reader(f)) if any(c.strip() for c in row)]
    if not rows:
        raise DataError(f"{path} is empty: it holds no rows; give one example per row")
    first_line, first = rows[0]
    header = None
    if all(_parse_float(c) is None for c in first):
        header = [c.strip() for c in first]
        rows = rows[1:]  # a header row: every cell is a name
        if not rows:
            raise DataError(f"{path} holds a header row but no data rows; add one row per example")
    width = len(rows[0][1])
    values = np.empty((len(rows), width))
    for r, (line, row) in enumerate(rows):
        if len(row) != width:
            raise DataError(
                f"{path}: row {line} has {len(row)} values but row {rows[0][0]} has {width}; "
                "every row must have the same number of columns"
            )
        for col, cell in enumerate(row):
            value = _parse_float(cell)
            if value is None:
                header = (
                    " If row 1 is a header, every cell in it must be a name."
                    if line == first_line
                    else ""
                )
                raise DataError(
                    f"{path}: row {line}, column {col + 1} holds {cell!r}, which is not a "
                    f"number{_separator_hint(cell)}; every cell after an optional header row "
                    f"must be numeric.{header}"
                )
            values[r, col] = value
    return values, header


def read_data_file(path: str | Path, condition_column: str | None = None) -> np.ndarray:
    """All examples in ``path`` as a float64 array with at least 2 dims; checks everything.
    ``condition_column`` (CSV files) names a column to leave out: the condition."""
    if condition_column is not None:
        return _csv_split_column(Path(path), condition_column)[0]
    path = Path(path)
    _check_exists(path)
    suffix = "idx" if is_idx_name(path) else path.suffix.lower()
    if suffix != "idx" and suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{path} has the unsupported extension {path.suffix or '(none)'!r}; "
            f"genzoo reads arrays from {', '.join(SUPPORTED_SUFFIXES)} and IDX files "
            "(…-ubyte[.gz]); text files are read by genzoo.load_dataset"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); give a file holding at least one example")
    reader = {".npy": _read_npy, ".npz": _read_npz, ".csv": _read_csv, "idx": _read_idx}[suffix]
    array = np.asarray(reader(path))
    if array.ndim == 0:
        raise DataError(
            f"{path} holds a single number (a 0-d array); give an array of examples shaped "
            "(n,) or (n, features, ...)"
        )
    if array.ndim == 1:
        array = array[:, None]
    if array.shape[0] == 0 or array.size == 0:
        raise DataError(f"{path} holds an empty array of shape {array.shape}; give examples")
    array = array.astype(np.float64)
    check_finite(torch.from_numpy(array), what=str(path))
    return array


def _csv_split_column(path: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A CSV file's examples without ``column``, and that column: ``(n, d - 1), (n,)``."""
    if path.suffix.lower() != ".csv":
        raise DataError(
            f"condition_column names a column of a CSV file; {path} is not one (a .npz "
            f"carries its condition as the array {NPZ_CONDITION!r})"
        )
    values = read_data_file(path)
    _, header = _read_csv_table(path)
    if header is None:
        raise DataError(f"{path} has no header row, so it has no column {column!r}: add a "
                        "first row of column names")  # fmt: skip
    if column not in header:
        raise DataError(f"{path} has no column {column!r}; its columns are {', '.join(header)}")
    if values.shape[1] < 2:
        raise DataError(f"{path} has one column only: nothing is left beside the condition")
    k = header.index(column)
    return np.delete(values, k, axis=1), values[:, k].copy()


def read_condition_file(path: str | Path, condition_column: str | None = None) -> np.ndarray | None:
    """The condition of every example of ``path``, float64 ``(n,)`` or ``(n, C)``: the
    ``condition_column`` of a CSV file, the array ``c`` of a ``.npz``; ``None`` for a file
    without one. Its rows must match the examples'."""
    path = Path(path)
    if condition_column is not None:
        return _csv_split_column(path, condition_column)[1]
    if path.suffix.lower() != ".npz":
        return None
    x = read_data_file(path)
    with np.load(path, allow_pickle=False) as archive:
        if NPZ_CONDITION not in archive.files or len(archive.files) == 1:
            return None
        c = _numeric(archive[NPZ_CONDITION], path)
    if c.ndim == 0 or len(c) != len(x):
        raise DataError(f"{path}: the condition {NPZ_CONDITION!r} has shape {c.shape} but the "
                        f"examples have {len(x)} rows; give one condition per example")  # fmt: skip
    c = c.astype(np.float64).reshape(len(c), -1)
    check_finite(torch.from_numpy(c), what=f"{path} condition {NPZ_CONDITION!r}")
    return c[:, 0] if c.shape[1] == 1 else c


def condition_summary(c: np.ndarray) -> tuple[str, int]:
    """``("discrete", K)`` when ``c`` is one column of integers ``0..K-1`` (``K <= 256``),
    else ``("continuous", C)`` with ``C`` the numbers per example."""
    if c.ndim == 1:
        levels = array_levels(c)
        if levels is not None:
            return "discrete", levels
        return "continuous", 1
    return "continuous", int(np.prod(c.shape[1:]))


def split_rows(x: np.ndarray, split: str, seed: int, what: str | Path) -> np.ndarray:
    """The rows of ``x`` in ``split``: 80/10/10 by a permutation seeded with ``seed`` (the same
    permutation for every split, so the three are disjoint)."""
    k = check_split(split)
    sizes = split_sizes(len(x), FILE_FRACTIONS)
    if sizes[k] == 0:
        raise DataError(
            f"{what} holds {len(x)} examples, so its {split!r} split (10%) is empty; "
            "give at least 10 examples"
        )
    perm = make_rng(seed, "file").permutation(len(x))
    start = sum(sizes[:k])
    return x[perm[start : start + sizes[k]]]


def load_file_split(
    path: str | Path, split: str, seed: int, condition_column: str | None = None
) -> np.ndarray:
    """The rows of the user's array file in ``split`` (80/10/10, seeded permutation)."""
    check_split(split)
    return split_rows(read_data_file(path, condition_column), split, seed, path)


def load_condition_split(
    path: str | Path, split: str, seed: int, condition_column: str | None = None
) -> np.ndarray | None:
    """The conditions of the rows :func:`load_file_split` gives (the same permutation)."""
    check_split(split)
    c = read_condition_file(path, condition_column)
    return None if c is None else split_rows(c, split, seed, path)


#: Arrays whose values are all integers in ``0..L-1`` with ``L <= MAX_LEVELS`` have levels.
MAX_LEVELS = 256


def array_levels(x: np.ndarray) -> int | None:
    """``max + 1`` (at least 2) when every value of ``x`` is an integer in ``0..255``, else
    ``None``: binary 0/1 data get 2, 8-bit grey levels 256, continuous data ``None``."""
    if x.size == 0 or x.min() < 0 or x.max() > MAX_LEVELS - 1 or not np.all(x == np.round(x)):
        return None
    return max(2, int(x.max()) + 1)


def array_kind(shape: tuple[int, ...]) -> str:
    """``"points"`` for examples of shape (2,), ``"tabular"`` for other flat vectors,
    ``"image"`` for (C, H, W) examples (IDX images included), ``"array"`` for other shapes."""
    if len(shape) == 3:
        return "image"
    if shape == (2,):
        return "points"
    return "tabular" if len(shape) == 1 else "array"


@functools.lru_cache(maxsize=32)
def _array_summary(
    key: tuple[str, int, int], condition_column: str | None
) -> tuple[int, tuple[int, ...], int | None, str, tuple[str, int] | None]:
    path = Path(key[0])
    x = read_data_file(path, condition_column)
    shape = tuple(int(d) for d in x.shape[1:])
    kind = array_kind(shape)
    c = read_condition_file(path, condition_column)
    condition = None if c is None else condition_summary(c)
    return len(x), shape, array_levels(x), kind, condition


def array_summary(
    path: str | Path, condition_column: str | None = None
) -> tuple[int, tuple[int, ...], int | None, str, tuple[str, int] | None]:
    """``(examples, shape of one example, levels, kind, condition)`` of an array file
    (``condition``: ``(kind, size)`` from :func:`condition_summary`, or ``None``), cached in
    memory by path, size and modification time (so an edited file is read again)."""
    path = Path(path)
    _check_exists(path)
    if condition_column is None and is_large_npy(path):
        return _streamed_summary_cached(stat_key(path))
    return _array_summary(stat_key(path), condition_column)


@functools.lru_cache(maxsize=8)
def _streamed_summary_cached(key: tuple[str, int, int]) -> tuple:
    return _streamed_summary(Path(key[0]))


class RowReader:
    """Fixed-size rows of a binary file, read by position (``os.pread``).

    Unlike a memory map, whose pages count as the process's resident memory once touched,
    reading by position leaves the file in the operating system's page cache only, so a
    process streaming a file of any size keeps a resident memory of one batch. Safe to
    pickle (for ``DataLoader`` workers): each process opens the file itself.
    """

    def __init__(self, path: str | os.PathLike, row_bytes: int, offset: int = 0) -> None:
        self.path = Path(path)
        self.row_bytes = int(row_bytes)
        self.offset = int(offset)
        self._fd: int | None = None
        self._pid = -1

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows ``rows`` (any order, repeats allowed) as uint8 ``(len(rows), row_bytes)``;
        each run of consecutive rows is one read."""
        fd, size = self._file(), self.row_bytes
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        wanted, back = np.unique(rows, return_inverse=True)
        data = np.empty((len(wanted), size), dtype=np.uint8)
        starts = np.flatnonzero(np.diff(wanted, prepend=-2) != 1)
        ends = np.append(starts[1:], len(wanted))
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            raw = os.pread(fd, size * (b - a), self.offset + int(wanted[a]) * size)
            if len(raw) != size * (b - a):
                raise DataError(f"{self.path} is shorter than expected (truncated?): rows "
                                f"{wanted[a]}..{wanted[b - 1]} are missing")  # fmt: skip
            data[a:b] = np.frombuffer(raw, dtype=np.uint8).reshape(b - a, size)
        return data[back.reshape(-1)]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)


#: A ``.npy`` file larger than this many bytes is streamed by row (:class:`NpyRows`) instead
#: of being read whole; the environment variable ``GENZOO_STREAM_BYTES`` overrides it.
STREAM_THRESHOLD = 512 * 2**20


def stream_threshold() -> int:
    """Bytes above which a ``.npy`` file is streamed (``GENZOO_STREAM_BYTES`` or 512 MiB)."""
    value = os.environ.get("GENZOO_STREAM_BYTES")
    if value is None:
        return STREAM_THRESHOLD
    try:
        return int(value)
    except ValueError:
        raise DataError(f"GENZOO_STREAM_BYTES must be a number of bytes, got {value!r}") from None


def is_large_npy(path: str | Path) -> bool:
    """True for an existing ``.npy`` file larger than :func:`stream_threshold` bytes."""
    path = Path(path)
    return path.suffix.lower() == ".npy" and path.is_file() and (
        path.stat().st_size > stream_threshold())  # fmt: skip


def read_npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the header of the ``.npy`` stream ``f``, which is
    left at the first byte of the data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def npy_layout(path: str | Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """A ``.npy`` file's shape, dtype and the byte offset of its data, read from its header
    (the data are not read): the layout a memory map would use."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = read_npy_header(f)
            offset = f.tell()
    except ValueError as err:
        raise DataError(f"{path} cannot be read as a .npy array ({err})") from err
    if fortran and len(shape) > 1:
        raise DataError(f"{path} is stored in Fortran order; save it in C order "
                        "(numpy.save(path, numpy.ascontiguousarray(x)))")  # fmt: skip
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise DataError(f"{path} holds an array of dtype {dtype}, not numbers; "
                        "save a numeric (integer or float) array")  # fmt: skip
    if len(shape) == 0 or shape[0] == 0:
        raise DataError(f"{path} holds an empty array or a single number: give examples")
    return tuple(int(d) for d in shape), dtype, offset


class NpyRows(torch.utils.data.Dataset):
    """Map-style dataset over chosen rows of a ``.npy`` file, read by position (like a
    memory map, but resident memory stays one batch however large the file): ``ds[i]`` is
    row ``index[i]`` as a float tensor of the example's shape (1-D files: ``(1,)``)."""

    def __init__(self, path: str | Path, index: np.ndarray | None = None) -> None:
        shape, dtype, offset = npy_layout(path)
        self.path = Path(path)
        self.example_shape = shape[1:] or (1,)
        self.dtype = dtype
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self.reader = RowReader(path, row_bytes, offset)
        self.count = shape[0]
        self.index = np.arange(shape[0]) if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def rows(self, items: Any) -> torch.Tensor:
        """The examples at positions ``items``: float ``(n, *example_shape)``."""
        rows = self.index[np.asarray(items, dtype=np.int64).reshape(-1)]
        raw = self.reader.read(rows).reshape(-1).view(self.dtype)
        x = raw.reshape(len(rows), *self.example_shape).astype(np.float64)
        return torch.as_tensor(x, dtype=torch.get_default_dtype())

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} rows of {self.path}")
        return self.rows([i % len(self)])[0]

    def __getitems__(self, items: list[int]) -> list[torch.Tensor]:
        return list(self.rows(items).unbind(0))


def _streamed_summary(path: Path) -> tuple[int, tuple[int, ...], int | None, str, None]:
    """:func:`array_summary` of a large ``.npy``, read in chunks of 64 MiB (never whole)."""
    rows = NpyRows(path)
    chunk = max(1, (64 * 2**20) // max(1, rows.reader.row_bytes))
    low, high, integral = math.inf, -math.inf, True
    for start in range(0, rows.count, chunk):
        part = rows.reader.read(np.arange(start, min(start + chunk, rows.count)))
        values = part.reshape(-1).view(rows.dtype)
        if rows.dtype.kind == "f" and not np.isfinite(values).all():
            raise DataError(f"{path} holds NaN or infinite values; remove or replace them")
        low, high = min(low, float(values.min())), max(high, float(values.max()))
        integral = integral and (
            rows.dtype.kind in "biu" or bool(np.all(values == np.round(values)))
        )
    levels = None
    if integral and low >= 0 and high <= MAX_LEVELS - 1:
        levels = max(2, int(high) + 1)
    shape = rows.example_shape
    return rows.count, shape, levels, array_kind(shape), None


def open_npy_split(path: str | Path, split: str, seed: int, n: int | None = None) -> NpyRows:
    """The rows of a ``.npy`` file in ``split`` (the 80/10/10 permutation of
    :func:`split_rows`), the first ``n``, streamed from the file."""
    rows = NpyRows(path)
    index = split_rows(np.arange(rows.count), split, seed, path)
    return NpyRows(path, index if n is None else index[:n])
