"""The model protocol every genzoo family implements, and the plumbing it shares.

A model is an ``nn.Module`` that states its ``density`` kind, gives the scalar to minimise
for each optimiser ("player") through ``loss``, draws samples shaped like the data through
``sample`` and scores examples through ``log_prob``. It knows nothing of the trainer.

Facts that depend on a model's config (an EBM's density is exact in 2-D, unnormalised above;
a DBN has one player per layer) are :class:`model_fact` s: the class states a default and
every kind it may have (``density_kinds``), the model computes its own. What else a model can
do it declares by implementing the protocols of :mod:`genzoo.models.capabilities`.

A model may be conditional, ``Q(x | c)``: its class lists the kinds of condition it can take
in ``condition_kinds`` and its config says which one it was built for (``n_classes`` for a
class, ``condition_dim`` for a vector; :mod:`genzoo.models.conditioning`). Then ``log_prob``,
``sample``, ``loss``, ``initialize`` (and ``fit_step``) take the condition as ``c``. A model
built without one refuses a ``c`` with a ``DataError`` saying so, whatever its class.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from genzoo.errors import DataError, DensityUnavailable
from genzoo.models.conditioning import (
    CONDITION_KINDS,
    check_condition_config,
    class_counts_log_prior,
    condition_kind_of,
    describe_condition,
)
from genzoo.validation import as_tensor, check_finite, check_shape

if TYPE_CHECKING:
    from genzoo.data import DatasetInfo

#: The kinds of density a model can offer; never pass a bound or estimate off as exact.
DENSITY_KINDS = ("exact", "bound", "estimate", "unnormalized", "none")
#: What a model is, declared by its class (a ``model_fact`` where the config decides) and
#: never assigned on a model, so that ``list_models`` and a saved run state the same.
FACTS = ("density", "data_kind", "players", "condition_kind")
#: Methods that take the condition ``c`` on a conditional model; an unconditional class's
#: own versions are wrapped to refuse a ``c`` with a clear message.
CONDITIONED_METHODS = ("sample", "log_prob")

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


def _refusing_condition(method):
    """Wrap a method of a class whose models take no condition: ``c=None`` is accepted (and
    dropped), any other ``c`` gets the model's one-line refusal (``check_condition``)."""

    @functools.wraps(method)
    def wrapped(self, *args, c=None, **kwargs):
        if c is not None:
            self.check_condition(c)
        return method(self, *args, **kwargs)

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
    #: Kinds of condition (``"discrete"``: a class; ``"continuous"``: a vector) a model of this
    #: class can be built for, through its ``n_classes`` / ``condition_dim`` arguments; empty:
    #: unconditional only. The model's own is ``condition_kind``.
    condition_kinds: ClassVar[tuple[str, ...]] = ()
    #: The condition a model is built for (its config): ``n_classes`` classes, or a vector of
    #: ``condition_dim`` numbers; 0 and 0 for an unconditional model.
    n_classes: int = 0
    condition_dim: int = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _record_config(cls.__dict__["__init__"])
        for name in CONDITIONED_METHODS:
            own = cls.__dict__.get(name)
            if callable(own) and "c" not in inspect.signature(own).parameters:
                setattr(cls, name, _refusing_condition(own))
        if not set(cls.condition_kinds) <= set(CONDITION_KINDS):
            raise TypeError(f"{cls.__name__}.condition_kinds must be among {CONDITION_KINDS}")
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

    def initialize(self, data: Tensor, c: Any = None) -> None:
        """Data-dependent initialisation (k-means++, ActNorm, ...); nothing by default.

        A conditional model's takes the training conditions too, ``initialize(data, c=c)``,
        and records the class frequencies (``set_class_prior``)."""

    # -- the condition ------------------------------------------------------------------------
    @model_fact(None)
    def condition_kind(self) -> str | None:
        """``"discrete"`` (a class ``0..n_classes-1``), ``"continuous"`` (a vector of
        ``condition_dim`` numbers) or ``None``: what this model is conditioned on."""
        return condition_kind_of(self.n_classes, self.condition_dim)

    def setup_condition(self, n_classes: int = 0, condition_dim: int = 0) -> None:
        """Store the condition this model is built for (a conditional class calls it from its
        constructor), refusing one its class cannot take; a class condition also gets the
        class prior ``class_log_prior`` (uniform until ``set_class_prior``)."""
        check_condition_config(
            self.name or type(self).__name__, n_classes, condition_dim, self.condition_kinds
        )
        self.n_classes, self.condition_dim = int(n_classes), int(condition_dim)
        if self.n_classes:
            prior = torch.full((self.n_classes,), -math.log(self.n_classes))
            self.register_buffer("class_log_prior", prior)

    @torch.no_grad()
    def set_class_prior(self, c: Tensor) -> None:
        """Set ``class_log_prior`` to the log frequencies of the classes ``c`` (training
        labels), the ``p(c)`` of Bayes' rule; nothing for other conditions."""
        if self.n_classes:
            c = self.check_condition(c, len(c))
            self.class_log_prior.copy_(class_counts_log_prior(c, self.n_classes))

    def check_condition(self, c: Any, n: int | None = None) -> Tensor | None:
        """``c`` checked against the condition this model is built for, on its device.

        Discrete: an int (repeated ``n`` times) or ``(n,)`` integer classes in
        ``0..n_classes-1``, returned as int64. Continuous: ``(condition_dim,)`` (repeated) or
        ``(n, condition_dim)`` finite numbers, in the model's dtype. ``None`` passes for an
        unconditional model. Anything else raises a one-line ``DataError`` saying what to give.
        """
        name = self.name or type(self).__name__
        kind = self.condition_kind
        if kind is None:
            if c is None:
                return None
            if not self.condition_kinds:
                from genzoo.registry import list_models, model_class

                able = [m.name for m in list_models() if model_class(m.name).condition_kinds]
                raise DataError(f"{name} takes no condition (it models p(x) only); models that "
                                f"can be conditioned: {', '.join(able)}")  # fmt: skip
            raise DataError(
                f"{name} was built without a condition, so it takes no c: build it with "
                "create(..., condition=c) (genzoo train ... --condition NAME)"
            )
        what = describe_condition(self.n_classes, self.condition_dim)
        if c is None:
            raise DataError(f"{name} is conditional on {what}: pass c=... (sample(n, c=...), "
                            "log_prob(x, c=...); --condition on the command line)")  # fmt: skip
        if isinstance(c, bool):
            raise DataError(f"{name} is conditional on {what}, got the condition {c!r}")
        try:
            t = torch.as_tensor(c)
        except (TypeError, ValueError, RuntimeError) as err:
            raise DataError(f"{name} is conditional on {what}; cannot read {c!r} ({err})") from err
        if kind == "discrete":
            t = self._check_classes(t, n, what)
        else:
            t = self._check_vectors(t, n, what)
        return t.to(self.device)

    def _check_classes(self, t: Tensor, n: int | None, what: str) -> Tensor:
        name, k = self.name or type(self).__name__, self.n_classes
        if t.ndim == 0 and n is not None:
            t = t.expand(n)
        if t.ndim != 1 or (n is not None and len(t) != n):
            wanted = f"({n},)" if n is not None else "(n,)"
            raise DataError(f"{name} is conditional on {what}: give one class per example, "
                            f"an int or shape {wanted}, got shape {tuple(t.shape)}")  # fmt: skip
        if t.is_complex() or t.dtype == torch.bool:
            raise DataError(f"{name} is conditional on {what}; got a {t.dtype} condition")
        if t.is_floating_point() and not bool((t == t.round()).all()):
            raise DataError(f"{name} is conditional on {what}; got non-integer classes")
        if t.numel() and (t.min() < 0 or t.max() >= k):
            bad = int(t.min()) if t.min() < 0 else int(t.max())
            raise DataError(f"condition {bad} is out of range: {name} was built for classes "
                            f"0..{k - 1}")  # fmt: skip
        return t.long()

    def _check_vectors(self, t: Tensor, n: int | None, what: str) -> Tensor:
        name, size = self.name or type(self).__name__, self.condition_dim
        if size == 1 and t.ndim < 2:  # one number: for every example, or one each
            t = t.reshape(-1, 1)
            if len(t) == 1 and n is not None:
                t = t.expand(n, 1)
        elif t.ndim == 1 and len(t) == size and n is not None:
            t = t.expand(n, size)
        if t.ndim != 2 or t.shape[1] != size or (n is not None and len(t) != n):
            wanted = f"({n}, {size})" if n is not None else f"(n, {size})"
            raise DataError(f"{name} is conditional on {what}: give c shaped ({size},) or "
                            f"{wanted}, got shape {tuple(t.shape)}")  # fmt: skip
        t = t.to(self.dtype)
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise DataError(f"the condition given to {name} holds NaN or infinite values")
        return t

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
        only logged (a discriminator's accuracy, a gradient norm). A conditional model's
        takes the batch's conditions: ``loss(batch, player, c=c)``.
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

    def own_weight_average(self) -> str | None:
        """The hyper-parameter of a moving average of the weights this model keeps itself
        and samples with (score models' ``ema``, GANs' ``ema_decay``), when it is on;
        ``None`` otherwise. The trainer's ``ema`` would be a second one that sampling never
        reads, so it is refused for such a model."""
        return None

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

    def sample(self, n: int, generator: torch.Generator | None = None, c: Any = None) -> Tensor:
        """Draw ``n`` samples shaped ``(n, *data_shape)`` (given ``c``, for a conditional model:
        a class, a vector, or one per sample)."""
        raise NotImplementedError

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Per-example log density in nats, of the kind ``self.density`` states (``log p(x |
        c)`` for a conditional model)."""
        self.check_condition(c, len(x))
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
        # reading the values would break a compiled graph: a compiling Trainer checks them
        if not torch.compiler.is_compiling():
            check_finite(x, "input")
        return x.to(device=self.device, dtype=self.dtype)

    def save(self, directory: str) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        from genzoo.io import save_model

        save_model(self, directory)
