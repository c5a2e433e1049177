"""The benchmark grid and report: two tiny cells end to end, resume after a kill, metrics on
known cases, and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from genzoo.bench import grid
from genzoo.bench.measure import (
    QUALITY_TARGETS,
    mode_metrics,
    quality_target,
    quality_tracker,
    quality_vs_sampling_steps,
    time_to_target,
)
from genzoo.bench.ratings import ratings
from genzoo.bench.runner import RESULT_FILE, cell_dir, run_bench
from genzoo.metrics.modes import mode_centres, mode_coverage
from genzoo.metrics.samples import energy_distance, mmd_rbf, precision_recall, sliced_wasserstein
from genzoo.models.capabilities import StepSampler

TINY = {"gmm": grid.Budget(quick_steps=5, hparams={"n_components": 3})}


@pytest.fixture
def tiny_budgets(monkeypatch):
    monkeypatch.setattr(grid, "BUDGETS", TINY)


def test_mmd_and_distances_on_known_cases():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(800, 2, generator=g), torch.randn(800, 2, generator=g)
    same, shifted, far = mmd_rbf(x, y), mmd_rbf(x, y + 0.5), mmd_rbf(x, y + 2.0)
    assert abs(same) < 0.01 and same < shifted < far
    assert abs(energy_distance(x, y)) < 0.02 < energy_distance(x, y + 0.5)
    assert sliced_wasserstein(x, y) < 0.15 < sliced_wasserstein(x, y + 1.0)


def test_precision_recall_of_identical_sets_is_one():
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(1))
    pr = precision_recall(x, x)
    assert pr["precision"] == pr["recall"] == pr["coverage"] == 1.0
    collapsed = x[:1].repeat(500, 1)
    assert precision_recall(x, collapsed)["recall"] < 0.05


def test_mode_counter_on_constructed_samples():
    centres, std = mode_centres("8gaussians")
    on_three = torch.as_tensor(centres[:3]).repeat(100, 1).float()
    result = mode_coverage(on_three, centres, std)
    assert result["modes_covered"] == 3 and result["high_quality_share"] == 1.0


def test_bench_of_two_cells_writes_results_and_report(tiny_budgets, tmp_path):
    paths = run_bench(tmp_path, quick=True, models=["gmm"], datasets=["8gaussians", "moons"],
                      jobs=1)  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").open()]
    assert [(r["dataset"], r["status"]) for r in rows] == [("8gaussians", "ok"), ("moons", "ok")]
    assert rows[0]["density"] == "exact" and rows[0]["measure"] == "NLL"
    assert rows[0]["modes_covered"] >= 6
    assert rows[0]["quality_target"] == "energy_distance <= 0.02"
    seconds = rows[0]["time_to_target"]  # None when 5 EM steps did not reach the target
    assert seconds is None or 0 <= seconds <= rows[0]["train_seconds"]
    assert (tmp_path / "quality_curves.png").stat().st_size > 1000
    assert (tmp_path / "results.csv").read_text().startswith("model,family,dataset,seed")
    md = (tmp_path / "report.md").read_text()
    assert "## Ratings" in md and "| gmm | mixture |" in md
    assert {p.name for p in paths} == {"report.md", "report.html"}
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text()


KILLED_BENCH = """
import sys
from genzoo.bench import grid, runner
grid.BUDGETS = {"gmm": grid.Budget(quick_steps=5, hparams={"n_components": 3})}
runner.run_bench(sys.argv[1], quick=True, models=["gmm"], datasets=["8gaussians", "moons"],
                 jobs=1)
"""


def kill_after_first_cell(argv: list[str], first, second, timeout: float) -> int:
    """Run the bench ``argv`` in a process, ``kill -9`` it once cell ``first`` has its result,
    and return that result's modification time (skip when ``second`` finished as well)."""
    proc = subprocess.Popen(argv)
    try:
        deadline = time.time() + timeout
        while not first.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert first.exists(), "the first cell never finished"
    if second.exists():
        pytest.skip("the machine finished both cells before the kill landed")
    return first.stat().st_mtime_ns


def test_an_interrupted_bench_resumes_without_redoing_finished_cells(tiny_budgets, tmp_path):
    first = cell_dir(tmp_path, "gmm", "8gaussians", 0) / RESULT_FILE
    second = cell_dir(tmp_path, "gmm", "moons", 0) / RESULT_FILE
    argv = [sys.executable, "-c", KILLED_BENCH, str(tmp_path)]
    stamp = kill_after_first_cell(argv, first, second, timeout=180)
    run_bench(tmp_path, quick=True, models=["gmm"], datasets=["8gaussians", "moons"], jobs=1)
    assert first.stat().st_mtime_ns == stamp  # read back, not recomputed
    assert second.exists()


