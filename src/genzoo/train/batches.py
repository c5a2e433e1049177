"""Where the trainer's mini-batches come from: an in-memory tensor, a ``Dataset``, a
``DataLoader`` with workers, or an ``IterableDataset``.

Every source is seeded and resumable: its position is a count the checkpoint keeps
(``batches_drawn``, or the pass and the batches read in it for a stream), or lies in the
trainer's batch generator, whose state the checkpoint keeps too.

* An in-memory tensor is the fast path: the indices of a random batch are drawn into one
  preallocated buffer, an epoch's permutation lives on the data's device, and rows are
  gathered with ``index_select`` (no per-step host allocation, no host-device copy).
* A map-style ``Dataset`` (``len`` and ``dataset[i]`` returning ``x`` or ``(x, c)``) is
  indexed exactly as the tensor would be, so the same seed gives the same batches and the
  same parameters. A dataset with ``__getitems__(indices)`` is read a batch at a time.
* A ``DataLoader`` over a map-style dataset lends its workers, if any, its ``collate_fn``
  and ``pin_memory``: the trainer feeds it its own batch indices. Workers read ahead, so a
  random batch's indices come from a generator seeded by the batch's number instead of the
  trainer's batch generator; ``batch_order="epochs"`` is identical to the in-memory path.
* An ``IterableDataset`` (or a ``DataLoader`` over one) is read in its own order, ``batch_size``
  examples a batch (the loader's own batches when a loader is given); when it ends a new pass
  starts (``set_epoch(pass)`` is called when the dataset has it). Resuming re-reads the pass
  up to the checkpoint's position.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from genzoo.errors import DataError
from genzoo.train.distributed import launched_world_size

#: Spreads the seeds of the epochs (and of a worker-fed random order's batches) apart.
SEED_STRIDE = 1_000_003


class EpochOrder:
    """Mini-batch indices that sweep ``n`` examples in a new permutation each epoch.

    The permutation of epoch ``e`` comes from a generator seeded by ``(seed, e)``, so the
    order is reproduced from the count of batches drawn alone (which a checkpoint keeps).
    Under data-parallel training every rank draws the same permutation and sweeps its share,
    ``perm[rank::world]``, padded from the permutation's start to an equal length (as
    ``torch.utils.data.DistributedSampler`` does), so a few examples come twice per epoch.
    The permutation is kept on ``device`` and batches are views of it.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        drawn: int = 0,
        rank: int = 0,
        world: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.n, self.batch_size, self.seed, self.drawn = n, batch_size, seed, drawn
        self.rank, self.world, self.device = rank, world, torch.device(device)
        self.share = math.ceil(n / world)
        self.per_epoch = math.ceil(self.share / batch_size)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def next(self) -> Tensor:
        """Indices of the next batch."""
        epoch, position = divmod(self.drawn, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * SEED_STRIDE + epoch)
            perm = torch.randperm(self.n, generator=generator)
            if self.world > 1:
                padded = perm.repeat(math.ceil(self.share * self.world / self.n))
                perm = padded[: self.share * self.world][self.rank :: self.world]
            self._epoch, self._perm = epoch, perm.to(self.device)
        self.drawn += 1
        return self._perm[position * self.batch_size : (position + 1) * self.batch_size]


