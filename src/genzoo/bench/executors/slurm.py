"""A Slurm cluster through submitit: the cells of a benchmark are one job array, one job per
cell (``cpus_per_cell`` CPUs, ``gpus_per_cell`` GPUs, ``time_minutes`` each, on
``partition``). The jobs read and write the bench folder, so it must be on storage every
node sees (submitit keeps its files and the jobs' logs in ``BENCH/slurm/``). A benchmark
that ends early cancels its queued and running jobs; one killed by ``kill -9`` cannot, so
``scancel`` its array before running it again. ``cluster="local"`` runs the jobs as local
processes (submitit's ``LocalExecutor``, for tests). Needs ``pip install 'genzoo[slurm]'``."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genzoo.bench.executors import mark_shared, require, worker_run

if TYPE_CHECKING:
    from genzoo.bench.grid import Cell
    from genzoo.bench.runner import CellCall

#: The folder of the bench that holds submitit's files and the jobs' logs.
SLURM_FOLDER = "slurm"


class SlurmExecutor:
    """One Slurm job array per benchmark, one job per cell; results as jobs finish.

    Args:
        partition: the Slurm partition (default: the cluster's).
        time_minutes: each cell's time limit; a cell past it is recorded as failed.
        cpus_per_cell: CPUs per job (and the cell's torch threads).
        gpus_per_cell: GPUs per job; train with ``device="cuda"`` to use them.
        cluster: ``"slurm"``, or ``"local"`` (processes on this machine) for tests.
        poll_seconds: how often the jobs' states are read.
    """

    name = "slurm"

    def __init__(
        self,
        partition: str | None = None,
        time_minutes: int = 60,
        cpus_per_cell: float = 1,
        gpus_per_cell: float = 0,
        cluster: str = "slurm",
        poll_seconds: float = 1.0,
    ) -> None:
        whole = cpus_per_cell == int(cpus_per_cell) and gpus_per_cell == int(gpus_per_cell)
        if not (whole and cpus_per_cell >= 1 and gpus_per_cell >= 0):
            raise ValueError(
                "--executor slurm takes whole numbers, --cpus-per-cell >= 1 and --gpus-per-cell "
                f">= 0; got {cpus_per_cell:g} and {gpus_per_cell:g}"
            )
        if not time_minutes >= 1:
            raise ValueError(f"--time-minutes must be >= 1, got {time_minutes}")
        self._submitit = require("submitit", "submitit", "slurm", self.name)
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--executor slurm: no sbatch here: run the benchmark on a machine "
                             "that submits Slurm jobs (a login node)")  # fmt: skip
        self.partition, self.time_minutes, self.cluster = partition, time_minutes, cluster
        self.cpus, self.gpus = int(cpus_per_cell), int(gpus_per_cell)
        self.threads, self.poll_seconds = self.cpus, poll_seconds
        self._pending: dict[Any, Cell] = {}

    def parameters(self) -> dict[str, Any]:
        """The job array's submitit parameters."""
        parameters: dict[str, Any] = {
            "name": "genzoo-bench", "timeout_min": self.time_minutes, "cpus_per_task": self.cpus,
        }  # fmt: skip
        if self.gpus:
            parameters["gpus_per_node"] = self.gpus
        if self.partition and self.cluster == "slurm":
            parameters["slurm_partition"] = self.partition
        return parameters

    def run(self, cells: Sequence[Cell], call: CellCall) -> Iterator[tuple[Cell, Any]]:
        if not cells:
            return
        call = call.for_workers(mark_shared(call.out))
        executor = self._submitit.AutoExecutor(
            folder=Path(call.out) / SLURM_FOLDER / "%j", cluster=self.cluster
        )
        executor.update_parameters(**self.parameters())
        jobs = executor.map_array(worker_run, [call] * len(cells), list(cells))
        self._pending = dict(zip(jobs, cells, strict=True))
        while self._pending:
            finished = [job for job in self._pending if job.done()]
            for job in finished:
                cell = self._pending.pop(job)
                try:
                    result = job.result()
                except Exception as err:  # the job died: timed out, cancelled, node lost
                    result = err
                yield cell, result
            if not finished:
                time.sleep(self.poll_seconds)

    def close(self) -> None:
        for job in self._pending:  # cells queued or still training: an early end
            with contextlib.suppress(Exception):
                job.cancel(check=False)
        self._pending = {}
