"""This machine's cores: one cell at a time in this process (``jobs=1``), or a pool of spawned
worker processes that end with the benchmark, even when it is killed by ``kill -9``."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genzoo.bench.grid import Cell
    from genzoo.bench.runner import CellCall

#: Seconds between a worker's checks that the benchmark that started it is still alive.
PARENT_CHECK_SECONDS = 0.5


class LocalExecutor:
    """``jobs`` cells at once (default: the CPU cores), each in its own process, one torch
    thread each; a failure of the pool itself (a worker killed) ends the benchmark."""

    name = "local"
    threads = 1

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs

    def run(self, cells: Sequence[Cell], call: CellCall) -> Iterator[tuple[Cell, Any]]:
        jobs = max(1, min(self.jobs or os.cpu_count() or 1, len(cells) or 1))
        if jobs == 1:
            for cell in cells:
                yield cell, call(cell)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_end_with_parent, initargs=(os.getpid(),)
        ) as pool:
            futures = {pool.submit(call, cell): cell for cell in cells}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def close(self) -> None:
        """Nothing to stop: the pool ends with :meth:`run`."""


def _end_with_parent(parent: int) -> None:
    """Pool initializer: end this worker as soon as the benchmark that started it is gone (a
    killed benchmark must not leave workers training into its folder)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="genzoo-parent-watch").start()