def split_example(batch: Any, what: str = "a batch") -> tuple[Tensor, Tensor | None]:
    """``x`` or ``(x, c)`` (a tuple or list of two) -> ``(x, c or None)`` as tensors."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            batch = batch[0]
        elif len(batch) == 2:
            return torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
        else:
            raise DataError(f"{what} holds {len(batch)} items: a dataset must return x or "
                            "(x, condition)")  # fmt: skip
    if isinstance(batch, dict):
        raise DataError(f"{what} is a dict ({sorted(batch)[:4]}): a dataset must return x or "
                        "(x, condition)")  # fmt: skip
    return torch.as_tensor(batch), None


def is_dataset(data: Any) -> bool:
    """Whether ``data`` is a torch ``Dataset``/``IterableDataset`` or a ``DataLoader``."""
    return isinstance(data, (Dataset, DataLoader))


def dataset_length(data: Dataset | DataLoader) -> int | None:
    """The number of examples of a map-style source, ``None`` for a stream."""
    dataset = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(dataset, IterableDataset):
        return None
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError as err:
        raise DataError(f"the training Dataset {type(dataset).__name__} has no len(): give a "
                        "map-style Dataset or an IterableDataset") from err  # fmt: skip


def _random_index(n: int, size: int, generator: torch.Generator, out: Tensor) -> Tensor:
    return torch.randint(n, (size,), generator=generator, out=out)


class _PinnedRing:
    """Random batch indices drawn on the host (the seeded CPU stream) and copied to a CUDA
    device without a per-step synchronisation: a few pinned buffers are used in turn, and a
    buffer is rewritten only once its previous copy has run (its event), so the host stays
    up to ``depth`` steps ahead of the device."""

    def __init__(self, batch_size: int, depth: int = 4) -> None:
        self.buffers = [torch.empty(batch_size, dtype=torch.long).pin_memory()
                        for _ in range(depth)]  # fmt: skip
        self.events: list[Any] = [None] * depth
        self.turn = 0

    def draw(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        i = self.turn = (self.turn + 1) % len(self.buffers)
        if self.events[i] is not None:
            self.events[i].synchronize()  # the copy made from this buffer `depth` steps ago
        host = _random_index(n, self.buffers[i].shape[0], generator, self.buffers[i])
        index = host.to(device, non_blocking=True)
        self.events[i] = torch.cuda.Event()
        self.events[i].record()
        return index


class TensorBatches:
    """Batches of rows of in-memory tensors (the fast path).

    With ``blocked`` (random order, and nothing else drawing from the batch generator between
    batches: no transform), the indices of the next ``block_steps`` batches are drawn in one
    call: torch's CPU ``randint`` fills a tensor element after element from the generator, so
    the block is the very sequence the per-batch draws would give. A checkpoint then keeps the
    generator's state at the block's start and the batches used from it (``position``,
    ``generator_state``), so a resume redraws the block and goes on exactly. Each batch's
    rows are then gathered with one ``index_select`` by a view of the block.
    """

    def __init__(self, x, c, batch_size, order, seed, generator, drawn=0, rank=0, world=1,
                 blocked=False, offset=0):  # fmt: skip
        self.x, self.c, self.batch_size, self.generator = x, c, batch_size, generator
        self.n = x.shape[0]
        self.order = None
        if order == "epochs":
            self.order = EpochOrder(self.n, batch_size, seed, drawn, rank, world, x.device)
        self._index = torch.empty(batch_size, dtype=torch.long)
        self._ring = _PinnedRing(batch_size) if x.device.type == "cuda" else None
        self._moved = x.device.type != "cpu"  # indices drawn on the host go to the device
        self._blocked = blocked and self.order is None
        self.block_steps = max(1, min(256, 16384 // batch_size))
        self._block: Tensor | None = None
        self._block_state: Tensor | None = None
        self._pos = offset  # batches of the (first) block already used

    def _block_index(self) -> Tensor:
        if self._block is None or self._pos == self.block_steps:
            if self._block is not None:
                self._pos = 0
            self._block_state = self.generator.get_state()
            size = self.block_steps * self.batch_size
            block = torch.randint(self.n, (size,), generator=self.generator)
            self._block = block.to(self.x.device) if self._moved else block
        start = self._pos * self.batch_size
        self._pos += 1
        return self._block[start : start + self.batch_size]

    def next(self) -> tuple[Tensor, Tensor | None]:
        if self._blocked:
            index = self._block_index()
        elif self.order is not None:
            index = self.order.next()
        elif self._ring is not None:
            index = self._ring.draw(self.n, self.generator, self.x.device)
        else:
            index = _random_index(self.n, self.batch_size, self.generator, self._index)
            if self._moved:
                index = index.to(self.x.device)
        c = None if self.c is None else self.c.index_select(0, index.to(self.c.device))
        return self.x.index_select(0, index), c

    def position(self) -> dict[str, int]:
        if self.order is not None:
            return {"batches_drawn": self.order.drawn}
        if self.generator_state() is not None:
            return {"random_block_offset": self._pos}
        return {}

    def generator_state(self) -> Tensor | None:
        """The batch generator's state to checkpoint when it is not its current one: the
        start of a block of indices not used up yet."""
        if self._blocked and self._block is not None and self._pos < self.block_steps:
            return self._block_state
        return None

    def close(self) -> None:
        pass


class MapBatches(TensorBatches):
    """Batches read from a map-style ``Dataset`` in the in-memory path's order."""

    def __init__(self, dataset, batch_size, order, seed, generator, drawn=0, rank=0, world=1):
        self.dataset, self.batch_size, self.generator = dataset, batch_size, generator
        self.n = len(dataset)
        self.order = None
        if order == "epochs":
            self.order = EpochOrder(self.n, batch_size, seed, drawn, rank, world)
        self._index = torch.empty(batch_size, dtype=torch.long)
        self._blocked = False

    def next(self) -> tuple[Tensor, Tensor | None]:
        if self.order is not None:
            index = self.order.next()
        else:
            index = _random_index(self.n, self.batch_size, self.generator, self._index)
        return split_example(fetch(self.dataset, index.tolist()))


