"""Defaults from one place (issue 19, "Defaults that work"): ``genzoo train MODEL --data
DATASET`` with no flags trains at the model's recommended budget for the dataset, the numbers
``genzoo bench`` uses (``genzoo.bench.budgets.recommended_budget``); flags given win.

The quality floors of the recommended budgets, model by model, are checked in
``tests/test_contract.py`` (``test_the_recommended_budget_reaches_its_quality_floor...``).
"""

from __future__ import annotations

import json

import pytest
import torch

import genzoo
from genzoo.bench import budgets, grid
from genzoo.bench.budgets import Budget, recommended_budget
from genzoo.cli import build_parser, main
from genzoo.workflow import resolve_defaults, train

#: A budget small enough to train in a test, put in place of gmm's.
TINY_GMM = Budget(
    quick_steps=2, full_steps=7, batch_size=50, lr=0.02,
    hparams={"n_components": 3, "reg_covar": 1e-3},
)  # fmt: skip


@pytest.fixture
def tiny_gmm(monkeypatch):
    monkeypatch.setitem(budgets.BUDGETS, "gmm", TINY_GMM)


def _settings(run) -> tuple[dict, dict]:
    trainer = json.loads((run / "trainer.json").read_text())
    config = json.loads((run / "config.json").read_text())["config"]
    return {k: trainer[k] for k in ("steps", "batch_size", "lr")}, config


def test_the_command_line_leaves_steps_batch_and_lr_unset():
    args = build_parser().parse_args(["train", "made", "--data", "digits-binary"])
    assert (args.steps, args.batch_size, args.lr) == (None, None, None)
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "recommended budget" in help_text and "budgets.py" in help_text


def test_train_without_flags_uses_the_budget_with_flags_the_users(tiny_gmm, tmp_path, capsys):
    run = tmp_path / "budget"
    assert main(["train", "gmm", "--data", "8gaussians", "--n", "300", "--out", str(run)]) == 0
    settings, config = _settings(run)
    assert settings == {"steps": 7, "batch_size": 50, "lr": 0.02}
    assert config["n_components"] == 3 and config["reg_covar"] == 1e-3
    run = tmp_path / "mine"
    argv = ["train", "gmm", "--data", "8gaussians", "--n", "300", "--out", str(run), "--steps",
            "3", "--batch-size", "20", "--lr", "0.5", "--set", "n_components=2"]  # fmt: skip
    assert main(argv) == 0
    settings, config = _settings(run)
    assert settings == {"steps": 3, "batch_size": 20, "lr": 0.5}
    assert config["n_components"] == 2 and config["reg_covar"] == 1e-3  # the rest: budget's


def test_a_resumed_run_keeps_its_own_settings(tiny_gmm, tmp_path):
    run = tmp_path / "run"
    train("gmm", "8gaussians", out=run, n=300, steps=4, lr=0.1, progress=False)
    _, trainer = train("gmm", "8gaussians", out=run, n=300, resume=True, progress=False)
    assert (trainer.steps, trainer.batch_size, trainer.lr) == (4, 50, 0.1)


def test_resolution_gives_the_benchmark_numbers():
    hparams, settings = {"hidden": [32]}, {"lr": None, "batch_size": 7}
    resolve_defaults("made", "digits-binary", None, hparams, settings)
    made = budgets.BUDGETS["made"]
    assert settings == {"steps": made.full_steps, "batch_size": 7, "lr": made.lr,
                        "lr_schedule": made.lr_schedule}  # fmt: skip
    assert hparams == {"hidden": [32]}  # given: kept
    hparams, settings = {}, {}
    resolve_defaults("realnvp", "digits", None, hparams, settings)
    digits = budgets.BUDGETS["realnvp"].for_dataset("digits")
    assert settings == {"steps": digits.full_steps, "batch_size": digits.batch_size,
                        "lr": digits.lr, "lr_schedule": digits.lr_schedule}  # fmt: skip
    assert hparams == digits.hparams
    hparams, settings = {}, {}  # a dataset-specific change: vae on a 2-D toy
    resolve_defaults("vae", "8gaussians", None, hparams, settings)
    assert hparams["latent_dim"] == 2 and settings["lr"] == 3e-3


