"""MNIST and Fashion-MNIST from the user's local IDX files (read only; nothing is downloaded).

The IDX format (LeCun et al. 1998, "Gradient-based learning applied to document recognition";
format described at yann.lecun.com/exdb/mnist): a 4-byte magic number ``0x00 0x00 T D`` where
``T`` is the type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64) and ``D`` the number of dimensions, then ``D`` big-endian uint32
sizes, then the values in C order, big-endian. Files may be gzip-compressed (``.gz``, as they
are distributed); compression is detected from the content, not the name.

Where the files are looked up: the folder named by the environment variable ``GENZOO_DATA``,
or ``~/.genzoo/data`` when it is unset. Inside it, ``mnist/`` and ``fashion-mnist/`` hold the
four files with their distributed names, plain or ``.gz``::

    $GENZOO_DATA/mnist/train-images-idx3-ubyte.gz     (60,000 images: train + val)
    $GENZOO_DATA/mnist/t10k-images-idx3-ubyte.gz      (10,000 images: test)
    $GENZOO_DATA/mnist/train-labels-idx1-ubyte.gz     (labels: optional, see load_labels)
    $GENZOO_DATA/fashion-mnist/...                    (same four names, from Zalando)

torchvision's layout (``MNIST/raw/``, ``FashionMNIST/raw/``) is accepted too, and MNIST's
files may also sit directly in the folder (Fashion-MNIST's files have the same names, so they
need their own subfolder).

Splits (fixed, no randomness): ``train`` = the first 50,000 images of the training file,
``val`` = its last 10,000 (in general the last sixth), ``test`` = the t10k file. ``mnist`` and
``fashion-mnist`` hold the integer grey levels 0..255 (levels 256) shaped (n, 1, 28, 28);
the ``-binary`` variants threshold at 128 (pixel >= 128 becomes 1), a fixed binarisation,
not the stochastic one of Salakhutdinov & Murray (2008).
"""

from __future__ import annotations

import gzip
import os
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from genzoo.data._common import check_split
from genzoo.errors import DataError

IDX_LEVELS = 256
BINARY_THRESHOLD = 128
IMAGE_SIZE = (28, 28)
VAL_FRACTION = 1 / 6  # 10,000 of the 60,000 training images

# type code -> big-endian numpy dtype
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_TYPE_NAMES = {
    0x08: "ubyte",
    0x09: "byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}

# dataset name -> (subfolders tried in order, "" meaning the data folder itself; binary?)
IDX_DATASETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "mnist": (("mnist", "MNIST/raw", ""), False),
    "mnist-binary": (("mnist", "MNIST/raw", ""), True),
    "fashion-mnist": (("fashion-mnist", "FashionMNIST/raw"), False),
    "fashion-mnist-binary": (("fashion-mnist", "FashionMNIST/raw"), True),
}
IDX_DESCRIPTIONS = {
    "mnist": "MNIST 28x28 digits, 256 grey levels 0..255 (split 50k/10k/10k)",
    "mnist-binary": "MNIST thresholded at 128 to {0, 1} (split 50k/10k/10k)",
    "fashion-mnist": "Fashion-MNIST 28x28 clothes, 256 grey levels 0..255 (split 50k/10k/10k)",
    "fashion-mnist-binary": "Fashion-MNIST thresholded at 128 to {0, 1} (split 50k/10k/10k)",
}
NEEDS_FILES_NOTE = "; needs local IDX files ($GENZOO_DATA or ~/.genzoo/data)"

_STEMS = {"train": "train-{}", "val": "train-{}", "test": "t10k-{}"}
_KINDS = {"images": "images-idx3-ubyte", "labels": "labels-idx1-ubyte"}


