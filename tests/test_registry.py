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


def test_a_variant_forwarding_kwargs_takes_and_records_its_parents_arguments(tmp_path):
    """A variant declares only what it changes; the registry validates and the saved config
    records the parent's arguments it forwards, so the model rebuilds from its config."""
    import torch

    from genzoo.registry import hyperparameters, model_class

    base = model_class("realnvp")

    class Wider(base):
        def __init__(self, data_shape, hidden: int = 48, **kwargs):
            super().__init__(data_shape, hidden=hidden, **kwargs)

    params = hyperparameters(Wider)
    assert params["hidden"].default == 48  # the variant's own default shadows the parent's
    assert set(hyperparameters(base)) == set(params)
    model = Wider([2], n_layers=2)
    assert model.config["hidden"] == 48 and model.config["n_layers"] == 2
    assert set(model.config) == set(params)
    rebuilt = Wider(**model.config)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(5, 2)
    torch.testing.assert_close(rebuilt.log_prob(x), model.log_prob(x))
    with pytest.raises(TypeError):
        Wider([2], n_layer=2)
