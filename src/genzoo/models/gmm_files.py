"""EM over a ``.npy`` file larger than memory: the file is read in chunks, one pass per
iteration, so peak memory depends on the chunk size, not on the number of rows.
"""

from __future__ import annotations

import contextlib
import math
import os
from os import PathLike

import numpy as np
import torch

from genzoo.errors import DataError
from genzoo.models import em_shards
from genzoo.models.mixtures import GaussianMixture, _is_count


def fit_gmm_memmap(
    path: str | PathLike,
    n_components: int | str = 8,
    *,
    max_iter: int = 100,
    chunk_rows: int = 65_536,
    init_rows: int = 100_000,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    sharded: bool = False,
    **hparams,
) -> GaussianMixture:
    """Fit a ``GaussianMixture`` by batch EM to a ``.npy`` file larger than memory.

    The file (N, *shape), written by ``np.save`` or ``np.lib.format.open_memmap``, is read
    ``chunk_rows`` rows at a time, one pass per EM iteration, so peak memory depends on
    ``chunk_rows`` (and K, d), not on N. Rows are read with plain file reads rather than
    through a memory map, whose touched pages would count in the process's resident memory
    up to the file size. The model is initialised (k-means++, or K chosen by BIC with
    ``n_components="auto"``) on about ``init_rows`` rows taken as 64 blocks spread evenly
    over the file (all rows, in order, when N <= init_rows: then the result equals
    in-memory EM up to rounding). ``hparams`` are the other ``GaussianMixture`` arguments
    (``covariance_type``, ``tol``, ...), except ``online``.

    ``sharded=True`` fits one model with several processes (launched by ``torchrun``, on
    one machine or several; the process group is joined if not yet, gloo on CPU, NCCL on
    CUDA with ``device="cuda"`` becoming ``cuda:LOCAL_RANK``): every process opens the same
    file (on storage they all see), reads only its contiguous share of the rows each
    iteration, and the statistics are summed over the processes (``GaussianMixture.sharded``),
    so each machine reads and holds its share only. Rank 0 initialises on the same rows a
    single process would and broadcasts the result, so the fit equals the single-process
    one up to the rounding of the sums; every rank returns the same model.

    Example:
        >>> model = fit_gmm_memmap("big.npy", n_components=16, chunk_rows=100_000)  # doctest: +SKIP
    """
    if hparams.get("online"):
        raise ValueError("fit_gmm_memmap runs batch EM: leave online=False")
    if not _is_count(chunk_rows) or not _is_count(init_rows):
        raise ValueError("chunk_rows and init_rows must be integers >= 1")
    read, shape = _npy_reader(path)
    n = shape[0]
    first, last, main = 0, n, True  # this process's rows
    if sharded:
        em_shards.join_from_environment(device)
        if str(device) == "cuda":  # one GPU per process on each machine
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        first, last = em_shards.shard_bounds(n, em_shards.rank(), em_shards.world())
        main = em_shards.rank() == 0
    model = GaussianMixture(shape[1:], n_components, **hparams).to(device=device, dtype=dtype)
    sample = None
    if main:  # a sharded fit initialises on rank 0 and broadcasts
        sample = torch.from_numpy(_init_sample(read, n, init_rows)).to(dtype)
    if not sharded:
        model.initialize(sample)

    def chunks():
        for start in range(first, last, chunk_rows):
            yield torch.from_numpy(read(start, min(last, start + chunk_rows)))

    with model.sharded(sample) if sharded else contextlib.nullcontext():
        for _ in range(max_iter):
            model.fit_step_chunks(chunks())
            if model.converged:
                break
    return model


def _init_sample(read, n: int, init_rows: int) -> np.ndarray:
    """All n rows when n <= init_rows, else about init_rows rows in INIT_BLOCKS blocks
    spread evenly over the file."""
    if n <= init_rows:
        return read(0, n)
    block = max(1, init_rows // INIT_BLOCKS)
    starts = np.linspace(0, n - block, INIT_BLOCKS).astype(np.int64)
    return np.concatenate([read(int(a), int(a) + block) for a in starts])


#: Blocks of rows that ``fit_gmm_memmap`` initialises on, for a file of more than init_rows.
INIT_BLOCKS = 64


def _npy_reader(path: str | PathLike):
    """(read(a, b) -> rows a..b-1 as a fresh array, shape) for a C-ordered ``.npy`` file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
    if fortran or len(shape) < 2 or dtype.hasobject:
        raise DataError(
            f"{path} holds a {'Fortran-ordered ' if fortran else ''}array shaped {shape} of "
            f"{dtype}: need C-ordered numbers shaped (n_examples, ...)"
        )
    row_items = math.prod(shape[1:])

    def read(a: int, b: int) -> np.ndarray:
        with open(path, "rb") as f:
            f.seek(offset + a * row_items * dtype.itemsize)
            rows = np.fromfile(f, dtype=dtype, count=(b - a) * row_items)
        return rows.reshape(b - a, *shape[1:])

    return read, tuple(shape)
