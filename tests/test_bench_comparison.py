"""The comparison a newcomer runs: from an empty cache and home, on the user's own file, with
several seeds and at equal training time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genzoo.bench import grid
from genzoo.bench.runner import run_bench
from genzoo.bench.summary import rank, summarise
from genzoo.metrics.frechet import cache_path

TINY = grid.Budget(quick_steps=20, batch_size=64)


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").open()]


@pytest.fixture
def empty_home(monkeypatch, tmp_path):
    """HOME and every cache folder empty: nothing trained or cached on an earlier run."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("HOME", "XDG_CACHE_HOME", "GENZOO_CACHE", "GENZOO_DATA"):
        monkeypatch.setenv(name, str(home / ".cache" if "CACHE" in name else home))
    monkeypatch.delenv("GENZOO_CACHE")  # the default: ~/.cache/genzoo under the empty home
    return home


def test_main_job_from_an_empty_cache_and_home_finishes_every_cell(empty_home, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    # the digits classifier is first trained inside the Trainer's no_grad evaluation: that
    # failed every digits cell for a new user while warm caches hid it
    monkeypatch.setattr(grid, "BUDGETS", {
        "gmm": grid.Budget(quick_steps=5, hparams={"n_components": 3}),
        "realnvp": grid.Budget(quick_steps=20, batch_size=64, hparams={"n_layers": 2}),
    })  # fmt: skip
    assert not cache_path().exists()
    run_bench(tmp_path / "bench", quick=True, models=["gmm", "realnvp"],
              datasets=["8gaussians", "digits"], jobs=1)  # fmt: skip
    rows = _rows(tmp_path / "bench")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
    assert all("frechet_digits" in r for r in rows if r["dataset"] == "digits")
    assert cache_path().is_file()  # trained on first use, under the empty home
    assert str(cache_path()).startswith(str(empty_home))


def _mixture(path, n=3000, seed=0):
    """A 3-D mixture of 4 well separated Gaussians, saved as .npy."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 4]], dtype=np.float32)
    x = centres[rng.integers(4, size=n)] + 0.5 * rng.standard_normal((n, 3)).astype(np.float32)
    np.save(path, x)
    return path


def test_bench_on_a_user_file_trains_every_family_that_accepts_it(tmp_path, monkeypatch):
    monkeypatch.setattr(grid, "DEFAULT_BUDGET", TINY)
    monkeypatch.setattr(grid, "BUDGETS", {
        "gmm": grid.Budget(quick_steps=100, hparams={"n_components": 4, "n_init": 3}),
        "realnvp": grid.Budget(quick_steps=3, batch_size=64, hparams={"n_layers": 2}),
    })  # fmt: skip
    data = _mixture(tmp_path / "mixture.npy")
    run_bench(tmp_path / "bench", quick=True, data=[str(data)], jobs=1)
    rows = {r["model"]: r for r in _rows(tmp_path / "bench")}
    families = {r["family"] for r in rows.values()}
    # 3-D real vectors: everything but text, pairs, images-only and binary/discrete models
    assert families == {"flow", "vae", "gan", "energy", "score", "mixture"}
    assert {"rbm", "made", "lstm-lm", "pixelcnn", "progan", "cyclegan"}.isdisjoint(rows)
    assert all(r["status"] == "ok" for r in rows.values()), {
        m: r.get("error") for m, r in rows.items() if r["status"] != "ok"
    }
    normalised = {m: r["nll"] for m, r in rows.items() if "nll" in r}
    best = min(normalised, key=normalised.get)  # the right K: at the top on held-out NLL
    assert rows[best]["family"] == "mixture" and normalised["gmm"] - normalised[best] < 0.05
    ranks = rank(list(rows.values()), "nll")
    assert ranks[list(rows).index("gmm")] in ("1", "=1")
    assert abs(rows["gmm"]["c2st_accuracy"] - 0.5) < 0.06  # indistinguishable from the data
    assert rows["realnvp"]["c2st_accuracy"] > 0.7  # three steps: easily told apart
    md = (tmp_path / "bench" / "report.md").read_text()
    assert "## Dataset: " + str(data) in md and "| (held-out data) |" in md
    assert "| gmm | 1 | NLL |" in md and "NLL rank" in md


def test_seeds_give_standard_errors_and_identical_models_tie(tmp_path, monkeypatch):
    monkeypatch.setattr(
        grid, "BUDGETS", {"gmm": grid.Budget(quick_steps=5, hparams={"n_components": 3})}
    )
    run_bench(tmp_path, quick=True, models=["gmm"], datasets=["8gaussians"], seeds=3, jobs=1)
    rows = _rows(tmp_path)
    assert sorted(r["seed"] for r in rows) == [0, 1, 2]
    (summary,) = summarise(rows)
    assert summary["seeds"] == 3 and summary["nll_se"] > 0
    assert " ± " in (tmp_path / "report.md").read_text()
    twin = dict(summary, model="gmm-copy")
    worse = dict(summary, model="worse", nll=summary["nll"] + 100 * summary["nll_se"])
    assert rank([summary, twin, worse], "nll") == {0: "=1", 1: "=1", 2: "3"}


def test_budget_seconds_trains_every_cell_for_the_same_time(tmp_path):
    run_bench(tmp_path, quick=True, models=["realnvp", "vae"], datasets=["8gaussians"],
              budget_seconds=2.0, jobs=1)  # fmt: skip
    rows = _rows(tmp_path)
    assert [r["mode"] for r in rows] == ["seconds", "seconds"]
    for row in rows:
        assert 2.0 <= row["train_seconds"] <= 2.2, row  # within 10% of the budget
    assert "## Quality at equal training time: 2 s per cell" in (tmp_path / "report.md").read_text()
