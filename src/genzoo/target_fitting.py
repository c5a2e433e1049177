"""Fit a flow to an unnormalised 2-D target density by reverse KL (no data).

What ``genzoo.fit_target`` and ``genzoo train planar --target u1`` call. The models that
can be fitted this way take a ``target`` hyper-parameter (``planar``, ``radial``); their
loss with no batch is the free energy of Rezende & Mohamed (2015), eq. (15).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genzoo.data import targets
from genzoo.io import load_model
from genzoo.models.base import GenerativeModel
from genzoo.models.flows.planar import reverse_kl
from genzoo.registry import create, hyperparameters, list_models, model_class
from genzoo.train import Trainer


def target_models() -> list[str]:
    """Names of the registered models that can be fitted to a target."""
    return [m.name for m in list_models() if "target" in hyperparameters(model_class(m.name))]


def fit_target(
    model_name: str,
    target: str,
    out: str | Path | None = None,
    hparams: dict[str, Any] | None = None,
    **trainer_settings: Any,
) -> tuple[GenerativeModel, Trainer]:
    """Fit ``model_name`` to target ``target`` (``"u1"``..``"u4"``) by reverse KL.

    ``hparams`` go to the model (``n_layers``, ``mc_samples``, ``anneal_steps``);
    ``trainer_settings`` to ``genzoo.Trainer`` (``steps``, ``lr``, ``seed``, ``device``,
    ...; ``batch_size`` is unused, the model draws ``mc_samples`` per step). Returns the
    model and the trainer; ``evaluate_target(model)`` measures the reverse KL.

    Example:
        >>> model, _ = fit_target("planar", "u1", hparams={"n_layers": 4}, steps=10)
        >>> round(evaluate_target(model, n=1000)["log_z"], 3)
        1.878
    """
    if "target" not in hyperparameters(model_class(model_name)):
        raise ValueError(
            f"{model_name} cannot be fitted to a target density; these can: "
            f"{', '.join(target_models())}"
        )
    targets.energy(target, torch.zeros(1, 2))  # an unknown name is refused here
    trainer = Trainer(out=out, **trainer_settings)
    if trainer.resume and out is not None and (Path(out) / "config.json").exists():
        model = load_model(out)
    else:
        torch.manual_seed(trainer.seed)
        model = create(model_name, target=target, **(hparams or {}))
    trainer.fit(model, None, run_info={"target": target})
    return model, trainer


def evaluate_target(
    run: str | Path | GenerativeModel, n: int = 100_000, seed: int = 0
) -> dict[str, Any]:
    """Reverse KL (nats, with standard error), free energy and ``log Z`` of a fitted model."""
    model = run if isinstance(run, GenerativeModel) else load_model(run)
    return {"model": model.name, **reverse_kl(model, n=n, seed=seed)}
