"""The model protocol every genzoo family implements, and the plumbing it shares.

A model is an ``nn.Module`` that states its ``density`` kind, gives the scalar to minimise
for each optimiser ("player") through ``loss``, draws samples shaped like the data through
``sample`` and scores examples through ``log_prob``. It knows nothing of the trainer.

Facts that depend on a model's config (an EBM's density is exact in 2-D, unnormalised above;
a DBN has one player per layer) are :class:`model_fact` s: the class states a default and
every kind it may have (``density_kinds``), the model computes its own. What else a model can
do it declares by implementing the protocols of :mod:`genzoo.models.capabilities`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from genzoo.errors import DensityUnavailable
from genzoo.validation import as_tensor, check_finite, check_shape

if TYPE_CHECKING:
    from genzoo.data import DatasetInfo

#: The kinds of density a model can offer; never pass a bound or estimate off as exact.
DENSITY_KINDS = ("exact", "bound", "estimate", "unnormalized", "none")
#: What a model is, declared by its class (a ``model_fact`` where the config decides) and
#: never assigned on a model, so that ``list_models`` and a saved run state the same.
FACTS = ("density", "data_kind", "players")

LossOutput = Tensor | Mapping[str, Tensor]


def constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``cls(...)``, following ``**kwargs`` up the class hierarchy.

    A variant declares only what it changes (``class BetaVAE(VAE)`` takes ``beta`` and
    forwards ``**kwargs``); its parameters are its own, then those of the first ancestor
    that defines ``__init__``, and so on while a constructor forwards ``**kwargs``. A
    parameter a variant redeclares (a new default) shadows its ancestor's.
    """
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or klass is nn.Module or klass is object:
            continue
        signature = inspect.signature(inspect.unwrap(klass.__dict__["__init__"]))
        forwards = False
        for name, param in signature.parameters.items():
            if name == "self" or param.kind is param.VAR_POSITIONAL:
                continue
            if param.kind is param.VAR_KEYWORD:
                forwards = True
            elif name not in params:
                params[name] = param.replace(kind=param.KEYWORD_ONLY)
        if not forwards:
            break
    return params


def _record_config(init):
    """Wrap ``__init__`` so the outermost call records every constructor argument (those a
    variant forwards through ``**kwargs`` included, defaults filled in) as the model config."""

    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        if "_config" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            arguments = {}
            for name, value in bound.arguments.items():
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(value)
                elif kind is not inspect.Parameter.VAR_POSITIONAL and name != "self":
                    arguments[name] = value
            config = {}
            for name, param in constructor_parameters(type(self)).items():
                if name in arguments:
                    config[name] = arguments[name]
                elif param.default is not param.empty:
                    config[name] = param.default
            object.__setattr__(self, "_config", config)
        init(self, *args, **kwargs)

    return wrapped


class model_fact:  # noqa: N801 - a decorator, read like ``property``
    """A fact a model class states with a default and each model computes from its config.

    Read on the class (``EBM.density``) it gives the default, which class-level questions
    (``accepts``, ``data_kind_for``) may go by before any model exists; read on a model it
    calls the decorated method. It cannot be assigned: a model's facts follow its config,
    so a saved and reloaded model states the same ones.

    Example::

        density_kinds = ("unnormalized", "exact")

        @model_fact("unnormalized")
        def density(self) -> str:
            return "exact" if self.data_dim <= 2 else "unnormalized"
    """

    def __init__(self, default: Any) -> None:
        self.default = default
        self.name = ""

    def __call__(self, compute: Callable[[Any], Any]) -> model_fact:
        self.compute = compute
        self.__doc__ = compute.__doc__
        return self

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, model: Any, owner: type | None = None) -> Any:
        return self.default if model is None else self.compute(model)

    def __set__(self, model: Any, value: Any) -> None:
        raise AttributeError(
            f"{type(model).__name__}.{self.name} is computed from the model's config; "
            "change the config instead of assigning it"
        )


