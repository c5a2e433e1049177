"""``sprites``: a procedural re-rendering in the design of dSprites (Matthey et al. 2017).

dSprites (the data set of the beta-VAE paper, Higgins et al. 2017) holds 64x64 binary images of
one white sprite on black, over the full product of five independent factors. genzoo does NOT
ship or download the original file: this module renders the same design itself, so the pixels
differ from the original's, while the factors, their sizes and their ranges are the same:

====================  =====  ========================================================
factor                size   values
====================  =====  ========================================================
shape                 3      square, ellipse, heart (0, 1, 2)
scale                 6      0.5 .. 1 (linear)
orientation           40     2 pi k / 40 radians, k = 0..39 (in [0, 2 pi); the
                             original's grid includes both 0 and 2 pi)
posX                  32     0 .. 1 (linear): the sprite's centre, left to right
posY                  32     0 .. 1 (linear): the sprite's centre, top to bottom
====================  =====  ========================================================

3 x 6 x 40 x 32 x 32 = 737,280 images, ordered like dSprites' (row-major over the factors in the
order above: index = (((shape * 6 + scale) * 40 + orientation) * 32 + posX) * 32 + posY).

Rendering is deterministic numpy: each (shape, scale, orientation) sprite is drawn once on a
21x21 template, 4x4 supersampled and thresholded at half coverage, then placed at each of the
32 x 32 positions, whose centres are whole pixels ``10 + round(43 pos)`` (so every image is
exact, with no sub-pixel rounding between images of one template). At scale 1 a square has a
side of 12 pixels, an ellipse axes of 18 x 9 and a heart a width of about 17.

The images are rendered once, on first use, into the cache folder (:func:`genzoo.io.cache_folder`:
``$GENZOO_CACHE``, else ``$XDG_CACHE_HOME/genzoo``, else ``~/.cache/genzoo``) as a file of
bit-packed rows (512 bytes an image, 377 MB for the full grid), written atomically with a
progress bar, and streamed from it by :class:`SpritesDataset`, which reads the rows it is
asked for by position: resident memory does not grow with the number of images. A cache file of
the wrong size (a truncated copy) or whose spot-checked images differ from a fresh rendering is
rendered again. :class:`SpriteGrid` takes a reduced grid (fewer scales, orientations or
positions) for tests and quick runs; the full grid is the default.

The user who has the original ``dsprites_ndarray_*.npz`` gives it to ``--data``:
:func:`open_dsprites_npz` converts its images once into the same bit-packed format (its
latent classes are the factors), so it is streamed in the same way.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genzoo.data._common import check_split, make_rng, split_sizes
from genzoo.data.files import RowReader, read_npy_header
from genzoo.errors import DataError
from genzoo.io import cache_folder

NAME = "sprites"
IMAGE_SIZE = 64
ROW_BYTES = IMAGE_SIZE * IMAGE_SIZE // 8  # one bit a pixel
SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "posX", "posY")
#: The split of the images into train/val/test, by a permutation seeded with the data seed.
FRACTIONS = (0.8, 0.1, 0.1)
#: Changes whenever the rendering changes, so that an old cache file is never read as new.
RENDER_VERSION = 1
_TEMPLATE = 21  # side of the template a sprite is drawn on (centre pixel 10)
_HALF = _TEMPLATE // 2
_SUPERSAMPLE = 4
DESCRIPTION = (
    "64x64 binary sprites re-rendered in the dSprites design (Matthey et al. 2017; NOT the "
    "original file): square/ellipse/heart x 6 scales x 40 orientations x 32 x 32 positions "
    "= 737,280 images, rendered once into the cache folder and streamed; condition: the 5 "
    "factor values; split 80/10/10; in memory the first --n (default 10,000) of a split; "
    "--data dsprites_ndarray_*.npz reads the original"
)


@dataclass(frozen=True)
class SpriteGrid:
    """The factor grid: sizes of scale, orientation, posX and posY (shape is always 3).

    The default is dSprites' full grid (737,280 images); smaller grids serve tests.
    """

    scales: int = 6
    orientations: int = 40
    positions: int = 32

    def __post_init__(self) -> None:
        for name in ("scales", "orientations", "positions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"SpriteGrid {name} must be a positive integer, got {value!r}")
        if self.positions > 44:
            raise DataError(f"SpriteGrid positions must be at most 44 (whole-pixel centres "
                            f"10..53), got {self.positions}")  # fmt: skip

    @property
    def sizes(self) -> tuple[int, int, int, int, int]:
        """Number of values of each factor, in the order of :data:`FACTOR_NAMES`."""
        return (len(SHAPES), self.scales, self.orientations, self.positions, self.positions)

    def __len__(self) -> int:
        return math.prod(self.sizes)

    @property
    def tag(self) -> str:
        return "x".join(map(str, self.sizes))

    def factor_values(self) -> tuple[np.ndarray, ...]:
        """The value of each factor's levels: shape ids, scales, angles (rad), posX, posY."""
        scales = np.linspace(0.5, 1.0, self.scales) if self.scales > 1 else np.ones(1)
        angles = 2 * np.pi * np.arange(self.orientations) / self.orientations
        pos = np.linspace(0.0, 1.0, self.positions) if self.positions > 1 else np.zeros(1)
        return np.arange(len(SHAPES), dtype=np.float64), scales, angles, pos, pos.copy()

    def classes(self, index: np.ndarray) -> np.ndarray:
        """The factor classes (level numbers) of the images ``index``: int64 ``(n, 5)``."""
        return np.stack(np.unravel_index(np.asarray(index, dtype=np.int64), self.sizes), axis=1)

    def values(self, index: np.ndarray) -> np.ndarray:
        """The factor values of the images ``index``: float64 ``(n, 5)`` (see the module)."""
        classes = self.classes(index)
        columns = [v[classes[:, k]] for k, v in enumerate(self.factor_values())]
        return np.stack(columns, axis=1)

    def index(self, classes: np.ndarray) -> np.ndarray:
        """The image index of factor classes ``(n, 5)`` (the inverse of :meth:`classes`)."""
        classes = np.asarray(classes, dtype=np.int64)
        return np.ravel_multi_index(tuple(classes.T), self.sizes)


