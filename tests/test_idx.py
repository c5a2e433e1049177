"""Tests of the IDX reader and the MNIST / Fashion-MNIST datasets, on small files written here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from genzoo.data import dataset_info, idx, list_datasets, load_dataset
from genzoo.errors import DataError

N_TRAIN, N_TEST = 30, 8  # the training file splits 25 / 5 (the last sixth validates)


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file holding ``array``, written by hand from the format's description."""
    dtype = np.dtype(idx.IDX_DTYPES[code])
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


@pytest.fixture
def mnist_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """MNIST-layout files in $GENZOO_DATA/mnist: training images plain, the rest gzip."""
    root = tmp_path / "data"
    monkeypatch.setenv("GENZOO_DATA", str(root))
    arrays = {
        "train": make_images(N_TRAIN, 0),
        "test": make_images(N_TEST, 1),
        "train_labels": np.arange(N_TRAIN, dtype=np.uint8) % 10,
    }
    write(root / "mnist" / "train-images-idx3-ubyte", idx_bytes(arrays["train"]))
    write(root / "mnist" / "t10k-images-idx3-ubyte.gz", idx_bytes(arrays["test"]), gz=True)
    labels = idx_bytes(arrays["train_labels"])
    write(root / "mnist" / "train-labels-idx1-ubyte.gz", labels, gz=True)
    return arrays


def test_registered_with_levels_and_shapes() -> None:
    names = {info.name for info in list_datasets()}
    assert {"mnist", "mnist-binary", "fashion-mnist", "fashion-mnist-binary"} <= names
    info = dataset_info("mnist")
    assert (info.kind, info.shape, info.levels, info.has_true_density) == (
        "image",
        (1, 28, 28),
        256,
        False,
    )
    assert dataset_info("fashion-mnist-binary").levels == 2
    assert "local IDX files" in info.description


def test_splits_round_trip_plain_and_gzip(mnist_dir: dict[str, np.ndarray]) -> None:
    train = load_dataset("mnist", "train")
    val = load_dataset("mnist", "val")
    test = load_dataset("mnist", "test")
    assert train.shape == (25, 1, 28, 28) and val.shape == (5, 1, 28, 28)
    assert test.shape == (N_TEST, 1, 28, 28) and train.dtype == torch.get_default_dtype()
    images = torch.from_numpy(mnist_dir["train"]).double()[:, None]
    torch.testing.assert_close(torch.cat([train, val]).double(), images, rtol=0, atol=0)
    torch.testing.assert_close(
        test.double(), torch.from_numpy(mnist_dir["test"]).double()[:, None], rtol=0, atol=0
    )
    assert train.min() == 0 and train.max() == 255  # the full 0..255 range of 256 levels
    assert load_dataset("mnist", "train", n=4).equal(train[:4])

    binary = load_dataset("mnist-binary", "val")
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert binary.equal((val >= 128).to(binary.dtype))

    labels = idx.load_labels("mnist", "val")
    assert labels.tolist() == mnist_dir["train_labels"][25:].tolist()


def test_files_are_read_not_changed(mnist_dir: dict[str, np.ndarray], tmp_path: Path) -> None:
    folder = tmp_path / "data" / "mnist"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    load_dataset("mnist", "train")
    load_dataset("mnist-binary", "test")
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert before == after


