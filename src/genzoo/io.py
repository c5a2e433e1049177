"""Files a user may receive from someone else: JSON and safetensors only, written atomically.

No pickle anywhere: weights go through safetensors, everything else through JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from genzoo.errors import CheckpointError

if TYPE_CHECKING:
    from genzoo.models.base import GenerativeModel

FORMAT = "genzoo-model/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: A run folder's record of what it was trained on (dataset, split seed, text vocabulary).
RUN_INFO_FILE = "run.json"
#: Config numbers up to this size are always accepted (buffer sizes, chunk sizes), however
#: few weights a model has; larger ones must not exceed the weights' count.
CONFIG_NUMBER_FLOOR = 10**6
#: Metadata key of the SHA-256 of a safetensors file's tensors.
DIGEST_KEY = "genzoo_sha256"


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
        write(tmp)
        # mkstemp makes 0600 (and a writer may recreate the file): give it the usual mode
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where genzoo keeps what it computes once (the digits classifier, the rendered sprites):
    ``cache_dir``, else ``$GENZOO_CACHE``, else ``$XDG_CACHE_HOME/genzoo``, else
    ``~/.cache/genzoo``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("GENZOO_CACHE"):
        return Path(os.environ["GENZOO_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "genzoo"
    return Path.home() / ".cache" / "genzoo"


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
    metadata = {**(metadata or {}), DIGEST_KEY: tensors_digest(flat)}
    atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=metadata))


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``tensors`` (in name order): kept
    in a safetensors file's metadata, it shows any byte that changed after writing."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def verify_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Refuse tensors whose digest differs from the one written beside them (files written
    before digests were kept have none and are taken as they are)."""
    expected = metadata.get(DIGEST_KEY)
    if expected is not None and tensors_digest(tensors) != expected:
        raise CheckpointError(
            f"{path} is corrupt: its tensors do not match the checksum written with them "
            "(the file changed after it was saved); restore it from a copy or retrain"
        )


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable safetensors file ({err}); it is corrupt or truncated"
    )


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file and verify its checksum; a missing, truncated, altered or
    foreign file raises ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: is this a genzoo run folder?")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable(path, err) from err
    verify_tensors(path, tensors, metadata)
    return tensors


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


def load_model(
    directory: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> GenerativeModel:
    """Rebuild the model saved in ``directory``; refuse corrupt, foreign or mismatched files."""
    from genzoo.registry import model_class

    directory = Path(directory)
    target = torch.device(map_location)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"map_location={str(map_location)!r} but torch sees no CUDA device: load on 'cpu'"
        )
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
    _check_config_scale(directory, meta["config"])
    try:
        model = cls(**meta["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{directory / CONFIG_FILE} holds a config that {meta['model']} refuses ({err})"
        ) from err
    state = read_tensors(directory / WEIGHTS_FILE)
    load_state(model, state, str(directory / WEIGHTS_FILE))
    return model.to(map_location)


def _numbers(value: Any) -> list[float]:
    """The numbers in a config value (a number, or a list of them)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    return [n for v in value for n in _numbers(v)] if isinstance(value, list) else []


def _check_config_scale(directory: Path, config: dict[str, Any]) -> None:
    """Refuse a config whose numbers dwarf the weights it comes with (``n_layers: 1e8`` beside
    a few thousand weights) before building it: such a model would take all memory to build
    and could not hold these weights anyway."""
    path = directory / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable(path, err) from err
    limit = max(stored, CONFIG_NUMBER_FLOOR)
    for key, value in config.items():
        if any(not math.isfinite(n) or abs(n) > limit for n in _numbers(value)):
            raise CheckpointError(
                f"{directory / CONFIG_FILE} sets {key}={value!r}, out of scale for the "
                f"{stored:,} numbers in {WEIGHTS_FILE}: the config is corrupt or does not "
                "belong to these weights"
            )


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
    bad = [name for name, p in model.named_parameters() if name in state
           and p.is_floating_point() and not torch.isfinite(state[name]).all()]  # fmt: skip
    if bad:
        raise CheckpointError(
            f"{source} holds non-finite parameters ({', '.join(bad[:5])}): the run diverged "
            "before it was saved, or the file is corrupt; retrain or restore a good copy"
        )
    model.load_state_dict(state)