def fetch(dataset: Dataset, indices: list[int]) -> Any:
    """The collated examples ``indices`` of ``dataset`` (one ``__getitems__`` call if it has
    one)."""
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(indices) if getitems is not None else [dataset[i] for i in indices]
    return default_collate(items)


class _IndexStream:
    """The batch sampler a worker-fed ``DataLoader`` reads: the trainer's batch order from
    batch ``drawn`` on, without end; random batches seeded by their number."""

    def __init__(self, n, batch_size, order, seed, drawn, rank, world):
        self.n, self.batch_size, self.seed, self.drawn = n, batch_size, seed, drawn
        self.order = order
        self.epochs = EpochOrder(n, batch_size, seed, drawn, rank, world)
        self.random_seed = seed * SEED_STRIDE + rank

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            if self.order == "epochs":
                yield self.epochs.next().tolist()
            else:
                generator = torch.Generator().manual_seed(self.random_seed * SEED_STRIDE
                                                          + self.drawn)  # fmt: skip
                self.drawn += 1
                yield torch.randint(self.n, (self.batch_size,), generator=generator).tolist()


class LoaderBatches:
    """Batches of a map-style dataset read by a ``DataLoader``'s workers."""

    def __init__(self, loader: DataLoader, batch_size, order, seed, drawn=0, rank=0, world=1):
        self.drawn = drawn
        dataset = loader.dataset
        sampler = _IndexStream(len(dataset), batch_size, order, seed, drawn, rank, world)
        collate = loader.collate_fn
        if collate is torch.utils.data.default_convert:  # a loader built with batch_size=None
            collate = default_collate
        workers = loader.num_workers
        self.loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=loader.pin_memory,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context if workers else None,
            prefetch_factor=loader.prefetch_factor if workers else None,
        )
        self._it = _iterate(self.loader)

    def next(self) -> tuple[Tensor, Tensor | None]:
        batch = next(self._it)
        self.drawn += 1
        return split_example(batch)

    def position(self) -> dict[str, int]:
        return {"batches_drawn": self.drawn}

    def generator_state(self) -> None:
        return None

    def close(self) -> None:
        self._it = None  # shuts the workers down


class StreamBatches:
    """Batches of an ``IterableDataset`` (or a ``DataLoader`` over one), pass after pass."""

    def __init__(self, data, batch_size: int, passes: int = 0, in_pass: int = 0) -> None:
        if isinstance(data, DataLoader):
            self.loader, self.dataset = data, data.dataset
        else:
            self.loader, self.dataset = DataLoader(data, batch_size=batch_size), data
        self.passes, self.in_pass = passes, in_pass
        self._open(skip=in_pass)

    def _open(self, skip: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.passes)
        self._it = _iterate(self.loader)
        for _ in range(skip):  # back to the checkpoint's position in this pass
            next(self._it)

    def next(self) -> tuple[Tensor, Tensor | None]:
        try:
            batch = next(self._it)
        except StopIteration:
            if self.in_pass == 0:
                raise DataError("the training IterableDataset yielded no examples") from None
            self.passes, self.in_pass = self.passes + 1, 0
            self._open(skip=0)
            return self.next()
        self.in_pass += 1
        return split_example(batch)

    def position(self) -> dict[str, int]:
        return {"passes": self.passes, "batches_in_pass": self.in_pass}

    def generator_state(self) -> None:
        return None

    def close(self) -> None:
        self._it = None


