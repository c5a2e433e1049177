"""The benchmark's executors: a two-cell bench on a local Ray instance and on submitit's local
executor gives the local executor's results; a killed Ray bench resumes without redoing
finished cells; a worker that cannot see the bench folder, a lost cell and a missing extra
each say so in one line."""

from __future__ import annotations

import csv
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

# The test's Ray instance listens on the loopback interface only (read when ray is imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from test_bench import kill_after_first_cell  # noqa: E402

from genzoo.bench import grid  # noqa: E402
from genzoo.bench.executors import (  # noqa: E402
    SHARED_MARKER,
    MissingExtraError,
    SharedStorageError,
    executor_for,
    mark_shared,
    worker_run,
)
from genzoo.bench.runner import (  # noqa: E402
    RESULT_FILE,
    CellCall,
    cell_dir,
    cell_identity,
    run_bench,
)
from genzoo.cli import main  # noqa: E402

TINY = {"gmm": grid.Budget(quick_steps=5, hparams={"n_components": 3})}
CELLS = dict(quick=True, models=["gmm"], datasets=["8gaussians", "moons"])
#: Columns that are clocks, not results: they differ between any two runs.
CLOCKS = {"train_seconds", "samples_per_second", "log_prob_per_second", "time_to_target"}
NEEDS_RAY = "Ray is in the test extra: pip install -e '.[test]'"


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_results(got: Path, want: list[dict[str, str]]) -> None:
    rows = _rows(got)
    assert [(r["model"], r["dataset"], r["status"]) for r in rows] == [
        (r["model"], r["dataset"], r["status"]) for r in want
    ]
    for row, ref in zip(rows, want, strict=True):
        assert set(row) == set(ref)
        for key in set(ref) - CLOCKS:
            try:
                assert float(row[key]) == pytest.approx(float(ref[key]), rel=1e-9, abs=1e-12), key
            except ValueError:  # text
                assert row[key] == ref[key], key


@pytest.fixture(scope="module")
def local_results(tmp_path_factory) -> list[dict[str, str]]:
    """The two cells on the local executor (in this process): the reference."""
    out = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grid, "BUDGETS", TINY)
        run_bench(out, jobs=1, **CELLS)
    return _rows(out)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray instance of two CPUs for the module (the executor joins it)."""
    ray = pytest.importorskip("ray", reason=NEEDS_RAY)
    import logging

    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                       logging_level=logging.WARNING)  # fmt: skip
    yield context.address_info["address"]
    ray.shutdown()


@pytest.fixture
def tiny_budgets(monkeypatch):
    monkeypatch.setattr(grid, "BUDGETS", TINY)  # the workers get them with each cell


def test_a_ray_bench_gives_the_local_results(ray_address, local_results, tiny_budgets, tmp_path):
    run_bench(tmp_path, executor="ray", **CELLS)
    _assert_same_results(tmp_path, local_results)
    token = (tmp_path / SHARED_MARKER).read_text().strip()
    assert len(token) == 32  # the workers read it back before training


KILLED_RAY_BENCH = """
import sys
from genzoo.bench import grid, runner
grid.BUDGETS = {"gmm": grid.Budget(quick_steps=5, hparams={"n_components": 3})}
runner.run_bench(sys.argv[1], quick=True, models=["gmm"], datasets=["8gaussians", "moons"],
                 executor="ray", executor_options={"address": sys.argv[2], "cpus_per_cell": 2})
