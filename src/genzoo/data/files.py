"""The user's own data files: ``.npy``, ``.npz``, ``.csv`` and IDX, read only, never written.

Examples are along the first axis; a 1-D array becomes a column (n, 1). IDX files (MNIST's
format, :mod:`genzoo.data.idx`) are recognised by name: ``…-ubyte``, ``….idx3``, ``…-ubyte.gz``
and the like; 3-D IDX images (n, rows, cols) gain a channel axis: (n, 1, rows, cols). The rows
are split 80/10/10 into train/val/test by a permutation seeded with ``seed``. Every problem raises
``genzoo.errors.DataError`` saying what is wrong and what to do.
"""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from genzoo.data import idx
from genzoo.data._common import check_split, make_rng, split_sizes
from genzoo.errors import DataError
from genzoo.validation import check_finite

FILE_FRACTIONS = (0.8, 0.1, 0.1)
SUPPORTED_SUFFIXES = (".npy", ".npz", ".csv")
_IDX_NAME = re.compile(r"(-ubyte|\.idx\d?(-ubyte)?)(\.gz)?$", re.IGNORECASE)
NPZ_KEYS = ("x", "X", "data", "arr_0")


def is_idx_name(path: str | Path) -> bool:
    """True for IDX file names: ``train-images-idx3-ubyte[.gz]``, ``x.idx3-ubyte``, ``x.idx``."""
    return _IDX_NAME.search(Path(path).name) is not None


def looks_like_path(name: str | Path) -> bool:
    """True for a ``Path``, a string with a directory separator or a file extension, or an IDX
    file name."""
    if isinstance(name, Path):
        return True
    return "/" in name or "\\" in name or Path(name).suffix != "" or is_idx_name(name)


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
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(i + 1, row) for i, row in enumerate(csv.reader(f)) if any(c.strip() for c in row)]
    if not rows:
        raise DataError(f"{path} is empty: it holds no rows; give one example per row")
    first_line, first = rows[0]
    if all(_parse_float(c) is None for c in first):
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
    return values


def read_data_file(path: str | Path) -> np.ndarray:
    """All examples in ``path`` as a float64 array with at least 2 dims; checks everything."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"no such file: {path}; give the path of an existing .npy, .npz, .csv or IDX file "
            "or the name of a shipped dataset (see genzoo.list_datasets())"
        )
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the path of a .npy, .npz, .csv or IDX file")
    suffix = "idx" if is_idx_name(path) else path.suffix.lower()
    if suffix != "idx" and suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{path} has the unsupported extension {path.suffix or '(none)'!r}; "
            f"genzoo reads {', '.join(SUPPORTED_SUFFIXES)} and IDX files (…-ubyte[.gz]): "
            "convert the data to one of them"
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


def load_file_split(path: str | Path, split: str, seed: int) -> np.ndarray:
    """The rows of the user's file in ``split`` (80/10/10, seeded permutation)."""
    k = check_split(split)
    x = read_data_file(path)
    sizes = split_sizes(len(x), FILE_FRACTIONS)
    if sizes[k] == 0:
        raise DataError(
            f"{path} holds {len(x)} examples, so its {split!r} split (10%) is empty; "
            "give at least 10 examples"
        )
    perm = make_rng(seed, "file").permutation(len(x))
    start = sum(sizes[:k])
    return x[perm[start : start + sizes[k]]]
