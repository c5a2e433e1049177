"""Where the benchmark's cells run: this machine's cores, a Ray cluster or a Slurm cluster.

An executor takes the cells to train and one picklable callable (``call(cell) -> row``, a
:class:`genzoo.bench.runner.CellCall`) and yields ``(cell, result)`` as each finishes, in any
order: ``result`` is the row that ``call`` returned (``runs/CELL/result.json`` is already
written, atomically, by the worker), or an exception when the executor lost the cell (its
worker or job died before writing a row). A fourth executor (Dask, say) is a module here with
one class, and a line in :data:`EXECUTORS`.

On a cluster every worker writes into the bench folder: it must be on storage that every
worker sees, at the same path. :func:`worker_run`, what a cluster worker runs for a cell,
checks that first, and gives a one-line error naming the folder and the host when it is not.
"""

from __future__ import annotations

import importlib
import inspect
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from genzoo import __version__
from genzoo.errors import GenzooError

if TYPE_CHECKING:
    from genzoo.bench.grid import Cell
    from genzoo.bench.runner import CellCall

__all__ = [
    "EXECUTORS",
    "SHARED_MARKER",
    "Executor",
    "MissingExtraError",
    "SharedStorageError",
    "check_shared",
    "executor_for",
    "mark_shared",
    "require",
    "worker_run",
]

#: Executor name -> "module:class" (imported only when chosen: Ray and submitit are extras).
EXECUTORS = {
    "local": "genzoo.bench.executors.local:LocalExecutor",
    "ray": "genzoo.bench.executors.ray:RayExecutor",
    "slurm": "genzoo.bench.executors.slurm:SlurmExecutor",
}
#: The file in the bench folder whose token every cluster worker must read back.
SHARED_MARKER = ".genzoo-shared"


class MissingExtraError(GenzooError, ImportError):
    """An executor whose optional dependency (a ``genzoo[...]`` extra) is not installed."""


class SharedStorageError(GenzooError, OSError):
    """A cluster worker that cannot see or write the bench folder."""


@runtime_checkable
class Executor(Protocol):
    """Runs the cells of a benchmark; see the module's documentation."""

    #: Its name on the command line (``--executor NAME``).
    name: str
    #: Torch threads each cell uses (the cores the executor gives a cell).
    threads: int

    def run(self, cells: Sequence[Cell], call: CellCall) -> Iterator[tuple[Cell, Any]]:
        """Run ``call(cell)`` for every cell; yield ``(cell, row or exception)`` as each ends."""
        ...

    def close(self) -> None:
        """Stop what the executor started and cancel cells still queued (after ``run``, or
        when the benchmark ends early)."""
        ...


def executor_for(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    """The executor ``name`` with ``options`` (its constructor's keywords; ``None`` values are
    left out). It imports its optional dependency at once (:class:`MissingExtraError` when
    missing) but starts nothing before :meth:`Executor.run`."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    module, cls_name = EXECUTORS[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    given = {k: v for k, v in (options or {}).items() if v is not None}
    accepted = inspect.signature(cls).parameters
    foreign = [k for k in given if k not in accepted]
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise ValueError(f"--executor {name} takes no {flags}")
    return cls(**given)


def require(module: str, what: str, extra: str, executor: str) -> ModuleType:
    """Import ``module`` or say, in one line, which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"--executor {executor} needs {what}: pip install 'genzoo[{extra}]'"
        ) from None


def mark_shared(out: str | os.PathLike) -> str:
    """Write a fresh token into the bench folder for the workers to read back (driver side)."""
    token = uuid.uuid4().hex
    (Path(out) / SHARED_MARKER).write_text(token + "\n")
    return token


def check_shared(out: str | os.PathLike, token: str) -> None:
    """Fail in one line, naming the folder and this host, unless the bench folder here is the
    driver's (it holds the token :func:`mark_shared` wrote) and this process can write it."""
    host = socket.gethostname()
    advice = "the bench folder must be on storage every worker sees, at the same path"
    try:
        seen = (Path(out) / SHARED_MARKER).read_text().strip()
    except OSError:
        seen = None
    if seen != token:
        state = "does not exist" if not os.path.isdir(out) else "is another folder"
        raise SharedStorageError(f"bench folder {out} {state} on host {host}: {advice}")
    try:
        fd, probe = tempfile.mkstemp(dir=out, prefix=".genzoo-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise SharedStorageError(
            f"cannot write into bench folder {out} on host {host} ({err.strerror}): {advice}"
        ) from None


def worker_run(call: CellCall, cell: Cell) -> Any:
    """What a cluster worker runs for one cell: the driver's working folder (so relative
    ``--data`` paths mean the same files), the shared-storage check, then the cell. genzoo's
    own errors (the folder, a locked cell) come back as values, whole, for the driver to
    raise; a failed training is a row like any other."""
    try:
        if call.cwd and os.path.isdir(call.cwd):
            os.chdir(call.cwd)
        if call.token is not None:
            check_shared(call.out, call.token)
        if call.version != __version__:
            raise GenzooError(
                f"host {socket.gethostname()} runs genzoo {__version__}, the benchmark genzoo "
                f"{call.version}: install the same version on every worker"
            )
        return call(cell)
    except GenzooError as err:
        return err
