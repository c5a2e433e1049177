"""Images: scikit-learn's bundled 8x8 digits, and the user's folders of PNG/JPEG files.

Digits: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 17 grey levels 0..16).

Split as in Tomczak's ``intro_dgm`` examples ("Deep Generative Modeling", 2022): the first 1,000
images train, the next 350 validate, the remaining 447 test. Values are the integer grey levels
as floats, shaped (n, 1, 8, 8); ``digits-binary`` thresholds them at 8 (pixels >= 8 become 1).

Continuous models should see ``dequantize(x, 17)``, i.e. (x + u) / 17 with u ~ U[0, 1). A density
p on [0, 1)^64 then bounds the discrete log probability: log P(x) >= E_u[log p((x + u) / 17)] -
64 log 17. So bits/dim on the discrete scale include log2(17) = 4.09 bits per pixel on top of the
continuous density's bits/dim on [0, 1). For reference, an independent 17-level categorical
per pixel (Laplace-smoothed counts from the training split) scores about 2.40 bits/dim on the
test split, a uniform distribution over the 17 levels log2(17) = 4.09 bits/dim.

Image folders (``--data path/to/folder``, :func:`read_image_folder`): every ``.png``, ``.jpg``
and ``.jpeg`` file under the folder (sub-folders included, in sorted order) is decoded with
Pillow (the optional extra ``genzoo[images]``, imported only here), scaled so that its shorter
side is ``image_size`` and centre-cropped to ``image_size x image_size``. Grey images give one
channel; if any image has colour, all give three (grey ones repeated). The pixels stay 8-bit
integer levels 0..255 (uint8, 256 levels), so continuous models see them dequantised and
bits/dim count the discrete levels, as for digits. A file that does not decode is named in a
``DataError`` (every such file, after reading all the others); nothing is cached from that read.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from genzoo.data._common import check_split
from genzoo.errors import DataError

DIGITS_LEVELS = 17
DIGITS_SPLIT_SIZES = {"train": 1000, "val": 350, "test": 447}


@lru_cache(maxsize=1)
def _digits_images() -> np.ndarray:
    from sklearn.datasets import load_digits

    images = load_digits().images  # (1797, 8, 8), floats holding the integers 0..16
    return np.ascontiguousarray(images[:, None, :, :], dtype=np.float64)


@lru_cache(maxsize=1)
def _digits_labels() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.asarray(load_digits().target, dtype=np.int64)


def load_digits_labels(split: str) -> np.ndarray:
    """The digit (0..9) of each image of ``split``, int64 (n,), in the order of the images."""
    k = check_split(split)
    sizes = list(DIGITS_SPLIT_SIZES.values())
    start = sum(sizes[:k])
    return _digits_labels()[start : start + sizes[k]].copy()


def load_digits_split(split: str, binary: bool = False) -> np.ndarray:
    """The digits of ``split`` as levels (n, 1, 8, 8); ``binary`` thresholds at 8."""
    k = check_split(split)
    sizes = list(DIGITS_SPLIT_SIZES.values())
    start = sum(sizes[:k])
    x = _digits_images()[start : start + sizes[k]]
    return (x >= 8).astype(np.float64) if binary else x.copy()


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_LEVELS = 256
#: Pillow modes that hold grey levels (no colour).
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            "reading a folder of images needs Pillow, the optional extra genzoo[images]: "
            "pip install 'genzoo[images]'"
        ) from None
    return Image


def image_files(folder: str | Path) -> list[Path]:
    """The PNG/JPEG files under ``folder`` (sub-folders included), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give a folder of PNG/JPEG images")
    found = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not found:
        raise DataError(f"{folder} holds no {'/'.join(IMAGE_SUFFIXES)} files; give a folder of "
                        "PNG or JPEG images")  # fmt: skip
    return found


def check_image_size(image_size: object) -> int | None:
    """``image_size`` as a positive int (a string from a run's dataset name is read), or None."""
    if image_size is None:
        return None
    try:
        size = int(str(image_size))
    except ValueError:
        size = 0
    if size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {image_size!r}")
    return size


def _decode(image_module, path: Path, size: int | None) -> np.ndarray:
    """One image as uint8 ``(H, W)`` (grey) or ``(H, W, 3)``, resized and centre-cropped."""
    with image_module.open(path) as im:
        im.load()
        grey = im.mode in _GREY_MODES
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float grey: to 8 bits
            a = np.asarray(im, dtype=np.float64)
            high = 65535.0 if a.max() > 255 else 255.0
            im = image_module.fromarray(np.clip(a / high * 255 + 0.5, 0, 255).astype(np.uint8))
        im = im.convert("L" if grey else "RGB")
        if size is not None:
            w, h = im.size
            scale = size / min(w, h)
            new = (max(size, round(w * scale)), max(size, round(h * scale)))
            if new != (w, h):
                im = im.resize(new, image_module.Resampling.BICUBIC)
            left, top = (new[0] - size) // 2, (new[1] - size) // 2
            im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8)


@lru_cache(maxsize=2)
def _folder_levels(key: tuple[tuple[str, int, int], ...], size: int | None) -> np.ndarray:
    image_module = _pillow()
    decoded, bad = [], []
    for name, _, _ in key:
        try:
            decoded.append((name, _decode(image_module, Path(name), size)))
        except (OSError, ValueError, SyntaxError) as err:  # Pillow's errors for bad files
            bad.append(f"{name} ({type(err).__name__}: {err})")
    if bad:
        raise DataError(
            f"{len(bad)} of {len(key)} image files cannot be read: {'; '.join(bad)}. Remove "
            "or replace them; the other files were read and nothing was kept from this read"
        )
    shapes = {a.shape[:2] for _, a in decoded}
    if len(shapes) > 1:
        seen: dict[tuple[int, ...], str] = {}
        for name, a in decoded:
            seen.setdefault(a.shape[:2], name)
        examples = ", ".join(f"{Path(n).name} {s[1]}x{s[0]}" for s, n in list(seen.items())[:3])
        raise DataError(f"the images have different sizes ({examples}); give --image-size N "
                        "to resize and centre-crop them all to N x N")  # fmt: skip
    colour = any(a.ndim == 3 for _, a in decoded)
    out = np.empty((len(decoded), 3 if colour else 1, *shapes.pop()), dtype=np.uint8)
    for k, (_, a) in enumerate(decoded):
        out[k] = a.transpose(2, 0, 1) if a.ndim == 3 else a[None]
    out.setflags(write=False)
    return out


def read_image_folder(folder: str | Path, image_size: int | str | None = None) -> np.ndarray:
    """Every image of ``folder`` as uint8 levels ``(n, C, S, S)`` (see the module doc);
    cached in memory by the files' paths, sizes and modification times.

    Without ``image_size`` the images must all have one size, which they keep.
    """
    size = check_image_size(image_size)
    files = image_files(folder)
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _folder_levels(key, size)