def _iterate(loader: DataLoader):
    """``iter(loader)`` without touching the global RNG: a DataLoader draws its workers' base
    seed from it, which would shift every later noise draw of the loss and break exact
    resume (the resumed run opens its loader after restoring the RNG state)."""
    with torch.random.fork_rng(devices=[]):
        return iter(loader)


def make_source(data, condition, batch_size, order, seed, generator, position, rank, world,
                blocked=False):  # fmt: skip
    """The batch source for ``data`` (a tensor with its conditions, or a dataset/loader),
    placed at ``position`` (the checkpoint's, or empty for a fresh run); ``blocked``: random
    indices may be drawn a block at a time (nothing else draws from ``generator``)."""
    drawn = int(position.get("batches_drawn", 0))
    if isinstance(data, Tensor):
        offset = int(position.get("random_block_offset", 0))
        return TensorBatches(data, condition, batch_size, order, seed, generator, drawn, rank,
                             world, blocked, offset)  # fmt: skip
    dataset = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(dataset, IterableDataset):
        if world > 1:
            raise ValueError("an IterableDataset cannot be split over torchrun's ranks by the "
                             "trainer: give a map-style Dataset")  # fmt: skip
        return StreamBatches(data, batch_size, int(position.get("passes", 0)),
                             int(position.get("batches_in_pass", 0)))  # fmt: skip
    if isinstance(data, DataLoader):  # its collate_fn, pin_memory and workers
        return LoaderBatches(data, batch_size, order, seed, drawn, rank, world)
    return MapBatches(dataset, batch_size, order, seed, generator, drawn, rank, world)


#: Rows read from a map-style Dataset at a time (``chunked_rows``: EM, ``materialize``).
DATASET_CHUNK_ROWS = 4096
#: Rows a streamed EM model is initialised on (k-means++ on a seeded sample of the Dataset).
EM_INIT_ROWS = 10_000


def streams_em(model: Any, data: Any) -> bool:
    """Whether an EM model fits a map-style ``Dataset`` chunk by chunk (``chunked_rows``)
    instead of from all of its examples in memory: a model that sums its E-step statistics
    over chunks (``fit_step_chunks``: ``gmm``), unconditional, batch (not online) EM, one
    process. Its memory then does not grow with the number of examples."""
    return (callable(getattr(model, "fit_step_chunks", None)) and model.condition_kind is None
            and not getattr(model, "online", False) and isinstance(data, Dataset)
            and not isinstance(data, IterableDataset)
            and launched_world_size() == 1)  # fmt: skip


def chunked_rows(
    dataset: Dataset, rows: Tensor | None = None
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """The examples of ``dataset`` (or its ``rows``, in order) and their conditions (or
    ``None``), ``DATASET_CHUNK_ROWS`` at a time."""
    index = torch.arange(len(dataset)) if rows is None else rows  # type: ignore[arg-type]
    for i in range(0, len(index), DATASET_CHUNK_ROWS):
        yield split_example(fetch(dataset, index[i : i + DATASET_CHUNK_ROWS].tolist()))


def materialize(data) -> tuple[Tensor, Tensor | None]:
    """All of a dataset's examples as tensors (for models fitted on the whole set, EM)."""
    if isinstance(data, DataLoader) and not isinstance(data.dataset, IterableDataset):
        data = data.dataset
    if isinstance(data, (IterableDataset, DataLoader)):
        loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=4096)
        parts = [split_example(b) for b in loader]
    else:
        parts = list(chunked_rows(data))
    if not parts:
        raise DataError("the training Dataset holds no examples")
    x = torch.cat([p[0] for p in parts])
    c = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
    return x, c
