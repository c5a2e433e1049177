"""Tests of folders of PNG/JPEG images as data (``--data path/to/folder``, needs Pillow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genzoo.data import dataset_info, images, load_dataset
from genzoo.errors import DataError

Image = pytest.importorskip("PIL.Image")


def _folder(tmp_path):
    """12 images: grey and RGB, of mixed sizes, one in a sub-folder, plus a non-image file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "pictures"
    (folder / "more").mkdir(parents=True)
    sizes = [(40, 30), (28, 28), (64, 48), (33, 50)]
    for k in range(12):
        w, h = sizes[k % 4]
        if k % 3 == 0:
            array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        else:
            array = rng.integers(0, 256, (h, w), dtype=np.uint8)
        where = folder / "more" if k == 11 else folder
        suffix = ".jpg" if k == 5 else ".png"
        Image.fromarray(array).save(where / f"img{k:02d}{suffix}")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_loads_at_the_requested_size(tmp_path) -> None:
    folder = _folder(tmp_path)
    levels = images.read_image_folder(folder, image_size=16)
    assert levels.shape == (12, 3, 16, 16) and levels.dtype == np.uint8  # RGB wins: 3 channels
    grey = levels[1]  # img01 is grey: its three channels are equal
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[0], grey[2])
    info = dataset_info(f"{folder}?image_size=16")
    assert info.kind == "image" and info.shape == (3, 16, 16) and info.levels == 256
    train = load_dataset(f"{folder}?image_size=16", split="train")
    test = load_dataset(folder, split="test", image_size=16)
    assert train.shape == (10, 3, 16, 16) and test.shape == (1, 3, 16, 16)
    assert train.dtype == torch.get_default_dtype()
    assert torch.equal(train, train.round()) and train.max() <= 255 and train.min() >= 0
    # the 28x28 image scaled to 16x16: what Pillow gives for the same resize
    with Image.open(folder / "img01.png") as im:
        expected = np.asarray(im.resize((16, 16), Image.Resampling.BICUBIC))
    assert np.array_equal(levels[1, 0], expected)


def test_grey_folder_keeps_one_channel_and_centre_crops(tmp_path) -> None:
    folder = tmp_path / "grey"
    folder.mkdir()
    wide = np.zeros((10, 30), dtype=np.uint8)
    wide[:, 10:20] = 255  # the centre third is white: a centre crop keeps only it
    Image.fromarray(wide).save(folder / "a.png")
    Image.fromarray(np.full((10, 10), 7, np.uint8)).save(folder / "b.png")
    x = images.read_image_folder(folder, image_size=10)
    assert x.shape == (2, 1, 10, 10)
    assert (x[0] == 255).all() and (x[1] == 7).all()


def test_mixed_sizes_need_an_image_size(tmp_path) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(DataError, match="different sizes.*--image-size"):
        images.read_image_folder(folder)


def test_corrupt_image_is_named_and_nothing_else_is_lost(tmp_path) -> None:
    folder = _folder(tmp_path)
    bad = folder / "img03.png"
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated PNG
    with pytest.raises(DataError, match=r"1 of 12 image files.*img03\.png") as err:
        load_dataset(folder, image_size=16)
    assert "img01" not in str(err.value)  # only the bad file is named
    bad.unlink()  # once it is removed, the other 11 load
    assert images.read_image_folder(folder, image_size=16).shape == (11, 3, 16, 16)


def test_folder_errors(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no"):
        load_dataset(empty)
    folder = _folder(tmp_path)
    with pytest.raises(DataError, match="image_size must be a positive"):
        load_dataset(folder, image_size=0)
    with pytest.raises(DataError, match="tokens"):
        load_dataset(folder, tokens="words")


def test_train_and_eval_on_a_folder_with_image_size(tmp_path, capsys) -> None:
    import json

    from genzoo import cli

    folder = _folder(tmp_path)
    out = str(tmp_path / "run")
    argv = ["train", "made", "--data", str(folder), "--image-size", "4", "--steps", "2",
            "--batch-size", "4", "--out", out, "--set", "hidden=[8]"]  # fmt: skip
    assert cli.main(argv) == 0
    capsys.readouterr()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["dataset"].endswith("pictures?image_size=4")
    assert cli.main(["eval", out]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_test"] == 1 and result["bits_per_dim"] > 0
