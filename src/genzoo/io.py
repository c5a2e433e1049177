"""Files a user may receive from someone else: JSON and safetensors only, written atomically.

No pickle anywhere: weights go through safetensors, everything else through JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genzoo.errors import CheckpointError

FORMAT = "genzoo-model/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    A reader sees either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")

    atomic_write(path, write)


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON; a missing, empty or broken file raises ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: is this a genzoo run folder?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); the file is corrupt") from err


def write_tensors(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write named tensors (and string metadata) as safetensors, atomically.

    Tensors are copied first, so entries that share storage (a module registered twice, a
    mask reused by several layers) are stored as independent tensors.
    """
    flat = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=metadata))


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, truncated or foreign file raises ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: is this a genzoo run folder?")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}); it is corrupt or truncated"
        ) from err


def save_model(model: torch.nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of a genzoo model into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_tensors(directory / WEIGHTS_FILE, model.state_dict())
    write_json(
        directory / CONFIG_FILE,
        {"format": FORMAT, "model": model.name, "config": model.config},
    )
    return directory


def load_model(directory: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Rebuild the model saved in ``directory``; refuse corrupt, foreign or mismatched files."""
    from genzoo.registry import model_class

    directory = Path(directory)
    meta = read_json(directory / CONFIG_FILE)
    found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
    if found != FORMAT:
        raise CheckpointError(
            f"{directory / CONFIG_FILE} is not a genzoo model config "
            f"(expected format {FORMAT!r}, found {found!r})"
        )
    if not isinstance(meta.get("model"), str) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{directory / CONFIG_FILE} lacks the 'model' and 'config' entries")
    cls = model_class(meta["model"])
    try:
        model = cls(**meta["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{directory / CONFIG_FILE} holds a config that {meta['model']} refuses ({err})"
        ) from err
    state = read_tensors(directory / WEIGHTS_FILE)
    load_state(model, state, str(directory / WEIGHTS_FILE))
    return model.to(map_location)


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly, explaining any mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or extra or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:5]}")
        if extra:
            details.append(f"unexpected {extra[:5]}")
        if wrong:
            details.append(f"wrong shapes for {wrong[:5]}")
        raise CheckpointError(
            f"{source} does not fit a {type(model).__name__} with this config "
            f"({'; '.join(details)}): it was written by another model or configuration"
        )
    model.load_state_dict(state)
