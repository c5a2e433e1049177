"""Models declare what they can do: capabilities, per-model facts, and a model from outside.

A throw-away model written into a temporary folder, registered by importing it, is listed,
trained, put in the benchmark grid for the data it accepts and drawn with its capability's
figures, without a line changed anywhere else in genzoo.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import genzoo
from genzoo import registry
from genzoo.bench.grid import cells
from genzoo.cli import main
from genzoo.figures.catalogue import run_figures
from genzoo.models.capabilities import Mixture, capabilities, model_facts
from genzoo.workflow import train

NAME = "diag-gaussian-test"
MODULE = "genzoo_throwaway_model"
SOURCE = f'''
"""A throw-away model: one diagonal Gaussian over vectors, fitted by gradient descent."""

import math

import torch
from torch import nn

from genzoo.models.base import GenerativeModel
from genzoo.registry import register_model


@register_model("{NAME}", family="mixture")
class DiagonalGaussian(GenerativeModel):
    """One diagonal Gaussian (a one-component mixture), to test that models plug in."""

    density = "exact"
    data_kinds = ("points", "tabular")

    def __init__(self, data_shape, init_std: float = 1.0):
        super().__init__(data_shape)
        self.mean = nn.Parameter(torch.zeros(self.data_dim))
        self.log_std = nn.Parameter(torch.full((self.data_dim,), math.log(init_std)))

    def log_prob(self, x):
        x = self.check_input(x).reshape(x.shape[0], -1)
        normal = torch.distributions.Normal(self.mean, self.log_std.exp())
        return normal.log_prob(x).sum(-1)

    def loss(self, batch, player="model"):
        return -self.log_prob(batch).mean()

    def sample(self, n, generator=None):
        eps = torch.randn(n, self.data_dim, generator=generator, dtype=self.dtype)
        x = self.mean.detach() + eps.to(self.device) * self.log_std.detach().exp()
        return x.reshape(n, *self.data_shape)

    # -- the Mixture capability ----------------------------------------------------------
    def components(self):
        var = self.log_std.detach().exp().pow(2)
        return torch.ones(1, dtype=self.dtype), self.mean.detach()[None], torch.diag(var)[None]

    def predict_proba(self, x):
        return torch.ones(x.shape[0], 1, dtype=self.dtype)
'''


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    """The model module written into ``tmp_path`` and imported (which registers it);
    unregistered and forgotten afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(SOURCE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module(MODULE)
    yield module.DiagonalGaussian
    registry._MODELS.pop(NAME, None)
    sys.modules.pop(MODULE, None)


def test_a_model_from_outside_is_listed_trained_benchmarked_and_drawn(throwaway, tmp_path):
    row = {m.name: m for m in genzoo.list_models()}[NAME]
    assert (row.family, row.density, row.density_kinds) == ("mixture", "exact", ("exact",))

    run = tmp_path / "run"
    model, trainer = train(NAME, "moons", out=run, n=500, steps=60, batch_size=100, lr=5e-2,
                           progress=False)  # fmt: skip
    losses = [r["loss"] for r in trainer.history]
    assert losses[-1] < losses[0]
    assert isinstance(model, Mixture) and capabilities(model) == ["Mixture"]

    grid = cells([NAME], ["moons", "8gaussians", "wine", "digits", "grammar"], seeds=1,
                 explicit=True)  # fmt: skip
    assert [c[1] for c in grid] == ["moons", "8gaussians", "wine"]  # not images, not text

    names = {p.name for p in run_figures(run, tmp_path / "figures")}
    assert names == {"samples.png", "density.png", "ellipses.png", "responsibilities.png"}


def test_eval_reports_what_this_model_is(throwaway, tmp_path, capsys):
    run = tmp_path / "run"
    train(NAME, "moons", out=run, n=300, steps=5, batch_size=100, progress=False)
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["capabilities"] == ["Mixture"] and result["players"] == ["model"]
    assert (result["density"], result["density_kinds"]) == ("exact", ["exact"])
    assert result["data_kind"] == "continuous" and "nll" in result


def test_the_config_decides_a_fact_and_the_class_lists_every_kind(tmp_path):
    points = genzoo.load_dataset("moons", n=200)
    table = genzoo.load_dataset("wine", n=200)
    flat, deep = (genzoo.create("ebm", data=x, hidden=8) for x in (points, table))
    assert (flat.density, deep.density) == ("exact", "unnormalized")
    cls = type(flat)
    assert cls.density == "unnormalized" and set(cls.density_kinds) == {"exact", "unnormalized"}
    row = {m.name: m for m in genzoo.list_models()}["ebm"]
    assert set(row.density_kinds) == {"exact", "unnormalized"}
    flat.save(tmp_path / "ebm")
    assert genzoo.load(tmp_path / "ebm").density == "exact"  # the config, saved, decides

    binary = genzoo.load_dataset("digits-binary", n=100)
    dbn = genzoo.create("dbn", data=binary, hidden=[8, 4, 2])
    assert dbn.players == ("layer0", "layer1", "layer2")
    gmm = genzoo.create("deep-gmm", data=points, fit="gradient", n_components=[2], latent_dims=[1])
    assert gmm.players == ("model",)
    assert model_facts(gmm)["players"] == ["model"]


def test_figures_and_measures_name_no_model_and_measures_no_dataset():
    """The figures and the benchmark's measurements ask models and datasets what they are."""
    src = Path(genzoo.__file__).parent
    catalogue = (src / "figures" / "catalogue.py").read_text(encoding="utf-8")
    measure = (src / "bench" / "measure.py").read_text(encoding="utf-8")
    for m in genzoo.list_models():
        assert f'"{m.name}"' not in catalogue + measure, m.name
    assert "model.name ==" not in catalogue and "family ==" not in catalogue
    for d in genzoo.list_datasets():
        assert f'"{d.name}"' not in measure, d.name
    assert "getattr(model" not in measure and "hasattr(model" not in measure


def test_capabilities_are_found_by_members_not_by_class():
    class Bare:
        def components(self):
            return torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None]

    assert not isinstance(Bare(), Mixture)  # predict_proba is missing

    class Whole(Bare):
        def predict_proba(self, x):
            return torch.ones(len(x), 1)

    assert isinstance(Whole(), Mixture) and capabilities(Whole()) == ["Mixture"]
