"""The model registry: ``@register_model`` and the lookups behind ``genzoo.create``.

After score_sde_pytorch's registry: a name maps to one class, duplicates are refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from genzoo.errors import DataError, UnknownNameError, unknown_name

if TYPE_CHECKING:
    from genzoo.models.base import GenerativeModel

_MODELS: dict[str, type[GenerativeModel]] = {}
M = TypeVar("M", bound="type[GenerativeModel]")


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``genzoo.list_models()``: ``density`` is the class's usual kind,
    ``density_kinds`` every kind a model of the class may have (its config decides: an EBM
    is exact in 2-D, unnormalised above)."""

    name: str
    family: str
    density: str
    description: str
    density_kinds: tuple[str, ...] = ()


def register_model(name: str, family: str) -> Callable[[M], M]:
    """Class decorator: register a model class under ``name`` in ``family``."""

    def decorate(cls: M) -> M:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name]!r}")
        cls.name = name
        cls.family = family
        _MODELS[name] = cls
        return cls

    return decorate


def model_class(name: str) -> type[GenerativeModel]:
    """The class registered under ``name``; unknown names get the closest suggestion."""
    _import_families()
    if not isinstance(name, str):
        raise UnknownNameError(
            f"a model name is a string such as 'realnvp', got {name!r}; see genzoo.list_models()"
        )
    if name not in _MODELS:
        raise unknown_name("model", name, _MODELS)
    return _MODELS[name]


def list_models() -> list[ModelInfo]:
    """Every registered model: name, family, density kind (and every kind its config may
    give) and a one-line description."""
    _import_families()
    rows = []
    for name, cls in sorted(_MODELS.items(), key=lambda kv: (kv[1].family, kv[0])):
        summary = (inspect.getdoc(cls) or "").split("\n", 1)[0]
        rows.append(ModelInfo(name, cls.family, cls.density, summary, cls.density_kinds))
    return rows


def hyperparameters(cls: type[GenerativeModel]) -> dict[str, inspect.Parameter]:
    """The keyword arguments of a model's constructor, those a variant forwards to its parent
    through ``**kwargs`` included (``beta-vae`` takes every ``vae`` argument)."""
    from genzoo.models.base import constructor_parameters

    return constructor_parameters(cls)


def create(
    name: str, data: torch.Tensor | None = None, condition: Any = None, **hparams: Any
) -> GenerativeModel:
    """Build model ``name``; ``data`` fixes its shapes and its data-dependent initialisation.

    Hyper-parameters are checked against the constructor: an unknown one is refused with
    the list of valid ones. ``condition`` (one per example of ``data``: ``(n,)`` integer
    classes, or ``(n, C)`` vectors) builds a conditional model ``Q(x | c)`` of a class that
    can take one (``condition_kinds``): ``n_classes`` (the largest class + 1, unless given)
    or ``condition_dim`` are read from it, and ``initialize`` sees it (class frequencies).
    """
    cls = model_class(name)
    valid = hyperparameters(cls)
    for key, value in hparams.items():
        if key not in valid:
            tunable = [k for k in valid if k not in cls.data_fixed]
            raise unknown_name(f"hyper-parameter of {name}", key, tunable)
        _check_kind(name, key, valid[key], value)
    config: dict[str, Any] = {}
    if data is not None:
        if not isinstance(data, torch.Tensor):
            try:
                data = torch.as_tensor(data)
            except (TypeError, ValueError, RuntimeError) as err:
                raise DataError(
                    f"{name} needs numeric data (an array of numbers shaped (n_examples, ...)); "
                    f"could not read a {type(data).__name__} ({err})"
                ) from err
        if data.ndim < 2 or data.shape[0] == 0:
            raise DataError(
                f"{name} needs data shaped (n_examples, ...) with n_examples > 0; "
                f"got shape {tuple(data.shape)}"
            )
        config.update(cls.config_from_data(data))
    if condition is not None:
        condition = condition_tensor(condition, name)
        if data is not None and len(condition) != len(data):
            raise DataError(f"{name}: {len(condition)} conditions for {len(data)} examples; "
                            "give one condition per example")  # fmt: skip
        config.update(condition_config(cls, condition))
    config.update(hparams)
    missing = [k for k, p in valid.items() if p.default is p.empty and k not in config]
    if missing:
        raise UnknownNameError(
            f"{name} needs {', '.join(missing)}: pass data=... so they are read from it, "
            "or give them as keyword arguments"
        )
    try:
        model = cls(**config)
    except TypeError as err:  # a value of the wrong kind deep in a constructor
        raise ValueError(f"cannot build {name} with {hparams}: {err}") from err
    if data is not None and condition is not None:
        c = model.check_condition(condition, len(data))
        model.initialize(data.to(torch.get_default_dtype()), c=c)
    elif data is not None:
        model.initialize(data.to(torch.get_default_dtype()))
    return model


