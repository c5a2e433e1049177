"""A Ray cluster: every cell is one Ray task (``cpus_per_cell`` CPUs and ``gpus_per_cell``
GPUs each). Without ``address`` a local Ray instance is started (and stopped at the end);
with one, the benchmark joins that cluster, whose workers must see the bench folder (a shared
file system, at the same path) and run the same genzoo version. Ray ends a killed benchmark's
tasks with it. Needs ``pip install 'genzoo[ray]'``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from genzoo.bench.executors import mark_shared, require, worker_run

if TYPE_CHECKING:
    from genzoo.bench.grid import Cell
    from genzoo.bench.runner import CellCall


class RayExecutor:
    """Each cell a Ray task; results come back as the tasks finish.

    Args:
        address: a running cluster to join (``ray://HOST:10001`` or ``HOST:6379``); without
            it a local instance is started, with ``num_cpus`` CPUs (default: all).
        cpus_per_cell: CPUs Ray reserves for each cell (its torch threads, when whole).
        gpus_per_cell: GPUs Ray reserves for each cell (fractions share a GPU); train with
            ``device="cuda"`` to use them.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_cell: float = 1,
        gpus_per_cell: float = 0,
        num_cpus: int | None = None,
    ) -> None:
        if not (cpus_per_cell > 0 and gpus_per_cell >= 0):
            raise ValueError(
                "--executor ray takes --cpus-per-cell > 0 and --gpus-per-cell >= 0; got "
                f"{cpus_per_cell:g} and {gpus_per_cell:g}"
            )
        self._ray = require("ray", "Ray", "ray", self.name)
        self.address, self.num_cpus = address, num_cpus
        self.cpus, self.gpus = cpus_per_cell, gpus_per_cell
        self.threads = max(1, int(cpus_per_cell))
        self._started = False
        self._pending: dict[Any, Cell] = {}

    def run(self, cells: Sequence[Cell], call: CellCall) -> Iterator[tuple[Cell, Any]]:
        ray = self._ray
        if not cells:
            return
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False,
                         logging_level=logging.WARNING)  # fmt: skip
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)  # fmt: skip
            self._started = True
        call = call.for_workers(mark_shared(call.out))
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)(worker_run)
        self._pending = {task.remote(call, cell): cell for cell in cells}
        while self._pending:
            done, _ = ray.wait(list(self._pending), num_returns=1)
            for ref in done:
                cell = self._pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:  # its worker died, or Ray lost it
                    result = err
                yield cell, result

    def close(self) -> None:
        ray = self._ray
        for ref in self._pending:  # cells not started or still training: an early end
            with contextlib.suppress(Exception):  # finished meanwhile, or the cluster is gone
                ray.cancel(ref, force=True)
        self._pending = {}
        if self._started:
            ray.shutdown()
            self._started = False
