"""Tests of the sprites dataset (a re-rendering in the dSprites design) and its cache file."""

from __future__ import annotations

import hashlib
import os
import zipfile

import numpy as np
import pytest
import torch

from genzoo.data import dataset_info, is_streamed, load_dataset, open_dataset, sprites
from genzoo.errors import DataError

SMALL = sprites.SpriteGrid(scales=2, orientations=3, positions=4)  # 288 images


@pytest.fixture
def small_cache(tmp_path, monkeypatch):
    """``sprites`` on the small grid, cached in a temporary folder."""
    monkeypatch.setenv("GENZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(sprites, "DEFAULT_GRID", SMALL)
    return tmp_path


def test_factor_grid_is_complete() -> None:
    grid = sprites.FULL_GRID
    assert grid.sizes == (3, 6, 40, 32, 32) and len(grid) == 737_280
    classes = grid.classes(np.arange(len(grid)))
    packed = classes @ (64 ** np.arange(4, -1, -1))  # each class in its own base-64 digit
    assert len(np.unique(packed)) == 737_280  # every combination, once
    assert np.array_equal(grid.index(classes), np.arange(len(grid)))
    assert np.array_equal(classes[1], [0, 0, 0, 0, 1])  # dSprites' order: posY fastest
    _, scales, angles, pos_x, pos_y = grid.factor_values()
    assert scales[0] == 0.5 and scales[-1] == 1.0 and len(scales) == 6
    assert angles[0] == 0.0 and angles[-1] < 2 * np.pi and len(angles) == 40
    assert pos_x[0] == 0.0 and pos_x[-1] == 1.0 and np.array_equal(pos_x, pos_y)
    values = grid.values(np.array([len(grid) - 1]))
    assert np.allclose(values, [[2, 1.0, 2 * np.pi * 39 / 40, 1.0, 1.0]])


def test_rendering_is_deterministic_and_shaped() -> None:
    index = (np.arange(512) * 1439 + 7) % len(sprites.FULL_GRID)
    images = sprites.render(sprites.FULL_GRID, index)
    assert images.shape == (512, 64, 64) and set(np.unique(images)) == {0, 1}
    digest = hashlib.sha256(images.tobytes()).hexdigest()
    assert digest == "b98135a05bb852dfb2828f1dea96713b6fd3c6c205d8322ae0117eb289be2168"
    # the factors do what they say: bigger scale, more pixels; posX moves the sprite right
    grid = sprites.FULL_GRID
    small, big = sprites.render(grid, grid.index(np.array([[0, 0, 0, 16, 16], [0, 5, 0, 16, 16]])))
    assert big.sum() > 3 * small.sum() > 0
    left, right = sprites.render(grid, grid.index(np.array([[2, 5, 7, 0, 9], [2, 5, 7, 31, 9]])))
    cols = np.arange(64)
    assert (right.sum(0) * cols).sum() / right.sum() > (left.sum(0) * cols).sum() / left.sum() + 30
    assert left.sum() == right.sum()  # a translation: the same pixels, whole-pixel shifts


def test_cache_file_is_created_once_and_reused(tmp_path) -> None:
    path = sprites.ensure_cache(SMALL, tmp_path, progress=False)
    assert path.stat().st_size == len(SMALL) * 512  # bit-packed: 512 bytes an image
    first = path.stat()
    again = sprites.ensure_cache(SMALL, tmp_path, progress=False)
    assert again == path and path.stat().st_mtime_ns == first.st_mtime_ns
    assert path.stat().st_ino == first.st_ino
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left
    ds = sprites.open_sprites("test", grid=SMALL, cache_dir=tmp_path, progress=False)
    expected = sprites.render(SMALL, ds.index)
    assert torch.equal(ds.images(np.arange(len(ds)))[:, 0], torch.as_tensor(expected).float())


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_cache_file_is_detected_and_rebuilt(tmp_path, damage) -> None:
    path = sprites.ensure_cache(SMALL, tmp_path, progress=False)
    good = path.read_bytes()
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(len(good) // 3)
    else:  # same size, wrong bits in the first block
        path.write_bytes(bytes(b ^ 0xFF for b in good[:100]) + good[100:])
    sprites.ensure_cache(SMALL, tmp_path, progress=False)
    assert path.read_bytes() == good


def test_dataset_items_batches_conditions_and_splits(small_cache) -> None:
    train = sprites.open_sprites("train", condition=True, progress=False)
    val, test = (sprites.open_sprites(s, progress=False) for s in ("val", "test"))
    assert len(train) + len(val) + len(test) == len(SMALL)
    assert not set(train.index) & set(test.index) and not set(train.index) & set(val.index)
    x, c = train[5]
    assert x.shape == (1, 64, 64) and x.dtype == torch.get_default_dtype() and c.shape == (5,)
    assert torch.equal(x[0], torch.as_tensor(sprites.render(SMALL, train.index[5:6])[0]).float())
    assert np.allclose(c.numpy(), SMALL.values(train.index[5:6])[0])
    assert np.array_equal(train.factor_classes[5], SMALL.classes(train.index[5:6])[0])
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=False)
    xb, cb = next(iter(loader))
    assert xb.shape == (32, 1, 64, 64) and cb.shape == (32, 5)
    assert torch.equal(xb[5], x)
    with pytest.raises(IndexError):
        train[len(train)]


def test_registered_dataset_loads_and_streams(small_cache) -> None:
    info = dataset_info("sprites")
    assert info.kind == "image" and info.levels == 2 and info.shape == (1, 64, 64)
    assert info.condition.name == "factors" and info.condition.size == 5
    assert "dSprites" in info.description and "NOT the original" in info.description
    x = load_dataset("sprites", split="train", n=20, seed=1)
    assert x.shape == (20, 1, 64, 64) and set(x.unique().tolist()) <= {0.0, 1.0}
    x2, c = load_dataset("sprites", split="train", n=20, seed=1, condition=True)
    assert torch.equal(x, x2) and c.shape == (20, 5)
    assert not torch.equal(x, load_dataset("sprites", split="train", n=20, seed=2))
    assert is_streamed("sprites") and not is_streamed("digits")
    streamed = open_dataset("sprites", split="train", seed=1)
    assert isinstance(streamed, torch.utils.data.Dataset) and len(streamed) == 230
    assert torch.equal(streamed[0], x[0])


def _fake_dsprites(path, grid: sprites.SpriteGrid) -> None:
    """A file laid out like dSprites' ``dsprites_ndarray_*.npz`` (colour column, shapes 1..3)."""
    index = np.arange(len(grid))
    classes = np.concatenate([np.zeros((len(grid), 1), np.int64), grid.classes(index)], 1)
    values = np.concatenate([np.ones((len(grid), 1)), grid.values(index)], 1)
    values[:, 1] += 1
    np.savez_compressed(path, imgs=sprites.render(grid, index), latents_classes=classes,
                        latents_values=values)  # fmt: skip


def test_original_dsprites_file_is_read_by_path(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GENZOO_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "dsprites_ndarray_test.npz"
    _fake_dsprites(path, SMALL)
    assert sprites.is_dsprites_npz(path)
    info = dataset_info(str(path))
    assert info.condition.name == "factors" and info.levels == 2
    x, c = load_dataset(str(path), split="val", n=7, condition=True)
    ds = sprites.open_dsprites_npz(path, "val", n=7, progress=False)
    expected = sprites.render(SMALL, ds.index)
    assert torch.equal(x[:, 0], torch.as_tensor(expected).float())
    assert np.allclose(c.numpy(), SMALL.values(ds.index))  # shapes back to 0..2
    assert ds.factor_sizes == SMALL.sizes
    assert len(list((tmp_path / "cache").iterdir())) == 1  # packed once


def test_grid_arguments_are_checked() -> None:
    with pytest.raises(DataError, match="positions"):
        sprites.SpriteGrid(positions=50)
    with pytest.raises(DataError, match="scales"):
        sprites.SpriteGrid(scales=0)


def test_not_a_dsprites_npz(tmp_path) -> None:
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros((3, 2)))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert not sprites.is_dsprites_npz(plain) and not sprites.is_dsprites_npz(bad)
    assert zipfile.is_zipfile(plain) and os.path.exists(bad)