def condition_tensor(condition: Any, name: str = "the model") -> torch.Tensor:
    """Conditions as a tensor: ``(n,)`` integer classes (int64) or ``(n, C)`` vectors; a
    ``DataError`` for anything else."""
    try:
        c = torch.as_tensor(condition)
    except (TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"{name}: cannot read the condition as numbers ({err})") from err
    if c.ndim not in (1, 2) or c.shape[0] == 0 or c.dtype == torch.bool or c.is_complex():
        raise DataError(f"{name}: a condition is (n,) integer classes or (n, C) numbers, "
                        f"got shape {tuple(c.shape)} of {c.dtype}")  # fmt: skip
    if c.ndim == 1 and c.is_floating_point():  # classes stored as floats (a CSV column)
        c = c.long() if bool((c == c.round()).all()) else c[:, None]  # or one number each
    return c


def condition_config(cls: type[GenerativeModel], c: torch.Tensor) -> dict[str, Any]:
    """``n_classes`` (largest class + 1), ``condition_dim``, or ``condition_len`` (integer
    token ids shaped (n, M), for models taking a ``tokens`` condition; with the number of ids,
    largest id + 1, as ``condition_vocab`` for a model whose inputs have a vocabulary of their
    own) read from conditions ``c`` (as :func:`condition_tensor` gives them), refusing a class
    that takes no condition."""
    if c.ndim == 2 and not c.is_floating_point() and "tokens" in cls.condition_kinds:
        config = {"condition_len": int(c.shape[1])}  # an input sequence of token ids
        if "condition_vocab" in hyperparameters(cls):
            if c.numel() and c.min() < 0:
                raise DataError(f"{cls.name}: token ids are integers >= 0, got {int(c.min())}")
            config["condition_vocab"] = max(2, int(c.max()) + 1)
        return config
    kind = "discrete" if c.ndim == 1 else "continuous"
    if kind not in cls.condition_kinds:
        able = [n for n, k in sorted(_MODELS.items()) if kind in k.condition_kinds]
        takes = f"only a {' or '.join(cls.condition_kinds)} one" if cls.condition_kinds else "none"
        raise DataError(
            f"{cls.name} cannot be conditioned on a {kind} condition (it takes {takes}); "
            f"models that take one: {', '.join(able)}"
        )
    if kind == "discrete":
        if c.numel() and c.min() < 0:
            raise DataError(f"{cls.name}: classes are integers 0..K-1, got {int(c.min())}")
        return {"n_classes": max(2, int(c.max()) + 1)}
    return {"condition_dim": int(c.shape[1])}


def _check_kind(model: str, key: str, param: inspect.Parameter, value: Any) -> None:
    """Refuse text where the parameter takes a number or a flag (``--set hidden=abc``), and
    a number where it takes only a name, with the expected kind in the message."""
    default, annotation = param.default, str(param.annotation)
    takes_text = "str" in annotation or "Any" in annotation
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if isinstance(value, str) and (numeric or isinstance(default, bool)) and not takes_text:
        kind = "true or false" if isinstance(default, bool) else "a number"
        raise ValueError(
            f"hyper-parameter {key} of {model} must be {kind} (default {default!r}), got {value!r}"
        )
    if annotation == "str" and not isinstance(value, str):
        raise ValueError(
            f"hyper-parameter {key} of {model} must be a name such as {default!r}, got {value!r}"
        )


def _import_families() -> None:
    """Import the model packages so that their decorators have run."""
    import genzoo.models  # noqa: F401