def _open_bytes(path: Path) -> bytes:
    """The (decompressed) content of ``path``."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as err:
        raise DataError(
            f"{path} is a truncated gzip file ({err}): the download was probably interrupted; "
            "download it again"
        ) from err
    except (OSError, zlib.error) as err:
        raise DataError(f"{path} is a corrupt gzip file ({err}); download it again") from err


def read_idx(path: str | Path) -> np.ndarray:
    """Every value of the IDX file ``path`` (plain or gzip) as a native-endian array.

    The shape is the one the header gives, e.g. (60000, 28, 28) uint8 for MNIST's training
    images, (60000,) for its labels. Anything malformed raises ``DataError``.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "missing"
        raise DataError(f"{path} is {what}; give the path of an IDX file")
    data = _open_bytes(path)
    if len(data) < 4:
        raise DataError(
            f"{path} is truncated: {len(data)} bytes, but an IDX file starts with a 4-byte magic "
            "number (0x00 0x00, type code, number of dimensions)"
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{path} is not an IDX file: its magic number is 0x{data[:4].hex()}, but IDX files "
            "start with two zero bytes, a type code and the number of dimensions "
            "(0x00000803 for MNIST images, 0x00000801 for labels)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X} ({_TYPE_NAMES[c]})" for c in IDX_DTYPES)
        raise DataError(f"{path} has the unknown IDX type code 0x{code:02X}; valid codes: {valid}")
    if ndim == 0:
        raise DataError(f"{path} declares 0 dimensions in its magic number; not a valid IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path} is truncated: its magic number declares {ndim} dimensions, whose sizes need "
            f"{header} header bytes, but the file holds {len(data)} bytes"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        dims = " x ".join(map(str, shape))
        problem = (
            "is truncated (an interrupted download? download it again)"
            if found < expected
            else "has extra bytes after the data (not a valid IDX file)"
        )
        raise DataError(
            f"{path} {problem}: its header announces {dims} {_TYPE_NAMES[code]} values, "
            f"{expected} bytes of data, but {found} bytes follow the header"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx_images(path: str | Path) -> np.ndarray:
    """The images of an IDX images file as uint8 (n, rows, cols), e.g. (60000, 28, 28)."""
    x = read_idx(path)
    if x.ndim == 1:
        raise DataError(
            f"{path} holds {x.shape[0]} labels (a 1-D IDX file), not images; give the images file "
            "(…-images-idx3-ubyte), not the labels file (…-labels-idx1-ubyte)"
        )
    if x.ndim != 3:
        raise DataError(
            f"{path} holds an array of shape {x.shape}; an IDX images file holds (n, rows, cols)"
        )
    if x.dtype != np.uint8:
        raise DataError(f"{path} holds {x.dtype} values; IDX images must be unsigned bytes (0x08)")
    return x


def read_idx_labels(path: str | Path) -> np.ndarray:
    """The labels of an IDX labels file as uint8 (n,)."""
    y = read_idx(path)
    if y.ndim != 1:
        raise DataError(
            f"{path} holds an array of shape {y.shape}, not 1-D labels; give the labels file "
            "(…-labels-idx1-ubyte), not the images file (…-images-idx3-ubyte)"
        )
    if y.dtype != np.uint8:
        raise DataError(f"{path} holds {y.dtype} values; IDX labels must be unsigned bytes (0x08)")
    return y


def data_root() -> Path:
    """``$GENZOO_DATA`` when set, else ``~/.genzoo/data``."""
    root = os.environ.get("GENZOO_DATA")
    return Path(root).expanduser() if root else Path.home() / ".genzoo" / "data"


def _file_names(split: str, kind: str) -> list[str]:
    base = _STEMS[split].format(_KINDS[kind])  # e.g. train-images-idx3-ubyte
    dotted = base.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte (a common re-upload)
    return [base + ".gz", base, dotted + ".gz", dotted]


def find_idx_file(name: str, split: str, kind: str = "images") -> Path:
    """The IDX file of dataset ``name`` for ``split`` (``kind`` "images" or "labels")."""
    check_split(split)
    if name not in IDX_DATASETS:
        raise DataError(f"{name!r} is not an IDX dataset; IDX datasets: {', '.join(IDX_DATASETS)}")
    root = data_root()
    subfolders = IDX_DATASETS[name][0]
    for sub in subfolders:
        for file_name in _file_names(split, kind):
            path = root / sub / file_name
            if path.is_file():
                return path
    base = name.removesuffix("-binary")
    need = _file_names(split, kind)[1]
    others = ", ".join(str(root / s) if s else str(root) for s in subfolders[1:])
    source = (
        "Fashion-MNIST (github.com/zalandoresearch/fashion-mnist)" if "fashion" in base else "MNIST"
    )
    raise DataError(
        f"dataset {name!r} needs the local file {root / base / need}[.gz] (the {split!r} split) "
        f"and genzoo downloads nothing. Put the {source} IDX files, plain or .gz, as "
        f"{root / base}/train-images-idx3-ubyte.gz (train and val) and "
        f"{root / base}/t10k-images-idx3-ubyte.gz (test); set GENZOO_DATA to use another "
        f"folder than {root}. Also accepted: the same names in {others}."
    )


@lru_cache(maxsize=4)
def _cached_images(path: str, mtime_ns: int, size: int) -> np.ndarray:
    x = read_idx_images(path)
    x.flags.writeable = False
    return x


def _images(path: Path) -> np.ndarray:
    stat = path.stat()  # the key changes when the file does, so a cache is never stale
    return _cached_images(str(path), stat.st_mtime_ns, stat.st_size)


def _split_slice(split: str, total: int) -> slice:
    n_val = int(round(total * VAL_FRACTION))
    return {
        "train": slice(0, total - n_val),
        "val": slice(total - n_val, total),
        "test": slice(0, total),
    }[split]


def load_idx_split(name: str, split: str) -> np.ndarray:
    """Images of ``split`` of the IDX dataset ``name`` as uint8 (n, 1, 28, 28): levels 0..255,
    or 0/1 for the ``-binary`` variants (pixel >= 128)."""
    path = find_idx_file(name, split)
    x = _images(path)
    if x.shape[1:] != IMAGE_SIZE:
        raise DataError(
            f"{path} holds images of {x.shape[1]}x{x.shape[2]} pixels; {name!r} expects 28x28"
        )
    x = x[_split_slice(split, len(x))]
    if len(x) == 0:
        raise DataError(f"{path} holds too few images for a non-empty {split!r} split")
    x = x[:, None, :, :]
    if IDX_DATASETS[name][1]:
        return (x >= BINARY_THRESHOLD).astype(np.uint8)
    return x.copy()


def load_labels(name: str, split: str = "train") -> np.ndarray:
    """Labels (n,) uint8 of ``split``, aligned with ``load_dataset(name, split)`` (same order;
    needs the ``…-labels-idx1-ubyte`` files next to the images)."""
    images = find_idx_file(name, split, "images")
    path = find_idx_file(name, split, "labels")
    y = read_idx_labels(path)
    n_images = len(_images(images))
    if len(y) != n_images:
        raise DataError(f"{path} holds {len(y)} labels but {images} holds {n_images} images")
    return y[_split_slice(split, len(y))].copy()