def test_other_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    monkeypatch.setenv("GENZOO_DATA", str(root))
    x, y = make_images(12, 2), make_images(6, 3)
    # MNIST files directly in the folder, with the dotted names of some re-uploads
    write(root / "train-images.idx3-ubyte", idx_bytes(x))
    assert load_dataset("mnist", "val").shape == (2, 1, 28, 28)
    # Fashion-MNIST in torchvision's layout; the MNIST files at the top are not taken for it
    with pytest.raises(DataError, match="fashion-mnist"):
        load_dataset("fashion-mnist", "train")
    write(root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz", idx_bytes(y), gz=True)
    fashion = load_dataset("fashion-mnist", "train")
    assert fashion.equal(torch.from_numpy(y[:5, None]).to(fashion.dtype))


def test_missing_files_name_the_expected_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "empty"
    monkeypatch.setenv("GENZOO_DATA", str(root))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", "test")
    message = str(err.value)
    assert str(root / "mnist" / "t10k-images-idx3-ubyte") in message
    assert str(root / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "GENZOO_DATA" in message and "downloads nothing" in message
    with pytest.raises(DataError, match=str(root / "fashion-mnist" / "train-images")):
        load_dataset("fashion-mnist-binary", "val")
    monkeypatch.delenv("GENZOO_DATA")
    assert idx.data_root() == Path.home() / ".genzoo" / "data"
    assert not root.exists()  # nothing was created


GOOD = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
MALFORMED = {
    "empty": (b"", "truncated"),
    "short magic": (b"\x00\x00", "truncated"),
    "bad magic": (b"PK\x03\x04" + GOOD[4:], "not an IDX file"),
    "type code": (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX type code 0x07"),
    "zero dims": (b"\x00\x00\x08\x00", "0 dimensions"),
    "short header": (GOOD[:9], "header"),
    "truncated data": (GOOD[:-10], "truncated.*2352 bytes of data, but 2342"),
    "extra bytes": (GOOD + b"\x00", "extra bytes"),
    "truncated gzip": (gzip.compress(GOOD)[:-12], "truncated gzip"),
    "labels": (idx_bytes(np.zeros(3, dtype=np.uint8)), "labels .*not images"),
    "float images": (idx_bytes(np.zeros((2, 28, 28)), 0x0D), "unsigned bytes"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_files_raise_clear_errors(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, match = MALFORMED[case]
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    write(path, data)
    with pytest.raises(DataError, match=match) as err:
        idx.read_idx_images(path)
    assert str(path) in str(err.value)
    monkeypatch.setenv("GENZOO_DATA", str(tmp_path))  # the same error through load_dataset
    with pytest.raises(DataError, match=match):
        load_dataset("mnist")


def test_wrong_image_size_and_images_as_labels(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENZOO_DATA", str(tmp_path))
    small = np.zeros((6, 8, 8), dtype=np.uint8)
    write(tmp_path / "mnist" / "train-images-idx3-ubyte", idx_bytes(small))
    with pytest.raises(DataError, match="8x8 pixels; 'mnist' expects 28x28"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="not 1-D labels"):
        idx.read_idx_labels(tmp_path / "mnist" / "train-images-idx3-ubyte")


@pytest.mark.parametrize("code", sorted(idx.IDX_DTYPES))
def test_every_type_code_round_trips_big_endian(code: int, tmp_path: Path) -> None:
    values = np.array([[0, 1, 100], [-7, 2**6, 3]]) if code != 0x08 else np.arange(6).reshape(2, 3)
    if code == 0x08:
        values = values + 250  # bytes above 127 stay unsigned
    path = write(tmp_path / "x.idx", idx_bytes(values, code), gz=code % 2 == 0)
    out = idx.read_idx(path)
    assert out.dtype == np.dtype(idx.IDX_DTYPES[code]).newbyteorder("=")
    assert out.shape == (2, 3) and out.tolist() == values.tolist()


def test_load_dataset_takes_an_idx_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = make_images(20, 4)
    gz = write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(images), gz=True)
    x = load_dataset(str(gz), "train", seed=3)
    assert x.shape == (16, 1, 28, 28)  # the seeded 80/10/10 split of user files
    parts = [load_dataset(gz, s, seed=3) for s in ("train", "val", "test")]
    rows = sorted(map(tuple, torch.cat(parts).flatten(1).long().tolist()))
    assert rows == sorted(map(tuple, images.reshape(20, -1).tolist()))
    labels = write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.arange(20, dtype=np.uint8)))
    assert load_dataset(labels, "val").shape == (2, 1)
    monkeypatch.chdir(tmp_path)  # a bare IDX file name is a path, not an unknown dataset name
    assert load_dataset("train-labels-idx1-ubyte", "test").shape == (2, 1)


def test_a_model_trains_on_mnist_binary(mnist_dir: dict[str, np.ndarray], tmp_path) -> None:
    from genzoo.workflow import evaluate, train

    torch.set_num_threads(1)
    model, _ = train("made", "mnist-binary", out=tmp_path / "run", hparams={"hidden": [32]},
                     steps=3, batch_size=10, progress=False)  # fmt: skip
    assert model.sample(2).shape == (2, 1, 28, 28)
    result = evaluate(model, "mnist-binary")
    assert result["n_test"] == N_TEST and np.isfinite(result["nll"]) and result["nll"] > 0
