"""The registry: duplicates refused, unknown names and hyper-parameters explained."""

from __future__ import annotations

import pytest

import genzoo
from genzoo.models.base import GenerativeModel
from genzoo.registry import register_model


def test_duplicate_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):

        @register_model("gmm", family="mixture")
        class Another(GenerativeModel):
            pass


def test_unknown_model_suggests_the_closest(moons):
    with pytest.raises(genzoo.UnknownNameError, match="Did you mean 'realnvp'") as err:
        genzoo.create("realnpv", data=moons)
    assert "gmm" in str(err.value)  # and lists the known names


def test_unknown_hyperparameter_lists_the_valid_ones(moons):
    with pytest.raises(genzoo.UnknownNameError, match="n_components") as err:
        genzoo.create("gmm", data=moons, n_component=3)
    assert "Did you mean 'n_components'" in str(err.value)


def test_missing_data_shape_is_explained():
    with pytest.raises(genzoo.UnknownNameError, match="data_shape"):
        genzoo.create("realnvp")


def test_empty_data_is_refused():
    import torch

    with pytest.raises(genzoo.DataError, match="n_examples > 0"):
        genzoo.create("gmm", data=torch.zeros(0, 2))


def test_list_models_rows():
    rows = {m.name: m for m in genzoo.list_models()}
    assert rows["gmm"].family == "mixture" and rows["gmm"].density == "exact"
    assert rows["realnvp"].family == "flow" and rows["realnvp"].density == "exact"
