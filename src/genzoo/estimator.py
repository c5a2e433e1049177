"""``genzoo.Estimator``: any genzoo model as a scikit-learn density estimator.

After scikit-learn's ``KernelDensity`` and ``GaussianMixture``: ``fit(X)`` learns a density,
``score_samples(X)`` gives the per-example log density, ``score(X)`` its mean and
``sample(n)`` draws new rows. So a genzoo model drops into a ``Pipeline`` and is tuned by
``GridSearchCV`` on held-out log-likelihood, like any scikit-learn density estimator.

With ``conditional=True`` it learns the conditional distribution ``p(X | y)`` of a model that
can be conditioned (``gmm``, the flows, ``categorical``, the VAEs, the GANs, the score
models): ``fit(X, y)``, ``sample(n, y=...)``, ``score_samples(X, y)`` (where the model has a
density); for class labels also ``predict_proba``/``predict`` by Bayes' rule
(the generative classifier) and, without ``y``, the marginal ``log p(X)``.

Example:
    >>> import numpy as np
    >>> from genzoo.estimator import Estimator
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> est = Estimator("gmm", n_components=2, steps=20).fit(X)
    >>> est.sample(5, random_state=0).shape, est.score_samples(X[:3]).shape
    ((5, 2), (3,))
"""

from __future__ import annotations

import numbers
from contextlib import AbstractContextManager
from typing import Any, Protocol, cast

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import Tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted
from sklearn.utils.validation import validate_data as _validate_data
from torch import Tensor

from genzoo.errors import DataError
from genzoo.models.conditioning import class_log_posterior, marginal_log_prob
from genzoo.registry import create, hyperparameters, model_class
from genzoo.train import Trainer
from genzoo.validation import to_tensor

#: Rows scored at once by ``score_samples``, to bound memory on large inputs.
_EVAL_ROWS = 4096


class _Online(Protocol):
    """A model that learns from a stream: one online update per mini-batch (``gmm``)."""

    def online_step(self, data: Tensor) -> dict[str, float]: ...


