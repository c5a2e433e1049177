"""What the benchmark trains: the presets, the datasets each model can take, the cells.

The budgets themselves (steps, learning rates, hyper-parameters per model and dataset) are
the rows of :mod:`genzoo.bench.budgets`; ``budget_for`` looks one up.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from genzoo.bench.budgets import (
    BUDGETS,
    DEFAULT_BUDGET,
    SHIPPED,
    Budget,
    budget_key,
    recommended_budget,
)
from genzoo.data import dataset_info
from genzoo.registry import model_class

__all__ = [
    "BUDGETS",
    "DEFAULT_BUDGET",
    "PRESETS",
    "SHIPPED",
    "Budget",
    "Cell",
    "Preset",
    "budget_for",
    "budget_key",
    "cell_name",
    "cells",
    "condition_slug",
    "dataset_slug",
]


@dataclass(frozen=True)
class Preset:
    """Datasets and seeds of a benchmark preset."""

    datasets: tuple[str, ...]
    seeds: int
    #: Learning-rate multipliers: cells at factors other than 1 measure stability only.
    lr_factors: tuple[float, ...] = (1.0,)


PRESETS = {
    "quick": Preset(datasets=("8gaussians", "digits"), seeds=1),
    "full": Preset(
        datasets=("moons", "8gaussians", "25gaussians", "checkerboard", "digits"),
        seeds=3,
        lr_factors=(1.0, 10.0),
    ),
}


def dataset_slug(dataset: str) -> str:
    """A folder-safe name of a dataset: a shipped name as it is; a user's file as its file
    name and a short hash of its absolute path (two ``data.npy`` in different folders
    differ)."""
    if dataset in SHIPPED:
        return dataset
    path = Path(dataset)
    digest = hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '-', path.name).strip('-')}-{digest}"


def cell_name(
    model: str,
    dataset: str,
    seed: int,
    lr_factor: float = 1.0,
    budget_seconds: float | None = None,
    condition: str | None = None,
) -> str:
    """The folder name of one cell (a condition, a learning-rate factor other than 1 and a
    time budget are appended, so runs of different settings never share a folder)."""
    suffix = "" if condition is None else f"__c-{condition_slug(condition)}"
    suffix += "" if lr_factor == 1.0 else f"__lr{lr_factor:g}"
    if budget_seconds is not None:
        suffix += f"__{budget_seconds:g}s"
    return f"{model}__{dataset_slug(dataset)}__{seed}{suffix}"


def condition_slug(condition: str) -> str:
    """A folder-safe name of a condition (``label``; a CSV column's name)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", condition).strip("-") or "c"


def budget_for(model: str, dataset: str | None = None, conditioned: bool = False) -> Budget:
    """The budget of ``model`` (the default one when it has none of its own), with its
    changes for ``dataset`` (under a condition, ``conditioned``):
    :func:`genzoo.bench.budgets.recommended_budget` read from this module's ``BUDGETS``
    (which a test may replace)."""
    return recommended_budget(model, dataset, BUDGETS, conditioned)


Cell = tuple[str, str, int, float]


def cells(
    models: list[str],
    datasets: list[str],
    seeds: int,
    explicit: bool = False,
    lr_factors: tuple[float, ...] = (1.0,),
    condition: str | None = None,
) -> list[Cell]:
    """The (model, dataset, seed, learning-rate factor) grid.

    Every model runs on the datasets it accepts (``GenerativeModel.accepts`` on the dataset's
    declared kind, shape and levels). A preset (``explicit=False``) trains a model whose
    budget names its own datasets on those instead of the preset's; datasets the user named
    (``explicit``), shipped names or files, go to every model that accepts them.

    With ``condition`` (``"label"``) the grid holds only the datasets that carry a condition
    of that name and the models whose class can take its kind (``condition_kinds``); a preset
    trains a model whose budget names datasets for that condition (``Budget.conditioned``:
    the text-conditional cells of ``--condition input``) on those.
    """
    infos = {d: dataset_info(d) for d in datasets}
    if condition is not None:
        infos = {d: i for d, i in infos.items() if _carries(i, condition)}
        datasets = [d for d in datasets if d in infos]
    grid = []
    for model in models:
        cls = model_class(model)
        home = budget_for(model).datasets
        if condition is not None and condition in budget_for(model).conditioned:
            # (a dataset this installation does not ship is skipped, not an error)
            home = tuple(d for d in budget_for(model).conditioned[condition] if d in SHIPPED)
        if home is not None and not explicit:
            chosen = [d for d in home if cls.accepts(dataset_info(d))]
        else:
            chosen = [d for d in datasets if cls.accepts(infos[d])]
        if condition is not None:
            chosen = [d for d in chosen if _carries(dataset_info(d), condition)
                      and dataset_info(d).condition.kind in cls.condition_kinds]  # fmt: skip
        grid.extend(
            (model, d, seed, factor)
            for factor in lr_factors
            for d in chosen
            for seed in range(seeds)
        )
    return grid


def _carries(info, condition: str) -> bool:
    """Whether a dataset carries a condition named ``condition``."""
    return info.condition is not None and info.condition.name == condition
