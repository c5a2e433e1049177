"""Training checkpoints: one safetensors file holding weights, optimiser and RNG state.

Everything lives in a single file written atomically, so a crash can never leave a model
from one step beside an optimiser from another. Tensors go in the safetensors body; the
rest (step, optimiser hyper-parameters) is JSON in its metadata header. No pickle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from genzoo.errors import CheckpointError
from genzoo.io import load_state, verify_tensors, write_tensors

CHECKPOINT_FILE = "checkpoint.safetensors"
FORMAT = "genzoo-checkpoint/1"


def _split_optimizer(prefix: str, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict:
    """Move the tensors of an optimiser ``state_dict`` into ``tensors``; return the JSON rest."""
    rest: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        rest[str(index)] = {}
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{key}"] = value
            else:
                rest[str(index)][key] = value
    return {"state": rest, "param_groups": state["param_groups"]}


def _join_optimizer(prefix: str, meta: dict, tensors: dict[str, torch.Tensor]) -> dict:
    """Inverse of ``_split_optimizer``."""
    state: dict[int, dict[str, Any]] = {int(i): dict(slots) for i, slots in meta["state"].items()}
    for name, value in tensors.items():
        if name.startswith(prefix + "/"):
            index, key = name[len(prefix) + 1 :].split("/", 1)
            state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    step: int,
    rng: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
    more: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write everything needed to resume training at ``step`` into one file, atomically;
    ``more`` holds further named tensors (``ema/...``: the moving average of the weights)."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update(more or {})
    tensors.update({f"rng/{k}": v for k, v in rng.items()})
    optim_meta = {
        player: _split_optimizer(f"optim/{player}", opt.state_dict(), tensors)
        for player, opt in optimizers.items()
    }
    meta = {
        "format": FORMAT,
        "model": model.name,
        "step": step,
        "optimizers": optim_meta,
        "extra": extra or {},
    }
    write_tensors(path, tensors, metadata={"genzoo": json.dumps(meta)})


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
) -> tuple[int, dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model and optimisers from ``path``; return ``(step, rng_state, extra,
    tensors)``, ``tensors`` the file's named tensors besides model, optimiser and RNG."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume from")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
        meta = json.loads(header["genzoo"])
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"{path} is not a readable genzoo checkpoint ({err}); it is corrupt or truncated"
        ) from err
    verify_tensors(path, tensors, header)
    if meta.get("format") != FORMAT or meta.get("model") != model.name:
        raise CheckpointError(
            f"{path} was written for model {meta.get('model')!r} ({meta.get('format')}), "
            f"not for {model.name!r}: resume with the same model, or start a new run folder"
        )
    device = model.device
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    load_state(model, model_state, str(path))
    for player, opt in optimizers.items():
        if player not in meta["optimizers"]:
            raise CheckpointError(f"{path} holds no optimiser state for player {player!r}")
        state = _join_optimizer(f"optim/{player}", meta["optimizers"][player], tensors)
        opt.load_state_dict(state)
        for slots in opt.state.values():
            for key, value in slots.items():
                if isinstance(value, torch.Tensor) and key != "step":
                    slots[key] = value.to(device)
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng/")}
    more = {k: v for k, v in tensors.items() if not k.startswith(("model/", "rng/", "optim/"))}
    return int(meta["step"]), rng, meta.get("extra", {}), more