def test_ratings_follow_their_rules():
    rows = [
        {"model": "a", "family": "flow", "dataset": "d", "seed": 0, "status": "ok",
         "density": "exact", "coverage": 0.95, "precision": 0.9, "samples_per_second": 2e6,
         "train_seconds": 3.0, "loss_oscillation": 0.01},
        {"model": "b", "family": "gan", "dataset": "d", "seed": 0, "status": "diverged",
         "density": "none", "coverage": 0.3, "precision": 0.5, "samples_per_second": 5e3,
         "train_seconds": 3.0, "loss_oscillation": 0.5},
    ]  # fmt: skip
    table = {t["model"]: t for t in ratings(rows)}
    assert table["a"]["density"][0] == 5 and table["b"]["density"][0] == 1
    assert table["a"]["capacity"][0] == 5 and table["b"]["capacity"][0] == 2
    assert table["a"]["stability"][0] == 5 and table["b"]["stability"][0] == 1
    assert table["a"]["speed"][0] == 5 and table["b"]["speed"][0] == 2
    assert [t["model"] for t in ratings(rows)] == ["a", "b"]  # the survey's family order


def test_time_to_target_and_the_speed_rule():
    evaluations = [{"step": 10, "time": 1.0, "eval/energy_distance": 0.3},
                   {"step": 20, "time": 2.5, "eval/energy_distance": 0.015},
                   {"step": 30, "time": 4.0, "eval/energy_distance": 0.01}]  # fmt: skip
    assert time_to_target(evaluations, "8gaussians") == 2.5
    assert time_to_target(evaluations[:1], "8gaussians") is None
    assert time_to_target(evaluations, "grammar") is None  # text has no target
    base = {"family": "flow", "dataset": "d", "seed": 0, "status": "ok", "coverage": 0.9,
            "precision": 0.9, "quality_target": "energy_distance <= 0.02",
            "samples_per_second": 2e6}  # fmt: skip
    fast = dict(base, model="fast", time_to_target=1.0)
    never = dict(base, model="never", time_to_target=None)
    table = {t["model"]: t for t in ratings([fast, never])}
    assert table["fast"]["speed"][0] == 5  # sampling 5, training 5
    assert table["never"]["speed"][0] == 3  # sampling 5, never met the target 1
    assert "not met" in table["never"]["speed"][1]


def test_quality_against_sampling_steps_of_a_score_model():
    import genzoo

    data = genzoo.load_dataset("8gaussians", n=256)
    model = genzoo.create("ddpm", data=data, hidden=16, depth=2, sampling_steps=40).eval()
    tracker = quality_tracker("8gaussians", seed=0, n=200)
    points = quality_vs_sampling_steps(model, tracker, (2, 10))
    assert [(p["steps"], p["nfe"]) for p in points] == [(2, 2.0), (10, 10.0), (None, 40.0)]
    assert all(p["energy_distance"] > 0 for p in points)  # an untrained model is far off
    gmm = genzoo.create("gmm", data=data, n_components=2)  # no StepSampler: no curve
    assert not isinstance(gmm, StepSampler) and quality_vs_sampling_steps(gmm, tracker, (2,)) == []


def test_measurements_follow_what_the_dataset_declares():
    from genzoo.data import dataset_info

    assert quality_target("digits") == QUALITY_TARGETS["digits_features"]
    assert quality_target("8gaussians") == quality_target("moons") == QUALITY_TARGETS["2d"]
    assert quality_target("digits-binary") is None and quality_target("wine") is None
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    assert mode_metrics(x, dataset_info("moons")) == {}  # no known modes
    assert mode_metrics(x, dataset_info("25gaussians"))["n_modes"] == 25


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed here "
                    "(CI installs it: apt-get install chromium)")  # fmt: skip
def test_html_report_opens_in_headless_chromium_with_its_images(tiny_budgets, tmp_path):
    run_bench(tmp_path, quick=True, models=["gmm"], datasets=["8gaussians"], jobs=1)
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", (tmp_path / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'data-images-ok="true"' in result.stdout
    assert result.stdout.count("<img") >= 3


def test_text_cells_put_decoded_samples_in_the_report(monkeypatch, tmp_path):
    monkeypatch.setattr(grid, "BUDGETS", {"lstm-lm": grid.Budget(
        quick_steps=3, batch_size=16, hparams={"hidden": 16, "embedding": 8},
        datasets=("grammar",))})  # fmt: skip
    run_bench(tmp_path, quick=True, models=["lstm-lm"], jobs=1)
    text = (cell_dir(tmp_path, "lstm-lm", "grammar", 0) / "samples.txt").read_text()
    assert len(text.splitlines()) == 8
    assert text.splitlines()[0] in (tmp_path / "report.md").read_text()


def test_learning_rate_sweep_feeds_stability_only(tiny_budgets, tmp_path):
    run_bench(tmp_path, quick=True, models=["gmm"], datasets=["8gaussians"], jobs=1,
              lr_factors=[1.0, 10.0])  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").open()]
    assert sorted(r["lr_factor"] for r in rows) == [1.0, 10.0]
    assert cell_dir(tmp_path, "gmm", "8gaussians", 0, 10.0).name.endswith("__lr10")
    md = (tmp_path / "report.md").read_text()
    assert "## Learning-rate sweep (stability)" in md
    assert "0/2 runs diverged or failed (learning rate x1, x10)" in md
    assert md.count("| gmm | 1 | NLL |") == 1  # the dataset table shows the x1 run only
