"""Tests of genzoo.data: toy densities, digits, tabular tables, user files, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.datasets
import torch

from genzoo.data import (
    dataset_info,
    dequantize,
    list_datasets,
    load_dataset,
    true_entropy,
    true_log_prob,
)
from genzoo.data.toy2d import TOY_NAMES
from genzoo.errors import DataError, DensityUnavailable, UnknownNameError

REFERENCE_ENTROPY = {
    "moons": 2.39388,
    "circles": 3.26814,
    "rings": 2.62318,
    "swissroll": 2.66965,
    "8gaussians": 2.83188,
    "25gaussians": -2.01385,
    "checkerboard": math.log(32),
    "2spirals": 2.64545,
    "pinwheel": 2.31779,
}


# ------------------------------------------------------------------------------------- toys


@pytest.mark.parametrize("name", TOY_NAMES)
def test_monte_carlo_entropy_matches_reference(name: str) -> None:
    n = 200_000
    x = load_dataset(name, split="test", n=n, seed=7).double()
    lp = true_log_prob(name, x)
    assert lp.shape == (n,) and lp.dtype == torch.float64
    assert torch.isfinite(lp).all()
    entropy = -lp.mean().item()
    stderr = lp.std().item() / math.sqrt(n)
    assert stderr < 0.003  # well below the 0.01 tolerance
    assert abs(entropy - REFERENCE_ENTROPY[name]) < 0.01, (name, entropy)
    assert true_entropy(name) == pytest.approx(REFERENCE_ENTROPY[name])


# box half-width and grid step for each toy; the step is below the noise scale so the
# midpoint rule is accurate, and the box holds all but a negligible part of the mass.
GRIDS = {
    "swissroll": (4.5, 0.04),
    "circles": (5.0, 0.05),
    "moons": (4.5, 0.04),
    "8gaussians": (5.5, 0.05),
    "25gaussians": (1.8, 0.01),
    "rings": (4.0, 0.025),
    "pinwheel": (6.5, 0.05),
    "2spirals": (4.5, 0.04),
    "checkerboard": (4.5, 0.05),
}


@pytest.mark.parametrize("name", TOY_NAMES)
def test_true_density_integrates_to_one(name: str) -> None:
    half, h = GRIDS[name]
    g = torch.arange(-half + h / 2, half, h, dtype=torch.float64)
    grid = torch.cartesian_prod(g, g)
    if name == "pinwheel":  # mass beyond |y| = 6.5 is below 1e-10 (radial 7 std out)
        grid = grid[grid.norm(dim=1) < 6.5]
    total = true_log_prob(name, grid).exp().sum().item() * h * h
    assert total == pytest.approx(1.0, abs=2e-3), (name, total)


def test_checkerboard_support() -> None:
    lp = true_log_prob("checkerboard", torch.tensor([[1.0, 1.0], [1.0, 3.0], [5.0, 0.0]]))
    assert lp[0] == pytest.approx(-math.log(32))
    assert lp[1] == -math.inf and lp[2] == -math.inf


def test_far_points_have_finite_log_density() -> None:
    x = torch.tensor([[8.0, -8.0], [0.0, 6.0], [-5.0, 1.0]], dtype=torch.float64)
    for name in ("moons", "swissroll", "2spirals", "pinwheel", "circles", "rings"):
        lp = true_log_prob(name, x)
        assert torch.isfinite(lp).all() and (lp < -10).all(), name


@pytest.mark.parametrize("name", ["moons", "pinwheel", "2spirals", "25gaussians"])
def test_toys_seeded_and_splits_differ(name: str) -> None:
    a = load_dataset(name, split="train", n=500, seed=3)
    b = load_dataset(name, split="train", n=500, seed=3)
    assert a.shape == (500, 2) and a.dtype == torch.get_default_dtype()
    assert torch.equal(a, b)
    assert not torch.equal(a, load_dataset(name, split="test", n=500, seed=3))
    assert not torch.equal(a, load_dataset(name, split="val", n=500, seed=3))
    assert not torch.equal(a, load_dataset(name, split="train", n=500, seed=4))


def test_toys_do_not_touch_global_random_state() -> None:
    np.random.seed(0)
    torch.manual_seed(0)
    before_np, before_torch = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    for name in TOY_NAMES:
        load_dataset(name, n=100)
    assert np.array_equal(np.random.get_state()[1], before_np)
    assert torch.equal(torch.get_rng_state(), before_torch)


def test_default_toy_size() -> None:
    assert load_dataset("checkerboard").shape == (10_000, 2)


# ----------------------------------------------------------------------------------- digits


def test_digits_splits_and_shapes() -> None:
    sizes = {s: load_dataset("digits", split=s).shape for s in ("train", "val", "test")}
    assert sizes == {"train": (1000, 1, 8, 8), "val": (350, 1, 8, 8), "test": (447, 1, 8, 8)}
    x = load_dataset("digits", split="val")
    assert torch.equal(x, x.round()) and x.min() == 0 and x.max() == 16
    assert torch.equal(load_dataset("digits", split="val", n=10), x[:10])
    info = dataset_info("digits")
    assert (info.kind, info.shape, info.levels, info.has_true_density) == (
        "image",
        (1, 8, 8),
        17,
        False,
    )


def test_digits_binary() -> None:
    x = load_dataset("digits-binary", split="test")
    assert x.shape == (447, 1, 8, 8)
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x, (load_dataset("digits", split="test") >= 8).to(x.dtype))
    assert dataset_info("digits-binary").levels == 2


def test_digits_categorical_baseline_bits_per_dim() -> None:
    train = load_dataset("digits", split="train").long().reshape(1000, 64)
    test = load_dataset("digits", split="test").long().reshape(447, 64)
    counts = torch.ones(64, 17, dtype=torch.float64)  # Laplace smoothing
    counts.scatter_add_(1, train.T, torch.ones(64, 1000, dtype=torch.float64))
    log_p = (counts / counts.sum(1, keepdim=True)).log()
    nll = -log_p.gather(1, test.T).sum() / test.numel()
    bits = nll.item() / math.log(2)
    assert bits == pytest.approx(2.40, abs=0.1)
    assert math.log2(17) == pytest.approx(4.09, abs=0.01)  # the uniform reference


def test_dequantize() -> None:
    x = load_dataset("digits", split="val", n=20)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    y = dequantize(x, 17, g1)
    assert torch.equal(y, dequantize(x, 17, g2))
    assert y.shape == x.shape and (y >= 0).all() and (y < 1).all()
    assert torch.equal(torch.floor(y * 17), x)
    with pytest.raises(DataError, match="0..1"):
        dequantize(x, 2)


# ---------------------------------------------------------------------------------- tabular


@pytest.mark.parametrize(
    "name,rows,cols", [("wine", 178, 13), ("iris", 150, 4), ("breast-cancer", 569, 30)]
)
def test_tabular_standardised_split(name: str, rows: int, cols: int) -> None:
    parts = {s: load_dataset(name, split=s, seed=2).double() for s in ("train", "val", "test")}
    assert sum(p.shape[0] for p in parts.values()) == rows
    assert parts["train"].shape == (round(0.7 * rows), cols)
    assert parts["val"].shape[0] == round(0.1 * rows)
    torch.testing.assert_close(
        parts["train"].mean(0), torch.zeros(cols, dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        parts["train"].std(0, unbiased=False),
        torch.ones(cols, dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )
    assert dataset_info(name).kind == "tabular" and dataset_info(name).shape == (cols,)
    # the splits partition the table: z-scoring over all rows undoes any per-column affine map
    raw = getattr(sklearn.datasets, LOADERS[name])().data
    together = _zscore(torch.cat(list(parts.values())).numpy())
    np.testing.assert_allclose(
        _sorted_rows(torch.as_tensor(together)),
        _sorted_rows(torch.as_tensor(_zscore(raw))),
        atol=1e-5,
    )
    assert torch.equal(parts["test"], load_dataset(name, split="test", seed=2).double())
    assert not torch.equal(parts["test"], load_dataset(name, split="test", seed=3).double())
    assert load_dataset(name, split="test", n=5, seed=2).shape == (5, cols)


LOADERS = {"wine": "load_wine", "iris": "load_iris", "breast-cancer": "load_breast_cancer"}


def _zscore(a: np.ndarray) -> np.ndarray:
    return (a - a.mean(0)) / a.std(0)


# ------------------------------------------------------------------------------- user files


def _all_splits(path, seed=0) -> torch.Tensor:
    return torch.cat([load_dataset(path, split=s, seed=seed) for s in ("train", "val", "test")])


def _sorted_rows(x: torch.Tensor) -> np.ndarray:
    a = x.reshape(x.shape[0], -1).double().numpy()
    return a[np.lexsort(a.T[::-1])]


def test_npy_round_trip(tmp_path) -> None:
    data = np.random.default_rng(0).normal(size=(100, 3))
    path = tmp_path / "data.npy"
    np.save(path, data)
    sizes = [load_dataset(path, split=s).shape[0] for s in ("train", "val", "test")]
    assert sizes == [80, 10, 10]
    np.testing.assert_allclose(
        _sorted_rows(_all_splits(path)),
        _sorted_rows(torch.as_tensor(data, dtype=torch.get_default_dtype())),
    )
    assert torch.equal(load_dataset(str(path), seed=1), load_dataset(path, seed=1))
    assert not torch.equal(load_dataset(path, seed=1), load_dataset(path, seed=2))
    assert load_dataset(path, n=7).shape == (7, 3)


def test_npy_one_dimensional_and_images(tmp_path) -> None:
    np.save(tmp_path / "v.npy", np.arange(50))
    assert load_dataset(tmp_path / "v.npy").shape == (40, 1)
    np.save(tmp_path / "im.npy", np.zeros((20, 1, 4, 4), dtype=np.uint8))
    assert load_dataset(tmp_path / "im.npy", split="test").shape == (2, 1, 4, 4)


def test_npz_keys(tmp_path) -> None:
    data = np.arange(60.0).reshape(30, 2)
    np.savez(tmp_path / "single.npz", whatever=data)
    np.savez(tmp_path / "keyed.npz", labels=np.arange(30), x=data)
    for name in ("single.npz", "keyed.npz"):
        got = _sorted_rows(_all_splits(tmp_path / name))
        np.testing.assert_array_equal(got, data)
    np.savez(tmp_path / "bad.npz", features=data, labels=np.arange(30))
    with pytest.raises(DataError, match="features, labels") as err:
        load_dataset(tmp_path / "bad.npz")
    assert "'x'" in str(err.value)


def test_csv_with_and_without_header(tmp_path) -> None:
    rows = np.arange(40.0).reshape(20, 2) / 4
    body = "\n".join(f"{a},{b}" for a, b in rows)
    (tmp_path / "h.csv").write_text("first,second\n" + body + "\n")
    (tmp_path / "n.csv").write_text(body + "\n\n")
    for name in ("h.csv", "n.csv"):
        np.testing.assert_array_equal(_sorted_rows(_all_splits(tmp_path / name)), rows)


def test_bad_files_raise_helpful_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "missing.npy")
    with pytest.raises(DataError, match="no such file"):
        load_dataset("some/folder/missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_dataset(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        load_dataset(tmp_path / "blank.csv")
    (tmp_path / "header_only.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        load_dataset(tmp_path / "header_only.csv")
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,abc\n5,6\n")
    with pytest.raises(DataError, match=r"row 3, column 2 holds 'abc'"):
        load_dataset(tmp_path / "text.csv")
    (tmp_path / "semi.csv").write_text("1;2\n3;4\n")
    with pytest.raises(DataError, match="';'"):
        load_dataset(tmp_path / "semi.csv")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(DataError, match="row 2 has 1 values"):
        load_dataset(tmp_path / "ragged.csv")
    nan = np.ones((30, 2))
    nan[4, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(DataError, match=r"1 NaN and 0 infinite values in 1 rows \(rows 4\)"):
        load_dataset(tmp_path / "nan.npy")
    (tmp_path / "inf.csv").write_text("1,2\n3,inf\n")
    with pytest.raises(DataError, match="0 NaN and 1 infinite"):
        load_dataset(tmp_path / "inf.csv")
    np.save(tmp_path / "scalar.npy", np.array(3.0))
    with pytest.raises(DataError, match="0-d array"):
        load_dataset(tmp_path / "scalar.npy")
    np.save(tmp_path / "none.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match="empty"):
        load_dataset(tmp_path / "none.npy")
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    with pytest.raises(DataError, match="not numbers"):
        load_dataset(tmp_path / "strings.npy")
    (tmp_path / "data.txt").write_text("1 2\n")  # text now, but far too short
    with pytest.raises(DataError, match="longer text"):
        load_dataset(tmp_path / "data.txt")
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"neither an array file nor UTF-8 text.*\.npy, \.npz"):
        load_dataset(tmp_path / "data.bin")
    np.save(tmp_path / "tiny.npy", np.zeros((3, 2)))
    with pytest.raises(DataError, match="at least 10 examples"):
        load_dataset(tmp_path / "tiny.npy", split="val")


def test_dataset_info_of_array_files(tmp_path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "binary.npy", rng.integers(0, 2, size=(50, 3)))
    np.save(tmp_path / "floats.npy", rng.normal(size=(50, 3)))
    np.save(tmp_path / "points.npy", rng.normal(size=(40, 2)))
    np.save(tmp_path / "images.npy", rng.integers(0, 200, size=(20, 1, 4, 4)).astype(np.uint8))
    binary = dataset_info(tmp_path / "binary.npy")
    assert (binary.kind, binary.shape, binary.levels) == ("tabular", (3,), 2)
    assert binary.name == str(tmp_path / "binary.npy") and not binary.has_true_density
    assert "50 examples" in binary.description
    floats = dataset_info(str(tmp_path / "floats.npy"))
    assert (floats.kind, floats.shape, floats.levels) == ("tabular", (3,), None)
    assert dataset_info(tmp_path / "points.npy").kind == "points"
    images = dataset_info(tmp_path / "images.npy")
    maximum = int(np.load(tmp_path / "images.npy").max())
    assert (images.kind, images.shape, images.levels) == ("image", (1, 4, 4), maximum + 1)
    (tmp_path / "t.csv").write_text("\n".join(f"{i % 3},{i % 2}" for i in range(20)) + "\n")
    assert dataset_info(tmp_path / "t.csv").levels == 3
    np.save(tmp_path / "binary.npy", rng.integers(0, 5, size=(50, 3)))  # edited: read again
    assert dataset_info(tmp_path / "binary.npy").levels == 5
    with pytest.raises(DataError, match="text files only"):
        load_dataset(tmp_path / "floats.npy", tokens="words")
    with pytest.raises(DataError, match="no such file"):
        dataset_info(tmp_path / "missing.npy")
    assert dataset_info("moons") is dataset_info("moons")  # shipped names unchanged


def test_dataset_info_and_splits_of_a_text_file(tmp_path) -> None:
    path = tmp_path / "story"  # no extension: text by content
    body = "".join(f"line {i}: the fox saw {i % 7} hens.\n" for i in range(60))
    path.write_text(body, encoding="utf-8")
    info = dataset_info(path)
    assert (info.name, info.kind, info.shape, info.has_true_density) == (
        str(path), "text", (64,), False,
    )  # fmt: skip
    assert info.levels == 4 + len(set(body)) and "characters" in info.description
    parts = [load_dataset(path, split=s, seed=3) for s in ("train", "val", "test")]
    assert all(x.dtype == torch.int64 and x.shape[1] == 64 for x in parts)
    assert sum(len(x) for x in parts) == len(body) // 64
    assert int(torch.cat(parts).max()) < info.levels
    lines = load_dataset(path, layout="lines", seed=1)
    assert lines.shape[0] == 48 and lines.shape[1] == 1 + max(len(b) for b in body.split("\n"))
    others = torch.cat(
        [load_dataset(path, split=s, layout="lines", seed=1) for s in ("val", "test")]
    )
    assert not set(map(tuple, lines.tolist())) & set(map(tuple, others.tolist()))
    assert not torch.equal(lines, load_dataset(path, layout="lines", seed=2))
    words = dataset_info(path, tokens="words", seq_len=8)
    # words: line the fox saw hens : . and the numbers 0..59, plus the 4 specials
    assert words.shape == (8,) and words.levels == 4 + 7 + 60


def test_user_files_are_not_modified(tmp_path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,y\n" + "\n".join(f"{i},{i * 2}" for i in range(30)) + "\n")
    before = (path.read_bytes(), path.stat().st_mtime_ns, sorted(tmp_path.iterdir()))
    _all_splits(path)
    assert before == (path.read_bytes(), path.stat().st_mtime_ns, sorted(tmp_path.iterdir()))


# ----------------------------------------------------------------------- names and registry


def test_unknown_names_and_splits() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'moons'"):
        load_dataset("moon")
    with pytest.raises(UnknownNameError, match="Did you mean 'digits'"):
        dataset_info("digit")
    with pytest.raises(DataError, match="train, val, test"):
        load_dataset("moons", split="validation")
    with pytest.raises(DataError, match="non-negative"):
        load_dataset("moons", seed=-1)
    with pytest.raises(DataError, match="positive"):
        load_dataset("moons", n=0)


def test_registry_and_density_errors() -> None:
    names = [info.name for info in list_datasets()]
    for expected in (*TOY_NAMES, "digits", "digits-binary", "wine", "iris", "breast-cancer"):
        assert expected in names
    for info in list_datasets():
        assert info.kind in {"points", "image", "tabular", "text", "pair"} and info.description
        assert info.has_true_density == (info.kind == "points" or info.name == "grammar")
    with pytest.raises(DensityUnavailable, match="no known true density"):
        true_log_prob("digits", torch.zeros(2, 1, 8, 8))
    with pytest.raises(DensityUnavailable):
        true_entropy("iris")
    with pytest.raises(DataError, match="shape"):
        true_log_prob("moons", torch.zeros(4, 3))
    lp = true_log_prob("moons", torch.zeros(4, 2, dtype=torch.float32))
    assert lp.dtype == torch.float32 and lp.shape == (4,)


def test_data_modules_import_one_another_without_a_cycle() -> None:
    """No module of ``genzoo.data`` imports, at module level, one that imports it back (the
    domain pairs are built from the toys and digits, not from ``genzoo.data`` itself)."""
    import ast
    from pathlib import Path

    import genzoo.data

    root = Path(genzoo.data.__file__).parent
    modules = {p.stem: p for p in root.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for stem, path in modules.items():
        deps = graph.setdefault(stem, set())
        for node in ast.parse(path.read_text()).body:  # module level only
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "genzoo.data"
            ):
                continue
            if node.module == "genzoo.data":  # submodules by name, else the package's names
                deps |= {a.name if a.name in modules else "__init__" for a in node.names}
            else:
                deps.add(node.module.split(".")[2])

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d}))
                   for d in graph.get(start, ()))  # fmt: skip

    assert not [m for m in graph if reaches(m, m, {m})]
    assert "noqa: E402" not in (root / "__init__.py").read_text()


def test_toy_names_stay_importable_from_toy2d() -> None:
    from genzoo.data import toy2d

    assert set(toy2d.TOY_NAMES) == set(toy2d.TOY_ENTROPY) == set(toy2d.TOY_DESCRIPTIONS)
    x = toy2d.load_toy("moons", "val", 50, 3)
    assert torch.equal(x, load_dataset("moons", "val", n=50, seed=3))
    assert toy2d.sample_toy("moons", 4, np.random.default_rng(0)).shape == (4, 2)
    assert torch.isfinite(toy2d.toy_log_prob("moons", x)).all()


# ------------------------------------------------------------------ large .npy files, streamed


def test_large_npy_is_streamed_by_row(tmp_path, monkeypatch) -> None:
    from genzoo.data import files, is_streamed, open_dataset

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 1, 4, 4)).astype(np.uint8)
    path = tmp_path / "big.npy"
    np.save(path, x)
    whole = load_dataset(str(path), split="val", seed=3)  # small: read whole
    assert not files.is_large_npy(path)
    monkeypatch.setenv("GENZOO_STREAM_BYTES", "100")  # now "larger than memory"
    assert files.is_large_npy(path) and is_streamed(str(path))
    streamed = open_dataset(str(path), split="val", seed=3)
    assert isinstance(streamed, files.NpyRows) and len(streamed) == len(whole) == 20
    assert torch.equal(torch.stack([streamed[i] for i in range(20)]), whole)
    assert torch.equal(load_dataset(str(path), split="val", seed=3, n=5), whole[:5])
    info = dataset_info(str(path))  # summarised in chunks, never loaded whole
    assert info.levels == int(x.max()) + 1 and info.shape == (1, 4, 4) and info.kind == "image"
    loader = torch.utils.data.DataLoader(streamed, batch_size=8)
    assert torch.equal(next(iter(loader)), whole[:8])
    floats = tmp_path / "f.npy"
    np.save(floats, np.array([[0.5, np.nan]] * 30))
    with pytest.raises(DataError, match="NaN"):
        dataset_info(str(floats))
    with pytest.raises(DataError, match="carries no condition"):
        open_dataset(str(path), condition=True)
