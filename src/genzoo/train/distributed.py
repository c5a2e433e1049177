"""Data-parallel training under ``torchrun``: process-group setup, rank helpers, loss wrapper.

Launched as ``torchrun --nproc_per_node N -m genzoo.cli train ...``, each process reads
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` from its environment. The trainer then joins the
process group (gloo on CPU, NCCL on CUDA), draws its own mini-batches and averages gradients
with :class:`torch.nn.parallel.DistributedDataParallel`. Outside ``torchrun`` (or with
``WORLD_SIZE=1``) nothing here is used and training is the plain single-process loop.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from genzoo.models.base import GenerativeModel

#: Loss terms named ``diag/...`` are logged but not minimised (accuracies, norms).
DIAGNOSTIC_PREFIX = "diag/"
#: Spreads the batch seeds of the ranks apart: rank ``r`` draws from ``seed + r * RANK_STRIDE``.
RANK_STRIDE = 1_000_003


def launched_world_size() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``), 1 outside it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank: from the process group if one exists, else ``RANK`` (0)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Whether this process is rank 0, the one that writes files and prints."""
    return rank() == 0


@dataclass
class Context:
    """Where this process stands: its rank, the world size and its device."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def parallel(self) -> bool:
        """Whether more than one process trains together."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (nothing when single-process)."""
        if self.parallel:
            dist.barrier()


def setup(device: str) -> Context:
    """Join the process group ``torchrun`` describes, or return a single-process context.

    The backend is NCCL for CUDA and gloo for CPU; ``device="cuda"`` becomes
    ``cuda:LOCAL_RANK``. A group already initialised (by the caller or an earlier ``fit``)
    is used as it is. A group created here stays up until the process exits, because
    joining a new one after ``destroy_process_group`` hangs under torchrun's store.
    """
    already = dist.is_available() and dist.is_initialized()
    if not already and launched_world_size() <= 1:
        return Context(device=device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = device.startswith("cuda")
    if cuda and device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if cuda:
        torch.cuda.set_device(torch.device(device))
    if not already:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(_destroy)
    return Context(dist.get_rank(), dist.get_world_size(), device)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def split_terms(output: Tensor | Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """``model.loss`` output -> (the total to minimise, every term detached for logging).

    Terms named ``diag/...`` are logged only, never added to the total.
    """
    terms = dict(output) if isinstance(output, Mapping) else {"loss": output}
    total = sum(v for k, v in terms.items() if not k.startswith(DIAGNOSTIC_PREFIX))
    return total, {k: v.detach() for k, v in terms.items()}


class PlayerLoss(nn.Module):
    """``forward(batch, player, c)`` = ``model.loss(batch, player)`` split by
    :func:`split_terms`, with ``c=c`` for a conditional model's batch of conditions.

    The model protocol computes losses, not ``forward``; DDP hooks into ``forward`` and the
    backward pass, so it wraps this module. Only the total carries a graph, so DDP looks
    for used parameters from the minimised loss alone, never from a diagnostic term.
    """

    def __init__(self, model: GenerativeModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, batch: Tensor | None, player: str, c: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if c is None:
            return split_terms(self.model.loss(batch, player))
        return split_terms(self.model.loss(batch, player, c=c))


def wrap(model: GenerativeModel, context: Context) -> nn.Module:
    """The loss module the trainer calls: wrapped in DDP when training data-parallel.

    One DDP wrapper over the whole model. With several players, ``find_unused_parameters``
    is on: a player's loss may touch only part of the model (a GAN's discriminator step
    never reaches the generator), and a per-player wrapper would need DDP's private API to
    leave out the other players' parameters; unused parameters are then marked ready each
    step instead of stalling the gradient all-reduce. With one player it is off (it costs a
    graph traversal a step): the contract test checks that its loss reaches every
    parameter. DDP broadcasts rank 0's parameters and buffers at construction, so every
    rank starts from the same model.
    """
    module = PlayerLoss(model)
    if not context.parallel:
        return module
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"{model.name} has no trainable parameters to train data-parallel")
    device_ids = [torch.device(context.device).index] if context.device.startswith("cuda") else None
    # Buffers are not broadcast from rank 0 at every forward: each rank keeps its own
    # persistent chains (PCD) and replay buffers, so they scale with the ranks; parameters
    # start equal (DDP broadcasts them once) and stay equal under averaged gradients.
    return nn.parallel.DistributedDataParallel(
        module,
        device_ids=device_ids,
        find_unused_parameters=len(model.players) > 1,
        broadcast_buffers=False,
    )


def mean_over_ranks(values: dict[str, float], context: Context, device: str) -> dict[str, float]:
    """The mean of each logged value over the ranks (so a NaN on any rank is seen by all)."""
    if not context.parallel or not values:
        return values
    keys = sorted(values)
    stacked = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    stacked /= context.world
    return dict(zip(keys, stacked.tolist(), strict=True))


def mean_tensor_over_ranks(values: Tensor, context: Context) -> Tensor:
    """The mean over the ranks of a vector of logged values (the same length on each)."""
    if not context.parallel or values.numel() == 0:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / context.world


def gather_rng(states: dict[str, Tensor], context: Context) -> dict[str, Tensor]:
    """Every rank's RNG states, keyed ``name`` for rank 0 and ``name@r`` for rank ``r``."""
    if not context.parallel:
        return states
    gathered: list[dict[str, Tensor] | None] = [None] * context.world
    dist.all_gather_object(gathered, {k: v.cpu() for k, v in states.items()})
    merged = dict(states)
    for r, theirs in enumerate(gathered[1:], start=1):
        merged.update({f"{k}@{r}": v for k, v in theirs.items()})
    return merged


def broadcast_state(model: nn.Module, context: Context) -> None:
    """Copy rank 0's parameters and buffers into every rank's model."""
    if not context.parallel:
        return
    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