FULL_GRID = SpriteGrid()
#: The grid ``open_sprites`` uses when given none (the full grid; tests set a smaller one).
DEFAULT_GRID = FULL_GRID


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Points ``(u, v)`` (pixels, v pointing up, the sprite's own frame at scale 1) inside
    the shape."""
    if shape == 0:  # square, side 12
        return np.maximum(np.abs(u), np.abs(v)) <= 6.0
    if shape == 1:  # ellipse, semi-axes 9 and 4.5
        return (u / 9.0) ** 2 + (v / 4.5) ** 2 <= 1.0
    # heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 spans x in [-1.14, 1.14], y in [-1, 1.25]
    x, y = u / 7.5, v / 7.5 + 0.125
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


def render_template(shape: int, scale: float, angle: float) -> np.ndarray:
    """One sprite on a 21x21 template (centre pixel 10), bool: 4x4 supersampled, a pixel
    is on when at least half of its sub-pixels are inside the rotated, scaled shape."""
    sub = (np.arange(_TEMPLATE * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5 - _HALF
    cols, rows = np.meshgrid(sub, sub)  # pixel offsets from the centre, rows pointing down
    x, y = cols, -rows
    cos, sin = math.cos(angle), math.sin(angle)
    u = (cos * x + sin * y) / scale  # rotate the point by -angle: the sprite turns by +angle
    v = (-sin * x + cos * y) / scale
    hit = _inside(shape, u, v).reshape(_TEMPLATE, _SUPERSAMPLE, _TEMPLATE, _SUPERSAMPLE)
    return hit.mean(axis=(1, 3)) >= 0.5


def _centres(positions: int) -> np.ndarray:
    """Whole-pixel centres of the positions 0..1: ``10 + round(43 pos)``."""
    pos = np.linspace(0.0, 1.0, positions) if positions > 1 else np.zeros(1)
    return (_HALF + np.rint(43 * pos)).astype(np.int64)


def render_block(grid: SpriteGrid, template_index: int) -> np.ndarray:
    """The ``positions**2`` images of one (shape, scale, orientation), uint8 0/1
    ``(positions, positions, 64, 64)`` indexed ``[posX, posY]``: the images
    ``template_index * positions**2 ...`` of the grid, in order."""
    shape, scale_k, angle_k = np.unravel_index(template_index, grid.sizes[:3])
    _, scales, angles, _, _ = grid.factor_values()
    template = render_template(int(shape), float(scales[scale_k]), float(angles[angle_k]))
    centres = _centres(grid.positions)
    out = np.zeros((grid.positions, grid.positions, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i, cx in enumerate(centres):
        for j, cy in enumerate(centres):
            out[i, j, cy - _HALF : cy + _HALF + 1, cx - _HALF : cx + _HALF + 1] = template
    return out


def render(grid: SpriteGrid, index: np.ndarray) -> np.ndarray:
    """The images ``index`` of ``grid`` rendered directly (no cache): uint8 0/1
    ``(n, 64, 64)``. For checks and small samples; the dataset reads the cache file."""
    index = np.asarray(index, dtype=np.int64)
    per = grid.positions**2
    out = np.empty((len(index), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for block in np.unique(index // per):
        images = render_block(grid, int(block)).reshape(per, IMAGE_SIZE, IMAGE_SIZE)
        wanted = index // per == block
        out[wanted] = images[index[wanted] % per]
    return out


def cache_path(grid: SpriteGrid = FULL_GRID, cache_dir: str | os.PathLike | None = None) -> Path:
    """The bit-packed file of ``grid``'s images in the cache folder."""
    return cache_folder(cache_dir) / f"sprites-{grid.tag}-v{RENDER_VERSION}.bits"


def _spot_check(grid: SpriteGrid, path: Path) -> bool:
    """The file's first and last blocks equal a fresh rendering of them."""
    per = grid.positions**2
    blocks = {0, len(grid) // per - 1}
    with open(path, "rb") as f:
        for block in blocks:
            f.seek(block * per * ROW_BYTES)
            stored = f.read(per * ROW_BYTES)
            fresh = np.packbits(render_block(grid, block).reshape(per, -1), axis=1)
            if stored != fresh.tobytes():
                return False
    return True


def _write_cache(grid: SpriteGrid, path: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    from genzoo.io import atomic_write

    per = grid.positions**2
    blocks = len(grid) // per

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            bar = tqdm(range(blocks), desc=f"rendering sprites {grid.tag}", unit="block",
                       disable=not progress, leave=False)  # fmt: skip
            for block in bar:
                images = render_block(grid, block).reshape(per, -1)
                f.write(np.packbits(images, axis=1).tobytes())
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def ensure_cache(
    grid: SpriteGrid = FULL_GRID, cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> Path:
    """The cache file of ``grid``, rendered (atomically, with a progress bar) when it is
    missing, of the wrong size (truncated) or fails the spot check; reused otherwise."""
    path = cache_path(grid, cache_dir)
    expected = len(grid) * ROW_BYTES
    if path.exists() and path.stat().st_size == expected and _spot_check(grid, path):
        return path
    _write_cache(grid, path, progress)
    if path.stat().st_size != expected:
        raise DataError(f"rendering the sprites into {path} wrote {path.stat().st_size} bytes, "
                        f"not {expected}: is the disk full? free space and try again")  # fmt: skip
    return path


def split_index(total: int, split: str, seed: int, n: int | None = None) -> np.ndarray:
    """The image indices of ``split`` (80/10/10 of a permutation seeded with ``seed``; the
    same permutation for every split, so the three are disjoint), the first ``n`` of them."""
    k = check_split(split)
    sizes = split_sizes(total, FRACTIONS)
    perm = make_rng(seed, NAME).permutation(total)
    start = sum(sizes[:k])
    chosen = perm[start : start + sizes[k]]
    return chosen if n is None else chosen[:n]


class SpritesDataset(torch.utils.data.Dataset):
    """Map-style dataset of sprites images streamed from their bit-packed cache file.

    ``dataset[i]`` is the float image ``(1, 64, 64)`` of 0/1 values, or ``(x, c)`` with
    ``condition=True``: ``c`` the five factor values, float ``(5,)``. ``factor_classes``
    gives the ground-truth factor classes of every example (for disentanglement metrics).
    ``__getitems__`` reads a whole batch at once (``DataLoader`` uses it).

    The file holds the whole grid in dSprites' order, so an example's factors follow from its
    row (``index``): the dataset keeps only the rows, 8 bytes an example, and the grid.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        index: np.ndarray,
        grid: SpriteGrid = FULL_GRID,
        condition: bool = False,
        value_table: tuple[np.ndarray, ...] | None = None,
    ) -> None:
        self.reader = RowReader(path, ROW_BYTES)
        self.index = np.asarray(index, dtype=np.int64)
        self.grid = grid
        self.factor_sizes = grid.sizes
        self.value_table = value_table or grid.factor_values()
        self.condition = condition

    @property
    def factor_classes(self) -> np.ndarray:
        """The factor classes of every example, int64 ``(n, 5)``."""
        return self.grid.classes(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def images(self, items: Any) -> torch.Tensor:
        """The images at positions ``items`` of this dataset: float ``(n, 1, 64, 64)``."""
        return self.grid_images(self.index[np.asarray(items, dtype=np.int64).reshape(-1)])

    def conditions(self, items: Any) -> torch.Tensor:
        """The factor values of the examples at ``items``: float ``(n, 5)``."""
        classes = self.grid.classes(self.index[np.asarray(items, dtype=np.int64).reshape(-1)])
        c = np.stack([v[classes[:, k]] for k, v in enumerate(self.value_table)], axis=1)
        return torch.as_tensor(c, dtype=torch.get_default_dtype())

    def __getitem__(self, i: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} sprites")
        i = i % len(self)
        x = self.images([i])[0]
        return (x, self.conditions([i])[0]) if self.condition else x

    def __getitems__(self, items: list[int]) -> list[Any]:
        x = self.images(items).unbind(0)
        if not self.condition:
            return list(x)
        return list(zip(x, self.conditions(items).unbind(0), strict=True))

    def grid_images(self, grid_index: np.ndarray) -> torch.Tensor:
        """The images at positions ``grid_index`` of the whole grid (not of this split), in
        the file's order: float ``(n, 1, 64, 64)`` (for metrics that choose factors)."""
        rows = np.asarray(grid_index, dtype=np.int64).reshape(-1)
        bits = np.unpackbits(self.reader.read(rows), axis=1)
        x = torch.from_numpy(bits).to(torch.get_default_dtype())
        return x.reshape(len(rows), 1, IMAGE_SIZE, IMAGE_SIZE)

    def tensors(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` (default all) examples in memory: ``(x, c)``."""
        items = np.arange(len(self) if n is None else min(n, len(self)))
        return self.images(items), self.conditions(items)


def open_sprites(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    condition: bool = False,
    grid: SpriteGrid | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> SpritesDataset:
    """The ``split`` of the sprites (the first ``n`` of a seeded 80/10/10 permutation) as a
    :class:`SpritesDataset`, rendering the cache file on first use (``grid``: by default
    :data:`DEFAULT_GRID`, the full one)."""
    grid = DEFAULT_GRID if grid is None else grid
    path = ensure_cache(grid, cache_dir, progress)
    index = split_index(len(grid), split, seed, n)
    return SpritesDataset(path, index, grid, condition)


#: dSprites' file: images ``imgs`` (737280, 64, 64) uint8 and ``latents_classes`` /
#: ``latents_values`` (737280, 6), whose first column (colour) has one value.
DSPRITES_KEYS = ("imgs", "latents_classes", "latents_values")


def is_dsprites_npz(path: str | os.PathLike) -> bool:
    """True when ``path`` is a ``.npz`` holding dSprites' arrays (``imgs``, ``latents_*``)."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = {Path(name).stem for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError):
        return False
    return set(DSPRITES_KEYS) <= names


def _npz_member_rows(archive: zipfile.ZipFile, key: str):
    """A file object at the first byte of the array ``key`` of a ``.npz``, its shape and
    dtype (read without loading it)."""
    f = archive.open(f"{key}.npy")
    shape, fortran, dtype = read_npy_header(f)
    if fortran:
        raise DataError(f"the array {key} is stored in Fortran order; save it in C order")
    return f, shape, dtype


def open_dsprites_npz(
    path: str | os.PathLike,
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    condition: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> SpritesDataset:
    """The original dSprites file as a :class:`SpritesDataset`: its images are packed once
    into the cache folder (a file named by a hash of the archive's path, size and time), its
    ``latents_classes`` and ``latents_values`` without the constant colour are the factors."""
    from tqdm.auto import tqdm

    from genzoo.io import atomic_write

    path = Path(path)
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    packed = cache_folder(cache_dir) / f"dsprites-npz-{key[:16]}.bits"
    with np.load(path, allow_pickle=False) as arrays:
        classes = np.asarray(arrays["latents_classes"])[:, 1:].astype(np.int64)
        values = np.asarray(arrays["latents_values"])[:, 1:].astype(np.float64)
    values[:, 0] -= 1  # dSprites' shapes are 1..3; genzoo's 0..2
    sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
    if len(sizes) != 5 or sizes[0] != len(SHAPES) or min(sizes) < 1 or sizes[3] != sizes[4]:
        raise DataError(f"{path}: latents_classes give factor sizes {sizes}, not dSprites' "
                        "(3 shapes, scales, orientations, posX, posY)")  # fmt: skip
    grid = SpriteGrid(sizes[1], sizes[2], sizes[3])
    if len(classes) != len(grid) or not np.array_equal(classes, grid.classes(np.arange(len(grid)))):
        raise DataError(f"{path}: the images are not the full factor grid in dSprites' order "
                        "(row-major over shape, scale, orientation, posX, posY)")  # fmt: skip
    table = []
    for k, size in enumerate(sizes):  # factor k's values, the others at class 0
        classes_k = np.zeros((size, 5), dtype=np.int64)
        classes_k[:, k] = np.arange(size)
        table.append(values[grid.index(classes_k), k])
    del classes, values
    total = len(grid)
    if not packed.exists() or packed.stat().st_size != total * ROW_BYTES:
        with zipfile.ZipFile(path) as archive:
            f, shape, dtype = _npz_member_rows(archive, "imgs")
            if tuple(shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE) or shape[0] != total:
                raise DataError(f"{path}: imgs has shape {shape}, not ({total}, 64, 64)")
            chunk = 4096

            def write(tmp: str) -> None:
                with open(tmp, "wb") as out:
                    for start in tqdm(range(0, total, chunk), desc="packing dSprites",
                                      disable=not progress, leave=False):  # fmt: skip
                        rows = min(chunk, total - start)
                        raw = f.read(rows * IMAGE_SIZE * IMAGE_SIZE * dtype.itemsize)
                        images = np.frombuffer(raw, dtype=dtype).reshape(rows, -1)
                        out.write(np.packbits(images != 0, axis=1).tobytes())

            atomic_write(packed, write)
    index = split_index(total, split, seed, n)
    return SpritesDataset(packed, index, grid, condition, tuple(table))
