"""One contract test over every registered model (after zuko's tests/test_flows.py)."""

from __future__ import annotations

import pytest
import torch

import genzoo
from genzoo.models.base import DENSITY_KINDS

MODELS = [m.name for m in genzoo.list_models()]
#: Small hyper-parameters per model, so the contract runs in seconds.
SMALL = {
    "realnvp": {"n_layers": 2, "hidden": 16},
    "gmm": {"n_components": 3},
    "deep-gmm": {"n_components": [3, 2], "latent_dims": [1, 1], "strict_dims": False},
    "gan": {"hidden": 16},
    "wgan-gp": {"hidden": 16},
    "lsgan": {"hidden": 16},
    "infogan": {"hidden": 16},
    "cyclegan": {"hidden": 16},
    "stylegan": {"channels": 8, "hidden": 16},
    "progan": {"channels": 8, "steps_per_phase": 4},
    "glow": {"n_steps": 2, "hidden": 16},
    "nsf": {"n_layers": 2, "hidden": 16, "bins": 4},
    "planar": {"n_layers": 4},
    "radial": {"n_layers": 4},
    "ncsn": {"hidden": 16, "depth": 1, "n_levels": 3, "n_steps_each": 5},
    "ddpm": {"hidden": 16, "depth": 1, "sampling_steps": 20, "ode_solver": "rk4"},
    "score-sde": {"hidden": 16, "depth": 1, "sampling_steps": 20, "ode_solver": "rk4"},
}
SMALL.update({
    "rbm": {"n_hidden": 16, "ais_betas": 50, "ais_runs": 10, "sample_steps": 20},
    "gb-rbm": {"n_hidden": 8, "ais_betas": 50, "ais_runs": 10, "sample_steps": 20},
    "dbn": {"hidden": [16, 8], "steps_per_layer": 2, "ais_betas": 50, "ais_runs": 10,
            "sample_steps": 20},
    "dbm": {"hidden": [16, 8], "steps_per_layer": 2, "ais_betas": 50, "ais_runs": 10,
            "sample_steps": 20},
    "ebm": {"hidden": 16, "langevin_steps": 5, "sample_steps": 10, "grid_size": 50},
    "mdsm-ebm": {"hidden": 16, "sample_steps": 10, "grid_size": 50},
    "made": {"hidden": [32]},
    "pixelcnn": {"channels": 8, "n_layers": 1},
    "lstm-lm": {"embedding": 8, "hidden": 16, "levels": 12},
    "transformer-lm": {"width": 16, "n_layers": 1, "heads": 2, "levels": 12},
    "vae": {"hidden": 16, "iwae_samples": 50},
    "beta-vae": {"hidden": 16, "iwae_samples": 50},
    "sentence-vae": {"hidden": 16, "embed_dim": 8, "latent_dim": 4, "iwae_samples": 4},
})  # fmt: skip
#: Models that cannot take 2-D points get data they can take.
CONTRACT_DATA = {
    "progan": "digits",
    "rbm": "digits-binary",
    "dbn": "digits-binary",
    "dbm": "digits-binary",
    "categorical": "digits-binary",
    "made": "digits-binary",
    "pixelcnn": "digits-binary",
    "lstm-lm": "grammar",
    "transformer-lm": "grammar",
    "sentence-vae": "stdlib-sentences",
}


@pytest.fixture(scope="module")
def datasets() -> dict[str, torch.Tensor]:
    levels = genzoo.load_dataset("digits", split="train", n=256)
    return {
        "digits": genzoo.data.dequantize(levels, 17, torch.Generator().manual_seed(0)),
        "digits-binary": genzoo.load_dataset("digits-binary", split="train", n=256),
        "grammar": genzoo.load_dataset("grammar", split="train", n=256),
        "stdlib-sentences": genzoo.load_dataset("stdlib-sentences", split="train", n=256),
    }


@pytest.fixture
def data_for(moons, datasets):
    return lambda name: datasets[CONTRACT_DATA[name]] if name in CONTRACT_DATA else moons


def _model(name: str, data: torch.Tensor) -> genzoo.models.base.GenerativeModel:
    return genzoo.create(name, data=data, **SMALL.get(name, {}))


def _train_a_little(model, data) -> None:
    genzoo.Trainer(steps=5, batch_size=64, progress=False).fit(model, data)


def test_every_family_of_issue_2_is_registered():
    assert {"gmm", "realnvp"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_metadata(name):
    info = next(m for m in genzoo.list_models() if m.name == name)
    assert info.density in DENSITY_KINDS
    assert info.family and info.description
    assert genzoo.registry.model_class(name).__doc__


@pytest.mark.parametrize("name", MODELS)
def test_loss_is_finite_and_gradients_reach_every_parameter(name, data_for):
    data = data_for(name)
    model = _model(name, data)
    if not model.players:
        stats = model.fit_step(data)
        assert all(torch.isfinite(torch.tensor(float(v))) for v in stats.values())
        return
    _train_a_little(model, data)  # zero-initialised output layers block gradients at step 0
    for player in model.players:
        model.zero_grad()
        output = model.loss(data[:128], player)
        total = sum(output.values()) if isinstance(output, dict) else output
        assert total.ndim == 0 and torch.isfinite(total)
        total.backward()
        for pname, p in model.named_parameters():
            if any(p is q for q in model.player_parameters(player)):
                assert p.grad is not None and torch.isfinite(p.grad).all(), pname
                assert p.grad.abs().sum() > 0, f"no gradient reaches {pname}"


@pytest.mark.parametrize("name", MODELS)
def test_seeded_sampling_is_reproducible_and_shaped_like_data(name, data_for):
    data = data_for(name)
    model = _model(name, data)
    _train_a_little(model, data)
    a = model.sample(50, generator=torch.Generator().manual_seed(3))
    b = model.sample(50, generator=torch.Generator().manual_seed(3))
    c = model.sample(50, generator=torch.Generator().manual_seed(4))
    assert a.shape == (50, *data.shape[1:])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_gives_identical_log_prob(name, data_for, tmp_path):
    data = data_for(name)
    held_out = data[-100:]
    model = _model(name, data)
    _train_a_little(model, data)
    model.save(tmp_path / "run")
    loaded = genzoo.load(tmp_path / "run")
    assert type(loaded) is type(model)
    if model.density == "none":
        with pytest.raises(genzoo.DensityUnavailable):
            loaded.log_prob(held_out[:10])
        return
    before = model.log_prob(held_out[:100])
    after = loaded.log_prob(held_out[:100])
    assert before.shape == (100,)
    assert torch.equal(before, after)


@pytest.mark.parametrize("name", MODELS)
def test_wrong_dimensionality_is_refused(name, data_for):
    model = _model(name, data_for(name))
    with pytest.raises((genzoo.DataError, genzoo.DensityUnavailable)) as err:
        model.log_prob(torch.zeros(4, 3))
    if model.density != "none":
        assert isinstance(err.value, genzoo.DataError) and "shape" in str(err.value)


@pytest.mark.parametrize("name", MODELS)
def test_estimated_densities_name_their_estimator(name, data_for):
    model = _model(name, data_for(name))
    if model.density in ("estimate", "bound"):
        assert model.density_method, f"{name} must say how its log_prob is estimated"
    if model.density == "exact":
        assert model.density_method == ""
