"""EM across processes: each rank holds a share of the rows, the statistics are summed.

EM's E-step is a sum over examples (responsibility sums N_k, first moments, second moments,
the log-likelihood), so N processes that each hold a share of the rows fit one model by
summing those sums over the processes (one ``all_reduce`` per iteration) before the M-step,
which every rank then solves on the same numbers. The result equals the single-process fit
on the union of the shares up to the rounding of the sums. The helpers here are the only
code that talks to ``torch.distributed``; the models call them from their ``sharded`` mode
(``GaussianMixture.sharded``, ``DeepGaussianMixture.sharded``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

#: Spreads the per-rank seeds of stochastic steps apart (as the trainer's batch seeds).
RANK_STRIDE = 1_000_003


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[a, b)`` of rank ``rank``'s contiguous share of ``n`` rows among ``world``
    ranks: the shares differ by at most one row, the first ``n % world`` ranks take one more
    (as ``torch.tensor_split``), and together they are rows 0..n-1 in order."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def require_group() -> None:
    """Refuse sharded EM outside a ``torch.distributed`` process group."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "sharded EM needs a torch.distributed process group: launch with torchrun "
            "(genzoo's Trainer joins it) or call torch.distributed.init_process_group first"
        )


def join_from_environment(device: str | torch.device = "cpu") -> None:
    """Join the process group ``torchrun`` describes, if not joined yet (gloo on CPU, NCCL
    on CUDA), the way the trainer does; refuse when not launched by torchrun."""
    if dist.is_available() and dist.is_initialized():
        return
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        raise RuntimeError(
            "sharded=True needs several processes: launch with torchrun --nproc_per_node N "
            "(or several nodes), or initialise a torch.distributed process group first"
        )
    from genzoo.train.distributed import setup  # the trainer's own join (NCCL or gloo)

    setup(str(device))


def rank(group: Any = None) -> int:
    """This process's rank in ``group`` (the default group when None)."""
    return dist.get_rank(_resolve(group))


def world(group: Any = None) -> int:
    """The number of processes in ``group``."""
    return dist.get_world_size(_resolve(group))


#: Stands for the default process group in a model's sharded state: a plain string, so that
#: a model can be copied (``copy.deepcopy``) in the middle of a sharded fit.
DEFAULT_GROUP = "default"


def group_or_default(group: Any) -> Any:
    """What a sharded model keeps as its group: ``group``, or ``DEFAULT_GROUP``."""
    return group if group is not None else DEFAULT_GROUP


def _resolve(group: Any) -> Any:
    """The group torch.distributed takes (None for the default one)."""
    return None if group is None or group == DEFAULT_GROUP else group


def _source(group: Any) -> int:
    """The global rank of ``group``'s rank 0 (what ``broadcast`` names as its source)."""
    group = _resolve(group)
    if group is None or group is dist.group.WORLD:
        return 0
    return dist.get_global_rank(group, 0)


def all_reduce_sum(tensors: Sequence[Tensor], group: Any, agree: int = 0) -> list[Tensor]:
    """Sum each tensor over the ranks of ``group``, in float64, with one ``all_reduce``.

    The tensors (any shapes, on one device) are flattened into one float64 vector, summed,
    and returned in their shapes and float64. Its last ``agree`` numbers are then broadcast
    from rank 0, so that a decision taken on them (the stopping rule on the log-likelihood)
    is bit-for-bit the same on every rank whatever the reduction's rounding.
    """
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
    source, group = _source(group), _resolve(group)
    dist.all_reduce(flat, group=group)
    if agree:
        tail = flat[-agree:].clone()
        dist.broadcast(tail, src=source, group=group)
        flat[-agree:] = tail
    parts = flat.split([t.numel() for t in tensors])
    return [p.reshape(t.shape) for p, t in zip(parts, tensors, strict=True)]


def broadcast_object(value: Any, group: Any) -> Any:
    """Rank 0's ``value`` (anything picklable, small) on every rank."""
    box = [value]
    dist.broadcast_object_list(box, src=_source(group), group=_resolve(group))
    return box[0]


@torch.no_grad()
def broadcast_state(module: nn.Module, group: Any) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank of ``group``.

    The shapes are compared first: ranks whose models differ in shape get a ``RuntimeError``
    naming the first difference instead of a hang inside the broadcast.
    """
    state = module.state_dict()
    shapes = [(name, tuple(t.shape)) for name, t in state.items()]
    gathered: list[Any] = [None] * world(group)
    dist.all_gather_object(gathered, shapes, group=_resolve(group))
    for r, theirs in enumerate(gathered):
        if theirs != gathered[0]:
            pairs = zip(gathered[0], theirs, strict=False)
            diff = next(((a, b) for a, b in pairs if a != b), (gathered[0], theirs))
            raise RuntimeError(
                f"rank {r} holds a model of another shape than rank 0 ({diff[1]} against "
                f"{diff[0]}): build the same model on every rank"
            )
    for tensor in state.values():
        dist.broadcast(tensor, src=_source(group), group=_resolve(group))
