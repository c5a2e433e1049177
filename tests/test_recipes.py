"""Variants are recipes: each declares only what it changes and forwards the rest by
``**kwargs`` (zuko's ``class NSF(MAF)``), and every model rebuilds from its saved config."""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

import pytest
from test_contract import contract_setup

import genzoo
from genzoo.models.base import GenerativeModel, constructor_parameters
from genzoo.registry import _MODELS, _import_families, hyperparameters

_import_families()
MODELS = sorted(_MODELS)


def _parent_with_init(klass: type) -> type | None:
    """The first ancestor of ``klass`` that defines ``__init__`` (``None`` past the base)."""
    for parent in klass.__mro__[1:]:
        if parent is GenerativeModel or not issubclass(parent, GenerativeModel):
            return None
        if "__init__" in parent.__dict__:
            return parent
    return None


def repeated_defaults(cls: type) -> list[str]:
    """``Class.parameter`` for each parameter a class in ``cls``'s hierarchy declares again
    with the default its parent's constructor already gives it. Required parameters
    (``data_shape``, ``levels``: positional, read from the data) have no default to repeat."""
    found = []
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or not issubclass(klass, GenerativeModel):
            continue
        parent = _parent_with_init(klass)
        if parent is None:
            continue
        inherited = constructor_parameters(parent)
        own = inspect.signature(inspect.unwrap(klass.__dict__["__init__"])).parameters
        for name, param in own.items():
            if name not in inherited or param.default is param.empty:
                continue
            default = inherited[name].default
            if type(default) is type(param.default) and default == param.default:
                found.append(f"{klass.__name__}.{name}")
    return found


def test_the_recipe_check_finds_a_repeated_default():
    base = genzoo.registry.model_class("gan")

    class Copying(base):
        def __init__(self, data_shape: Sequence[int], hidden: int = 128, **kwargs: Any) -> None:
            super().__init__(data_shape, hidden=hidden, **kwargs)

    class Changing(base):
        def __init__(self, data_shape: Sequence[int], hidden: int = 64, **kwargs: Any) -> None:
            super().__init__(data_shape, hidden=hidden, **kwargs)

    assert repeated_defaults(Copying) == ["Copying.hidden"]
    assert repeated_defaults(Changing) == []


@pytest.mark.parametrize("name", MODELS)
def test_no_variant_redeclares_its_parents_default(name):
    """A variant declares what it changes (a new argument or a new default) and forwards the
    rest by ``**kwargs``; a parameter its parent already gives with the same default is a copy."""
    assert repeated_defaults(_MODELS[name]) == []


@pytest.mark.parametrize("name", MODELS)
def test_a_model_rebuilds_from_its_config(name):
    data, hparams = contract_setup(name)
    model = genzoo.create(name, data=data, **hparams)
    rebuilt = type(model)(**model.config)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())


@pytest.mark.parametrize("name", MODELS)
def test_a_saved_full_config_loads(name):
    """A run's ``config.json`` holds every constructor argument (forwarded ones included, the
    form of the configs saved before variants forwarded ``**kwargs``): it still loads."""
    data, hparams = contract_setup(name)
    model = genzoo.create(name, data=data, **hparams)
    saved = json.loads(json.dumps(model.config))
    assert set(saved) == set(hyperparameters(type(model)))
    assert type(model)(**saved).config == model.config