def test_the_benchmark_and_the_command_line_read_one_table():
    for model in (m.name for m in genzoo.list_models()):
        for dataset in ("8gaussians", "digits", "digits-binary", "grammar"):
            assert grid.budget_for(model, dataset) == recommended_budget(model, dataset)
    assert recommended_budget("no-such-model") == budgets.DEFAULT_BUDGET


def test_a_budgeted_schedule_is_the_default_and_a_given_one_wins():
    settings: dict = {}
    resolve_defaults("nsf", "moons", None, {}, settings)
    assert settings["lr_schedule"] == budgets.BUDGETS["nsf"].for_dataset("moons").lr_schedule
    assert settings["lr_schedule"] == "cosine"  # 2-D NSF: the density-floor setting
    given = {"lr_schedule": "linear"}
    resolve_defaults("nsf", "moons", None, {}, given)
    assert given["lr_schedule"] == "linear"


def test_a_toy_trains_on_the_budgets_draw_unless_n_is_given(tmp_path):
    """NSF's 2-D budget draws 1,000,000 fresh points (the toys are generated); --n wins."""
    assert recommended_budget("nsf", "moons").n_train == 1_000_000
    assert recommended_budget("nsf", "digits").n_train is None
    tiny = {"n_layers": 2, "hidden": 8, "bins": 4}
    for n, expected in ((None, 1_000_000), (500, 500)):
        out = tmp_path / str(n)
        train("nsf", "moons", out=out, hparams=tiny, n=n, steps=2, progress=False)
        assert json.loads((out / "run.json").read_text())["n"] == expected


def test_a_conditioned_run_takes_the_budgets_changes_for_a_condition():
    """``Budget.on_condition`` applies after ``on`` and only under a condition, in
    ``genzoo train`` and in the benchmark alike."""
    budget = Budget(hparams={"a": 1, "b": 1}, on={"digits": {"hparams": {"b": 2}, "lr": 0.5}},
                    on_condition={"digits": {"hparams": {"a": 3}, "batch_size": 9}})  # fmt: skip
    plain, conditioned = budget.for_dataset("digits"), budget.for_dataset("digits", True)
    assert (plain.hparams, plain.lr, plain.batch_size) == ({"a": 1, "b": 2}, 0.5, 256)
    assert (conditioned.hparams, conditioned.lr, conditioned.batch_size) == (
        {"a": 3, "b": 2}, 0.5, 9)  # fmt: skip
    assert budget.for_dataset("moons", True) == budget  # no changes for that dataset
    hparams: dict = {}
    resolve_defaults("gmm", "digits", None, hparams, {}, conditioned=True)
    assert hparams == {"n_components": 2, "reg_covar": 3.5e-3}
    hparams = {}
    resolve_defaults("gmm", "digits", None, hparams, {})
    assert hparams == {"n_components": 8, "reg_covar": 1e-3}
    assert grid.budget_for("gmm", "digits", conditioned=True) == recommended_budget(
        "gmm", "digits", conditioned=True)  # fmt: skip


def test_the_class_conditional_gmm_budget_generalises_on_digits():
    """With ~100 digits a class, the unconditional budget (8 full covariances a class)
    overfits: its conditional test NLL is far above the conditioned budget's."""
    x, c = genzoo.load_dataset("digits", split="train", condition=True)
    xt, ct = genzoo.load_dataset("digits", split="test", condition=True)
    g = torch.Generator().manual_seed(0)
    x, xt = (genzoo.data.dequantize(v, 17, g) for v in (x, xt))  # as genzoo train does
    nll = {}
    for conditioned in (False, True):
        hparams = recommended_budget("gmm", "digits", conditioned=conditioned).hparams
        model = genzoo.create("gmm", data=x, condition=c, **hparams)
        genzoo.Trainer(steps=100, progress=False).fit(model, x, condition=c)
        with torch.no_grad():
            nll[conditioned] = float(-model.log_prob(xt, c=ct).mean())
    assert nll[True] < nll[False] - 100, nll
