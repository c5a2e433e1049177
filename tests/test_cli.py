"""The command line: list, train, sample, eval, and its errors, run in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genzoo.cli import main


def _train(tmp_path, *extra):
    out = tmp_path / "run"
    args = ["train", "realnvp", "--data", "moons", "--steps", "30", "--n", "1000",
            "--batch-size", "64", "--set", "n_layers=2", "--set", "hidden=16",
            "--out", str(out), *extra]  # fmt: skip
    return main(args), out


def test_list(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "realnvp" in text and "gmm" in text and "moons" in text


def test_train_eval_sample(tmp_path, capsys):
    code, out = _train(tmp_path)
    assert code == 0
    assert (out / "model.safetensors").exists() and (out / "metrics.jsonl").exists()
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["density"] == "exact" and metrics["dataset"] == "moons"
    assert np.isfinite(metrics["nll"]) and np.isfinite(metrics["kl_gap"])
    assert abs(metrics["gap_to_entropy"] - (metrics["nll"] - metrics["true_entropy"])) < 1e-9
    npy, png = tmp_path / "s.npy", tmp_path / "s.png"
    assert main(["sample", str(out), "-n", "200", "--out", str(npy), "--plot", str(png)]) == 0
    assert np.load(npy).shape == (200, 2) and png.stat().st_size > 1000


def test_sample_refuses_to_overwrite(tmp_path, capsys):
    code, out = _train(tmp_path)
    npy = tmp_path / "s.npy"
    npy.write_bytes(b"precious")
    assert main(["sample", str(out), "-n", "10", "--out", str(npy)]) == 2
    assert "--force" in capsys.readouterr().err
    assert npy.read_bytes() == b"precious"


def test_train_refuses_an_existing_run_and_resumes(tmp_path, capsys):
    _train(tmp_path)
    code, _ = _train(tmp_path)
    assert code == 2
    assert "already holds a run" in capsys.readouterr().err
    code, out = _train(tmp_path, "--resume", "--steps", "40")
    assert code == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()]
    assert steps[-1] == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "realnpv", "--data", "moons"], "Did you mean 'realnvp'"),
        (["train", "realnvp", "--data", "moon"], "Did you mean 'moons'"),
        (["train", "gmm", "--data", "moons", "--set", "n_component=2"], "n_components"),
        (["eval", "no/such/run"], "does not exist"),
    ],
)
def test_errors_are_one_clear_line(args, message, capsys, tmp_path):
    assert main([*args, *(["--out", str(tmp_path / "r")] if args[0] == "train" else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genzoo: error:") and message in err


def test_train_to_a_target_density_and_eval(tmp_path, capsys):
    out = tmp_path / "planar"
    args = ["train", "planar", "--target", "u1", "--steps", "20", "--lr", "0.02",
            "--set", "n_layers=4", "--set", "mc_samples=64", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["target"] == "u1" and metrics["reverse_kl"] > 0


def test_train_needs_data_or_target(tmp_path):
    with pytest.raises(SystemExit, match="exactly one of --data"):
        main(["train", "planar", "--out", str(tmp_path / "x")])


def test_language_model_continues_a_prompt(tmp_path, capsys):
    out = tmp_path / "lm"
    args = ["train", "lstm-lm", "--data", "stdlib-chars", "--steps", "5", "--n", "64",
            "--batch-size", "16", "--set", "hidden=16", "--set", "embedding=8",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(["sample", str(out), "-n", "2", "--prompt", "Return the", "--top-k", "5"]) == 0
    lines = capsys.readouterr().out
    assert lines.count("Return the") == 2