class GenerativeModel(nn.Module):
    """Base class of every genzoo model (not registered itself)."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    density: ClassVar[str] = "none"
    #: Every density kind a model of this class may have (its config decides, see
    #: ``model_fact``); ``(density,)`` unless the class says otherwise.
    density_kinds: ClassVar[tuple[str, ...]] = ("none",)
    #: "continuous" models need dequantised data when the data are discrete levels.
    data_kind: ClassVar[str] = "continuous"
    #: Kinds of dataset the model can be trained on (``DatasetInfo.kind``).
    data_kinds: ClassVar[tuple[str, ...]] = ("points", "tabular", "image")
    #: Most levels per scalar a discrete model takes (2 for binary units); ``None``: any.
    max_levels: ClassVar[int | None] = None
    #: How a text file given by path is cut into examples for this model: ``"windows"`` of
    #: ``seq_len`` tokens, or ``"lines"`` (one sentence per example, padded).
    text_layout: ClassVar[str] = "windows"
    #: Optimisers the trainer keeps, one per player; empty for models that fit themselves.
    players: ClassVar[tuple[str, ...]] = ("model",)
    #: Constructor arguments read from the data by ``config_from_data``.
    data_fixed: ClassVar[tuple[str, ...]] = ("data_shape",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _record_config(cls.__dict__["__init__"])
        own = cls.__dict__.get("density")
        if isinstance(own, str) and "density_kinds" not in cls.__dict__:
            cls.density_kinds = (own,)
        elif isinstance(own, model_fact) and "density_kinds" not in cls.__dict__:
            raise TypeError(f"{cls.__name__}.density depends on the config: declare the kinds "
                            "it may take in density_kinds")  # fmt: skip
        kinds = cls.density_kinds
        if cls.density not in kinds or not set(kinds) <= set(DENSITY_KINDS):
            raise TypeError(f"{cls.__name__}.density and every kind in density_kinds must be "
                            f"one of {DENSITY_KINDS}, density among density_kinds")  # fmt: skip

    def __init__(self, data_shape: Sequence[int]) -> None:
        super().__init__()
        self.data_shape = tuple(int(d) for d in data_shape)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in FACTS:
            raise AttributeError(
                f"{type(self).__name__}.{name} is declared by the class: a class attribute, or "
                "a model_fact computed from the config where the config decides"
            )
        super().__setattr__(name, value)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def config_from_data(cls, data: Tensor) -> dict[str, Any]:
        """Constructor arguments fixed by the data (its example shape, by default)."""
        return {"data_shape": list(data.shape[1:])}

    @classmethod
    def data_kind_for(cls, data: Tensor, hparams: Mapping[str, Any]) -> str:
        """The ``data_kind`` a model built with ``hparams`` will have on ``data`` (a VAE's
        decoder decides it); the class attribute by default."""
        return cls.data_kind

    @classmethod
    def accepts(cls, info: DatasetInfo) -> bool:
        """Whether the model can be trained on the dataset ``info`` describes, read from its
        declared kind, shape and levels: discrete models need integer levels (at most
        ``max_levels``), continuous ones take discrete levels dequantised. The benchmark grid
        and ``genzoo bench --data`` ask this; nothing keeps a list of names."""
        if info.kind not in cls.data_kinds:
            return False
        if cls.data_kind == "discrete" and info.levels is None:
            return False
        return cls.max_levels is None or (info.levels or math.inf) <= cls.max_levels

    def initialize(self, data: Tensor) -> None:
        """Data-dependent initialisation (k-means++, ActNorm, ...); nothing by default."""

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-ready: ``type(model)(**model.config)`` rebuilds it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._config.items()}

    @property
    def data_dim(self) -> int:
        """Number of scalars in one example."""
        return math.prod(self.data_shape)

    @property
    def device(self) -> torch.device:
        """The device of the model's tensors."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the model's tensors."""
        for t in list(self.parameters()) + list(self.buffers()):
            if t.is_floating_point():
                return t.dtype
        return torch.get_default_dtype()

    # -- the protocol -------------------------------------------------------------------------
    def loss(self, batch: Tensor | None, player: str = "model") -> LossOutput:
        """The scalar (or named terms, summed) that ``player``'s optimiser minimises.

        ``batch`` is ``None`` only for models trained without data (reverse KL to a target).
        Named terms are summed and minimised, except those named ``"diag/..."``, which are
        only logged (a discriminator's accuracy, a gradient norm).
        """
        raise NotImplementedError(f"{type(self).__name__} is not trained by gradient descent")

    def schedule(self, step: int) -> Sequence[str]:
        """The players that take an optimiser step at ``step`` (all of them by default)."""
        return self.players

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        """The parameters ``player``'s optimiser updates (all of them by default)."""
        return [p for p in self.parameters() if p.requires_grad]

    def optimizer_settings(self, player: str) -> dict[str, Any]:
        """How ``player`` is optimised: Adam arguments (``betas``, ``weight_decay``), or
        ``"optimizer": "sgd"`` with ``momentum``, and ``"lr_scale"`` on the trainer's rate."""
        return {}

    def after_step(self, player: str, step: int) -> None:
        """Called after ``player``'s optimiser step (weight clipping, EMA); nothing by default."""

    def fit_step(self, data: Tensor) -> dict[str, float]:
        """One step of a model's own fitting procedure (EM, say) over the training data."""
        raise NotImplementedError(f"{type(self).__name__} is trained by gradient descent")

    @property
    def density_method(self) -> str:
        """How ``log_prob`` is obtained when it is not exact ("IWAE-1000", "AIS", ...), so
        reports can name the estimator; empty for exact densities."""
        return ""

    @property
    def needs_data(self) -> bool:
        """Whether training needs examples (a flow fitted to a target density by reverse KL
        draws its own); the trainer refuses ``data=None`` for a model that does."""
        return True

    @property
    def converged(self) -> bool:
        """Whether a self-fitting model has met its stopping rule."""
        return False

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples shaped ``(n, *data_shape)``."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """Per-example log density in nats, of the kind ``self.density`` states."""
        raise DensityUnavailable(
            f"{self.name or type(self).__name__} defines no density (density='none'): "
            "compare it with sample-based metrics such as MMD or mode coverage instead"
        )

    # -- helpers ------------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> Tensor:
        """Validate a batch (numeric, shape, finiteness) and move it to the model's device and
        dtype; arrays and lists are taken as tensors."""
        x = as_tensor(x, "input")
        check_shape(x, self.data_shape)
        check_finite(x, "input")
        return x.to(device=self.device, dtype=self.dtype)

    def save(self, directory: str) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        from genzoo.io import save_model

        save_model(self, directory)
