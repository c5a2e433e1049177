"""The benchmark folder under faults: one benchmark at a time, cells that are never reused
under other settings, failed cells retried, and workers that die with a killed benchmark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genzoo.bench import grid
from genzoo.bench.runner import CELL_LOCK, RESULT_FILE, cell_dir, run_bench
from genzoo.errors import RunExistsError, RunLockedError
from genzoo.train.runfolder import folder_lock

TINY = {"gmm": grid.Budget(quick_steps=5, full_steps=7, hparams={"n_components": 3})}


@pytest.fixture
def tiny_budgets(monkeypatch):
    monkeypatch.setattr(grid, "BUDGETS", TINY)


def _bench(out: Path, **kw):
    settings = dict(quick=True, models=["gmm"], datasets=["8gaussians"], jobs=1)
    return run_bench(out, **{**settings, **kw})


def test_a_second_benchmark_on_the_same_folder_is_refused(tiny_budgets, tmp_path):
    with folder_lock(tmp_path, "benchmark"), pytest.raises(RunLockedError, match="in use"):
        _bench(tmp_path)
    assert not (tmp_path / "runs").exists()


def test_cells_of_another_preset_are_refused_not_reused(tiny_budgets, tmp_path):
    _bench(tmp_path)
    result = cell_dir(tmp_path, "gmm", "8gaussians", 0) / RESULT_FILE
    before = result.read_bytes()
    with pytest.raises(RunExistsError, match='"steps": 5.* here, .*"steps": 7.* now'):
        _bench(tmp_path, quick=False, seeds=1, lr_factors=[1.0])
    assert result.read_bytes() == before  # neither reused nor overwritten
    _bench(tmp_path, quick=False, seeds=1, lr_factors=[1.0], force=True)
    assert json.loads(json.loads(result.read_text())["identity"])["steps"] == 7


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_failed_cells_are_retried_unless_kept(tiny_budgets, tmp_path):
    _bench(tmp_path, device="cuda")  # every cell fails on a machine without a GPU
    result = cell_dir(tmp_path, "gmm", "8gaussians", 0) / RESULT_FILE
    assert json.loads(result.read_text())["status"] == "failed"
    _bench(tmp_path, keep_failed=True)
    assert json.loads(result.read_text())["status"] == "failed"
    _bench(tmp_path)
    assert json.loads(result.read_text())["status"] == "ok"


SLOW_BENCH = """
import sys
from genzoo.bench import grid, runner
grid.BUDGETS = {m: grid.Budget(quick_steps=10**7, hparams={"n_layers": 2, "hidden": 8})
                for m in ("realnvp", "nsf")}
runner.run_bench(sys.argv[1], quick=True, models=["realnvp", "nsf"], datasets=["moons"], jobs=2)
"""


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(t) for t in text)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_workers_of_a_killed_benchmark_end_with_it(tmp_path):
    bench = subprocess.Popen([sys.executable, "-c", SLOW_BENCH, str(tmp_path)])
    try:
        locks = [cell_dir(tmp_path, m, "moons", 0) / CELL_LOCK for m in ("realnvp", "nsf")]
        deadline = time.monotonic() + 120
        while not all(p.exists() for p in locks) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(p.exists() for p in locks), "the workers never started their cells"
        workers = _children(bench.pid)
    finally:
        bench.send_signal(signal.SIGKILL)
        bench.wait()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived the killed benchmark"
    for lock in locks:  # and no cell is left marked as in training
        with folder_lock(lock.parent, "benchmark cell", CELL_LOCK):
            pass
    assert not any(os.path.exists(p.parent / RESULT_FILE) for p in locks)