"""


def test_a_killed_ray_bench_resumes_without_redoing_finished_cells(ray_address, tiny_budgets,
                                                                    tmp_path):  # fmt: skip
    first = cell_dir(tmp_path, "gmm", "8gaussians", 0) / RESULT_FILE
    second = cell_dir(tmp_path, "gmm", "moons", 0) / RESULT_FILE
    # a second driver joins the instance (--address); two CPUs a cell: one cell at a time
    argv = [sys.executable, "-c", KILLED_RAY_BENCH, str(tmp_path), ray_address]
    stamp = kill_after_first_cell(argv, first, second, timeout=120)
    run_bench(tmp_path, executor="ray", **CELLS)  # Ray ended the killed driver's task
    assert first.stat().st_mtime_ns == stamp  # read back, not recomputed
    assert second.exists()
    assert [r["status"] for r in _rows(tmp_path)] == ["ok", "ok"]


def test_submitit_local_executor_gives_the_local_results(local_results, tiny_budgets, tmp_path):
    pytest.importorskip("submitit", reason="submitit is in the test extra")
    options = {"cluster": "local", "poll_seconds": 0.2}
    run_bench(tmp_path, executor="slurm", executor_options=options, **CELLS)
    _assert_same_results(tmp_path, local_results)
    logs = list((tmp_path / "slurm").glob("*/*_log.out"))
    assert len(logs) == 2  # one job per cell


def test_a_worker_that_cannot_see_the_bench_folder_says_so_in_one_line(tmp_path):
    call = CellCall(str(tmp_path / "bench"), True, "cpu", None, grid.BUDGETS)
    host = socket.gethostname()
    missing = worker_run(call.for_workers("0" * 32), ("gmm", "moons", 0, 1.0))
    assert isinstance(missing, SharedStorageError)
    assert str(missing).startswith(f"bench folder {tmp_path / 'bench'} does not exist on host "
                                   f"{host}: ")  # fmt: skip
    assert "\n" not in str(missing)
    assert not (tmp_path / "bench").exists()  # nothing was trained into a folder of its own
    (tmp_path / "bench").mkdir()
    mark_shared(tmp_path / "bench")  # another benchmark's token: another folder
    other = worker_run(call.for_workers("0" * 32), ("gmm", "moons", 0, 1.0))
    assert isinstance(other, SharedStorageError) and "is another folder" in str(other)
    token = mark_shared(tmp_path / "bench")
    older = replace(call.for_workers(token), version="0.0.1")
    message = str(worker_run(older, ("gmm", "moons", 0, 1.0)))
    assert message.startswith(f"host {host} runs genzoo ")
    assert "the benchmark genzoo 0.0.1: install the same version" in message
    assert not (tmp_path / "bench" / "runs").exists()


class _Elsewhere:
    """An executor whose workers see another folder, or die: what a fourth one looks like."""

    name, threads = "elsewhere", 1

    def __init__(self, lose: bool = False) -> None:
        self.lose = lose

    def run(self, cells, call):
        for cell in cells:
            if self.lose:
                yield cell, RuntimeError("the node was lost\nwith a traceback")
            else:
                yield cell, worker_run(call.for_workers("not the benchmark's token"), cell)

    def close(self) -> None:
        pass


def test_a_folder_error_ends_the_bench_and_a_lost_cell_is_a_failed_row(tiny_budgets, tmp_path,
                                                                       capsys):  # fmt: skip
    with pytest.raises(SharedStorageError, match=f"on host {socket.gethostname()}"):
        run_bench(tmp_path, executor=_Elsewhere(), **CELLS)
    assert not list((tmp_path / "runs").glob(f"*/{RESULT_FILE}"))
    run_bench(tmp_path, executor=_Elsewhere(lose=True), **CELLS)
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert rows[0]["error"] == "RuntimeError: with a traceback"
    # a failed cell of this benchmark's settings: retried by the next run (test_bench_reliability)
    assert rows[0]["identity"] == cell_identity("gmm", "8gaussians", True, None, 1.0)
    assert "2 of 2 cells failed or diverged" in capsys.readouterr().out


@pytest.mark.parametrize(("executor", "module", "extra"),
                         [("ray", "ray", "Ray"), ("slurm", "submitit", "submitit")])  # fmt: skip
def test_a_missing_extra_is_a_one_line_error(executor, module, extra, monkeypatch, tmp_path,
                                             capsys):  # fmt: skip
    monkeypatch.setitem(sys.modules, module, None)  # import fails as when not installed
    with pytest.raises(MissingExtraError):
        executor_for(executor)
    assert main(["bench", "--executor", executor, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err == (f"genzoo: error: --executor {executor} needs {extra}: "
                   f"pip install 'genzoo[{executor}]'\n")  # fmt: skip
    assert not (tmp_path / "b").exists()


def test_options_of_another_executor_are_refused(capsys, tmp_path):
    assert main(["bench", "--address", "head:6379", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "genzoo: error: --executor local takes no --address\n"
    with pytest.raises(ValueError, match="--jobs is for --executor local"):
        run_bench(tmp_path, executor="slurm", jobs=2, **CELLS)
    with pytest.raises(ValueError, match="whole numbers"):
        executor_for("slurm", {"cpus_per_cell": 0.5, "cluster": "local"})