class Estimator(DensityMixin, BaseEstimator):
    """A genzoo model as a scikit-learn density estimator: ``fit``, ``sample``, ``score``.

    ``fit`` builds the model with ``genzoo.create(model, data=X, **hparams)`` and trains it
    with ``genzoo.Trainer``. Self-fitting models (``"gmm"``, fitted by EM) read ``steps`` as
    the maximum number of EM iterations and may stop earlier when they converge.

    ``score`` is the mean log-likelihood per example, in nats (higher is better), so
    ``GridSearchCV`` without a ``scoring`` argument selects by held-out log-likelihood.
    It is only as exact as the model's ``density`` kind: a lower bound for ``"bound"``
    models (the VAE's ELBO), a stochastic estimate for ``"estimate"`` models (IWAE, AIS,
    ODE likelihoods), an unnormalised log density for ``"unnormalized"`` models (EBMs, not
    comparable across models) and unavailable for ``"none"`` (GANs), where it raises
    ``genzoo.DensityUnavailable``.

    Arguments:
        model: a registered model name (see ``genzoo.list_models()``).
        steps: optimiser steps, or ``fit_step`` calls (EM iterations) for self-fitting models.
        batch_size: examples per mini-batch; capped at the number of training rows.
        lr: Adam learning rate.
        seed: seeds the model's initialisation and training, so ``fit`` is reproducible.
        device: ``"cpu"`` or ``"cuda"``; inputs and outputs stay NumPy arrays on the host.
        conditional: learn ``p(X | y)``: ``y`` is the condition. A 1-D ``y`` of labels (any
            values: ints, strings; floats that are all whole numbers) is a class, mapped to
            ``0..K-1`` in the order of ``classes_``; a 2-D ``y`` (or 1-D floats) is a vector of
            numbers per row. ``False`` (the default): ``y`` is ignored, as scikit-learn's
            density estimators do.
        **hparams: the model's own hyper-parameters (``n_components=8``, ``hidden=64``, ...).
            They are estimator parameters too (``get_params``, ``set_params``, ``clone``,
            grid search); unknown ones are refused by ``genzoo.create`` at ``fit`` time.

    Attributes:
        model_: the fitted genzoo model (an ``nn.Module``, in eval mode).
        n_features_in_: number of features seen by ``fit``.
        feature_names_in_: column names, when ``X`` was a DataFrame with string columns.
        history_: the trainer's metric log, one dict per logged step.
        n_iter_: steps actually taken (fewer than ``steps`` when EM converged early).
        classes_: the labels of a class condition, in the order of the model's classes.
    """

    def __init__(
        self,
        model: str,
        *,
        steps: int = 500,
        batch_size: int = 256,
        lr: float = 1e-3,
        seed: int = 0,
        device: str = "cpu",
        conditional: bool = False,
        **hparams: Any,
    ) -> None:
        self.model = model
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.conditional = conditional
        self._hparam_names: list[str] = []
        self._store_hparams(hparams)

    # -- parameters --------------------------------------------------------------------------
    def _store_hparams(self, hparams: dict[str, Any]) -> None:
        """Keep model hyper-parameters as attributes of the same name (sklearn's convention)."""
        for name, value in hparams.items():
            if name not in self._hparam_names:
                # A hyper-parameter may not shadow a method or a fitted attribute: that is a
                # naming error like a duplicate keyword, not a value to validate later.
                if hasattr(type(self), name) or name.startswith("_") or name.endswith("_"):
                    raise TypeError(
                        f"{name!r} cannot be a model hyper-parameter of Estimator: the name "
                        "is taken by the estimator itself or reserved for fitted attributes"
                    )
                if "__" in name:
                    raise ValueError(
                        f"Invalid parameter {name!r}: Estimator holds no nested estimators"
                    )
                self._hparam_names.append(name)
            setattr(self, name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters: its own arguments plus the model's hyper-parameters."""
        params = super().get_params(deep=deep)
        params.update({name: getattr(self, name) for name in self._hparam_names})
        return params

    def set_params(self, **params: Any) -> Estimator:
        """Set parameters; any other name is taken as a model hyper-parameter.

        Names are checked against the model's constructor only at ``fit`` time (by
        ``genzoo.create``, which suggests the closest valid one), so the model name and its
        hyper-parameters can be changed together in any order, as a grid search does.
        """
        own = set(self._get_param_names())
        self._store_hparams({k: v for k, v in params.items() if k not in own})
        for key in own.intersection(params):
            setattr(self, key, params[key])
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.estimator_type = "density_estimator"
        tags.target_tags.required = bool(self.conditional)  # else unsupervised: y is ignored
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        # CUDA kernels (scatter/atomic adds) are not bitwise reproducible across runs.
        tags.non_deterministic = str(self.device).startswith("cuda")
        return tags

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> Estimator:
        """Learn the density of ``X`` shaped ``(n_samples, n_features)``; ``y`` is ignored,
        unless ``conditional``: then it is the condition of each row, and the model learns
        ``p(X | y)``.

        Needs at least 2 rows: one example gives no spread to fit a density to.
        """
        X = _validate_data(self, X, dtype=(np.float64, np.float32), ensure_min_samples=2)
        n, d = X.shape
        data = to_tensor(X, torch.float32)
        condition = self._fit_condition(y, X) if self.conditional else None
        hparams = {name: _plain(getattr(self, name)) for name in self._hparam_names}
        if "seed" in hyperparameters(model_class(self.model)):
            hparams["seed"] = self.seed  # the model's own seed (k-means++ for gmm) follows ours
        with _forked_rng(self.device):
            # Seed the model's own initialisation (weights, k-means++) as well as training.
            torch.manual_seed(self.seed)
            try:
                model = create(self.model, data=data, condition=condition, **hparams)
            except DataError as err:
                raise DataError(
                    f"{self.model} cannot be fitted on X with n_samples={n}, n_features={d}: {err}"
                ) from err
            trainer = Trainer(
                steps=self.steps,
                batch_size=min(self.batch_size, n),
                lr=self.lr,
                seed=self.seed,
                device=self.device,
                progress=False,
            )
            trainer.fit(model, data, condition=condition)
        self.model_ = model.eval()
        self.history_ = list(trainer.history)
        self.n_iter_ = int(self.history_[-1]["step"]) if self.history_ else 0
        return self

    def _fit_condition(self, y: Any, X: np.ndarray) -> Tensor:
        """``y`` as the model's condition: labels mapped to ``0..K-1`` (``classes_``), or a
        float ``(n, C)`` array of numbers."""
        if y is None:
            raise ValueError(
                f"Estimator({self.model!r}, conditional=True) learns p(X | y): it requires y to "
                "be passed, but the target y is None (give the condition of each row)"
            )
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        check_consistent_length(X, y)
        if y.ndim == 1 and (y.dtype.kind not in "fc" or np.all(y == np.round(y))):
            self.classes_, labels = np.unique(y, return_inverse=True)
            return torch.as_tensor(labels.reshape(-1), dtype=torch.long)
        if hasattr(self, "classes_"):
            del self.classes_
        values = y.astype(np.float64).reshape(len(y), -1)
        return to_tensor(values, torch.float32, "y")

    def _condition(self, y: Any, n: int | None = None) -> Tensor | int | list[float] | None:
        """A condition given to ``sample``/``score_samples``: labels as class indices (a
        single label for all rows, or one per row), numbers as a float tensor."""
        if y is None:
            return None
        if not self.conditional:
            raise ValueError(
                f"Estimator({self.model!r}) was fitted without a condition (conditional=False): "
                "pass no y, or refit with conditional=True"
            )
        classes = getattr(self, "classes_", None)
        if classes is None:  # vectors: one for every row, or one per row
            values = np.asarray(y, dtype=np.float64)
            size = self.model_.condition_dim
            if values.ndim < 2:  # one vector, or one number per row of a 1-number condition
                values = values.reshape(1, size) if values.size == size else values.reshape(-1, 1)
            return to_tensor(values, torch.float32, "y")
        labels = np.asarray(y, dtype=classes.dtype if classes.dtype.kind in "OUS" else None)
        flat = labels.reshape(-1)
        index = np.searchsorted(classes, flat)
        unknown = (index >= len(classes)) | (classes[np.minimum(index, len(classes) - 1)] != flat)
        if unknown.any():
            raise DataError(
                f"y holds the label {flat[unknown][0]!r}, not one the estimator was fitted on "
                f"({', '.join(map(repr, classes.tolist()))})"
            )
        if labels.ndim == 0:
            return int(index[0])
        return torch.as_tensor(index, dtype=torch.long)

    def _supports_stream(self) -> bool:
        """True when the model learns from mini-batches (has ``online_step``); else a clear
        AttributeError, so ``hasattr(est, "partial_fit")`` is False for such models."""
        if self.conditional:
            raise AttributeError(
                f"Estimator({self.model!r}, conditional=True) has no partial_fit: online "
                "updates of a conditional model are not implemented; use fit(X, y)"
            )
        if not callable(getattr(model_class(self.model), "online_step", None)):
            raise AttributeError(
                f"Estimator({self.model!r}) has no partial_fit: the {self.model} model cannot "
                "learn from a stream (it has no online_step); use fit on the whole data, or a "
                "model that supports online updates such as 'gmm'"
            )
        return True

    @available_if(_supports_stream)
    def partial_fit(self, X: Any, y: Any = None) -> Estimator:
        """Update the density with one mini-batch ``X`` of a stream; ``y`` is ignored.

        The first call builds and initialises the model from ``X`` (so it needs at least as
        many rows as, say, mixture components); each call is then one online update of the
        model (for ``"gmm"``: online EM, Cappe & Moulines 2009, step size (t+2)^-kappa).
        Only models with an ``online_step`` have this method.
        """
        first = not hasattr(self, "model_")
        X = _validate_data(self, X, dtype=(np.float64, np.float32), reset=first)
        data = to_tensor(X, torch.float32)
        if first:
            hparams = {name: _plain(getattr(self, name)) for name in self._hparam_names}
            if "seed" in hyperparameters(model_class(self.model)):
                hparams["seed"] = self.seed
            with _forked_rng(self.device):
                torch.manual_seed(self.seed)
                model = create(self.model, data=data, **hparams).to(self.device)
            self.history_, self.n_iter_ = [], 0
        else:
            model = self.model_
        with torch.no_grad():
            batch = data.to(device=model.device, dtype=model.dtype)
            terms = cast(_Online, model).online_step(batch)
        self.model_ = model.eval()
        self.n_iter_ += 1
        self.history_.append({"step": self.n_iter_, **terms})
        return self

    # -- pickling ----------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fitted model as its name, config and tensors, as ``model.save`` does.

        So a model class need not be picklable itself (joblib and ``GridSearchCV(n_jobs=...)``
        pickle estimators), and unpickling rebuilds it through its constructor.
        """
        state = dict(super().__getstate__())  # a copy: it may be our own __dict__
        model = state.get("model_")
        if model is not None:
            state["model_"] = {
                "name": model.name,
                "config": model.config,
                "dtype": str(model.dtype).removeprefix("torch."),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved = state.get("model_")
        if isinstance(saved, dict):
            model = model_class(saved["name"])(**saved["config"])
            model.to(dtype=getattr(torch, saved["dtype"]))
            model.load_state_dict(saved["state_dict"])
            state = {**state, "model_": model.to(state.get("device", "cpu")).eval()}
        super().__setstate__(state)

    # -- scoring -----------------------------------------------------------------------------
    def score_samples(self, X: Any, y: Any = None) -> np.ndarray:
        """Log density of each row of ``X``, in nats, shaped ``(n_samples,)``.

        Of the kind the model states in ``model_.density``: exact, a lower bound, an
        estimate or unnormalised; ``genzoo.DensityUnavailable`` when it has none. A
        conditional estimator gives ``log p(x | y)`` with ``y`` (one label or vector for all
        rows, or one per row), and without it, for class labels, the marginal
        ``log p(x) = log sum_k p(x | k) p(k)`` with the training frequencies ``p(k)``.
        """
        check_is_fitted(self)
        X = _validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        model = self.model_
        data = to_tensor(X, model.dtype)
        condition = self._condition(y)
        if isinstance(condition, Tensor) and condition.ndim and len(condition) not in (1, len(X)):
            raise DataError(f"y holds {len(condition)} conditions for {len(X)} rows of X")
        out = []
        with torch.no_grad():
            for start in range(0, len(data), _EVAL_ROWS):
                chunk = data[start : start + _EVAL_ROWS].to(model.device)
                if condition is None and model.condition_kind == "discrete":
                    out.append(marginal_log_prob(model, chunk).cpu())
                    continue
                c = condition
                if isinstance(c, Tensor) and len(c) == len(data) and len(data) > 1:
                    c = c[start : start + _EVAL_ROWS]
                elif isinstance(c, Tensor) and c.ndim == 2:
                    c = c[0]  # one vector for every row
                out.append(model.log_prob(chunk, c=c).detach().cpu())
        return torch.cat(out).double().numpy()

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per row of ``X``, in nats (higher is better); ``y`` is ignored,
        unless the estimator is conditional (then ``log p(x | y)``, see ``score_samples``).

        A lower bound for ``"bound"`` models, an estimate for ``"estimate"`` models.
        """
        return float(np.mean(self.score_samples(X, y if self.conditional else None)))

    def _classifies(self) -> bool:
        """True for a conditional estimator of class labels; else a clear AttributeError,
        so ``hasattr(est, "predict")`` is False for the others."""
        if not self.conditional:
            raise AttributeError(
                f"Estimator({self.model!r}) has no predict: only a conditional estimator of "
                "class labels (conditional=True, fitted on labels y) classifies, by Bayes' rule"
            )
        if hasattr(self, "model_") and not hasattr(self, "classes_"):
            raise AttributeError("this estimator was fitted on numbers, not class labels: it "
                                 "has no predict")  # fmt: skip
        return True

    @available_if(_classifies)
    def predict_proba(self, X: Any) -> np.ndarray:
        """``p(y = k | x)`` of each row by Bayes' rule, ``p(x | k) p(k)`` normalised with the
        training frequencies ``p(k)``: ``(n_samples, n_classes)``, in the order of
        ``classes_``. Only as good as the model's density (the generative classifier)."""
        check_is_fitted(self)
        X = _validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        model = self.model_
        data = to_tensor(X, model.dtype)
        with torch.no_grad():
            parts = [
                class_log_posterior(model, chunk.to(model.device)).exp().cpu()
                for chunk in data.split(_EVAL_ROWS)
            ]
        return torch.cat(parts).numpy()

    @available_if(_classifies)
    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each row by Bayes' rule (see ``predict_proba``)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, n_samples: int = 1, random_state: Any = None, y: Any = None) -> np.ndarray:
        """Draw ``n_samples`` rows ``(n_samples, n_features)`` from the fitted model.

        ``random_state`` (an int, a NumPy ``RandomState``/``Generator`` or ``None`` for fresh
        entropy) seeds a ``torch.Generator``, so equal integers give equal samples. A
        conditional estimator samples given ``y``: one label (or vector) for every row, or
        ``n_samples`` of them.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        model = self.model_
        generator = torch.Generator(device=model.device)
        if random_state is None:
            generator.seed()
        else:
            generator.manual_seed(_seed_from(random_state))
        condition = self._condition(y)
        if isinstance(condition, Tensor) and condition.ndim == 2 and len(condition) == 1:
            condition = condition[0]  # one vector for every row
        with torch.no_grad():
            x = model.sample(int(n_samples), generator=generator, c=condition)
        return x.detach().cpu().reshape(int(n_samples), -1).double().numpy()


def _plain(value: Any) -> Any:
    """NumPy scalars (from ``np.arange`` grids, say) as Python numbers, as models expect."""
    return value.item() if isinstance(value, np.generic) else value


def _seed_from(random_state: Any) -> int:
    """An integer seed from an int or a NumPy random state (sklearn's conventions)."""
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int64).max))
    raise ValueError(
        f"random_state must be None, an int or a NumPy RandomState/Generator, got {random_state!r}"
    )


def _forked_rng(device: str) -> AbstractContextManager[None]:
    """Fork torch's global RNG (CPU, plus the CUDA device used) so ``fit`` leaves it as found."""
    devices: list[int] = []
    if str(device).startswith("cuda") and torch.cuda.is_available():
        devices = [torch.device(device).index or torch.cuda.current_device()]
    return torch.random.fork_rng(devices=devices)
