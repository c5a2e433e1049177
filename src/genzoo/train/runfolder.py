"""Guards of a folder that a run (or a benchmark) writes: one writer at a time, and a
``--force`` that replaces the old run only once the new one has succeeded.

The lock is an operating-system advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on
Windows) on a file inside the folder: the kernel releases it when its process dies, even by
``kill -9``, so a crashed run never leaves a stale lock behind and a live one is never
overrun by a second process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from genzoo.errors import RunLockedError

LOCK_FILE = ".genzoo.lock"
#: Where ``--force`` keeps the old run until the new one has finished.
PREVIOUS_FOLDER = ".genzoo-previous"

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike, what: str = "run", lock_file: str = LOCK_FILE
) -> Iterator[Path]:
    """Hold the lock ``lock_file`` of ``folder`` (created if missing) for the ``with`` block.

    A second process (or a second ``with`` in this one) gets ``RunLockedError`` naming the
    holder's process id and host, instead of writing into the same files. Locks of different
    ``lock_file`` names are independent (a benchmark cell, and the training run inside it).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except (NotADirectoryError, FileExistsError) as err:
        raise RunLockedError(f"cannot use {folder} as a {what} folder: {err}") from err
    except PermissionError as err:
        raise RunLockedError(f"cannot write into {folder} ({err}): choose another folder") from err
    try:
        if not _try_lock(fd):
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise RunLockedError(
                f"{folder} is in use by another genzoo {what} ({holder}); wait for it to "
                "finish, or choose another folder"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def setting_differences(saved: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """``"key: the run has X, now Y"`` for each setting in ``asked`` whose value differs from
    the run's ``saved`` one (compared as JSON, so a tuple equals the list it was saved as):
    what a refused resume names."""
    asked = json.loads(json.dumps(dict(asked)))
    return [
        f"{key}: the run has {saved.get(key)!r}, now {value!r}"
        for key, value in asked.items()
        if saved.get(key) != value
    ]


def _remove(path: Path) -> None:
    """Remove a run's file or folder (the TensorBoard events), if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(folder: Path, names: Iterable[str]) -> Iterator[None]:
    """Set the files ``names`` of ``folder`` aside while the block writes new ones; drop
    them when it succeeds, restore them (removing the new ones) when it fails, so ``--force``
    never loses a run to a failed replacement."""
    present = [name for name in names if (folder / name).exists()]
    if not present:
        yield
        return
    aside = folder / PREVIOUS_FOLDER
    shutil.rmtree(aside, ignore_errors=True)  # left by a process killed mid-replacement
    aside.mkdir()
    for name in present:
        os.replace(folder / name, aside / name)
    try:
        yield
    except BaseException:
        for name in names:
            _remove(folder / name)
        for name in present:
            os.replace(aside / name, folder / name)
        aside.rmdir()
        raise
    shutil.rmtree(aside)


def restore_interrupted_replacement(folder: Path, names: Iterable[str]) -> None:
    """Put back an old run a killed ``--force`` left aside (its new run never finished)."""
    aside = folder / PREVIOUS_FOLDER
    if not aside.is_dir():
        return
    warnings.warn(
        f"{folder}: a --force replacement was interrupted before it finished; the previous "
        "run is restored",
        stacklevel=3,
    )
    for name in names:
        if (aside / name).exists():
            _remove(folder / name)
            os.replace(aside / name, folder / name)
    shutil.rmtree(aside, ignore_errors=True)
