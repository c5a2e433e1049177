"""``genzoo figures RUN``: every family's figures drawn from a trained run folder."""

from __future__ import annotations

import pytest

from genzoo.cli import main
from genzoo.figures.catalogue import run_figures
from genzoo.workflow import train

#: model, dataset, hyper-parameters, steps, the figures expected besides samples (chosen by
#: the model's capabilities and the data: 8gaussians has known modes, so every model there
#: gets modes.png).
CASES = [
    ("gmm", "8gaussians", {"n_components": 8}, 20,
     {"density.png", "ellipses.png", "responsibilities.png", "modes.png"}),
    ("rbm", "digits-binary", {"n_hidden": 16}, 20, {"filters.png"}),
    ("dbm", "digits-binary", {"hidden": [16, 8], "steps_per_layer": 5}, 20, {"filters.png"}),
    ("ebm", "8gaussians", {"hidden": 16}, 5, {"density.png", "energy.png", "modes.png"}),
    ("ncsn", "8gaussians", {"hidden": 16, "n_steps_each": 2}, 5,
     {"score_field.png", "trajectories.png", "modes.png"}),
    ("ddpm", "moons", {"hidden": 16, "sampling_steps": 10, "ode_solver": "rk4"}, 3,
     {"density.png", "score_field.png", "trajectories.png"}),
    ("ddpm", "digits", {"channels": 8, "sampling_steps": 10}, 3, {"denoising.png"}),
    ("made", "digits-binary", {"hidden": [32]}, 5, {"surprisal.png"}),
    ("lstm-lm", "grammar", {"hidden": 16}, 5, {"surprisal.png"}),
    ("gan", "8gaussians", {"hidden": 16}, 5, {"modes.png"}),
    ("infogan", "digits", {"hidden": 16}, 3, {"codes.png"}),
    ("cyclegan", "moons-circles", {"hidden": 16}, 3, {"translations.png"}),
    ("stylegan", "digits", {"channels": 8, "hidden": 16}, 3, {"style_mixing.png"}),
    ("vae", "digits", {"hidden": 32, "latent_dim": 2}, 5,
     {"interpolation.png", "traversal.png", "latent_scatter.png"}),
]  # fmt: skip


@pytest.mark.parametrize("name,dataset,hparams,steps,expected", CASES, ids=[c[0] for c in CASES])
def test_every_family_draws_its_figures(tmp_path, name, dataset, hparams, steps, expected):
    run = tmp_path / "run"
    train(name, dataset, out=run, hparams=hparams, n=300, steps=steps, batch_size=32,
          progress=False)  # fmt: skip
    paths = run_figures(run, tmp_path / "figures")
    names = {p.name for p in paths}
    samples = "samples.txt" if dataset == "grammar" else "samples.png"
    assert expected | {samples} == names
    assert all(p.stat().st_size > 500 for p in paths if p.suffix == ".png")
    if dataset == "grammar":  # eight decoded sentences
        assert len((tmp_path / "figures" / samples).read_text().splitlines()) == 8


def test_figures_command_never_overwrites_without_force(tmp_path, capsys):
    run = tmp_path / "run"
    train("gmm", "8gaussians", out=run, hparams={"n_components": 4}, n=300, steps=5)
    assert main(["figures", str(run)]) == 0
    assert "ellipses.png" in capsys.readouterr().out
    stamp = (run / "figures" / "samples.png").stat().st_mtime_ns
    assert main(["figures", str(run)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (run / "figures" / "samples.png").stat().st_mtime_ns == stamp
    assert main(["figures", str(run), "--force"]) == 0


def test_a_run_fitted_to_a_target_density_draws_samples_and_density(tmp_path, capsys):
    run = tmp_path / "u1"
    assert main(["train", "planar", "--target", "u1", "--steps", "3", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["figures", str(run)]) == 0
    assert {p.name for p in (run / "figures").iterdir()} == {"samples.png", "density.png"}
    assert main(["figures", str(tmp_path)]) == 2  # not a run folder: a clear error
    assert "is this a genzoo run folder" in capsys.readouterr().err
