"""Nothing lost, nothing silently wrong: run-folder locking, resume that checks what it
resumes, --force that survives a failure, torn logs, validated settings, one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import genzoo
from genzoo.cli import main
from genzoo.errors import ResumeMismatchError, RunLockedError
from genzoo.train.checkpoint import CHECKPOINT_FILE
from genzoo.train.runfolder import PREVIOUS_FOLDER, folder_lock
from genzoo.workflow import evaluate, train


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".genzoo")
    }


def _quick(**kw) -> dict:
    return dict(steps=20, batch_size=64, progress=False, log_every=5, **kw)


@pytest.fixture
def gmm_run(tmp_path) -> Path:
    out = tmp_path / "run"
    train("gmm", "8gaussians", out=out, n=500, hparams={"n_components": 4}, **_quick())
    return out


# 1 and 7: one writer per run folder; the lock dies with its process, even by kill -9 --------
def test_a_second_writer_is_refused_and_a_killed_ones_lock_is_released(tmp_path, moons):
    out = tmp_path / "run"
    script = (
        "import genzoo, sys\n"
        "from genzoo.workflow import train\n"
        f"train('realnvp', 'moons', out={str(out)!r}, steps=10**6, progress=False,"
        " checkpoint_every=10**6, log_every=10**6)\n"
    )
    busy = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "trainer.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (out / "trainer.json").exists(), "the first trainer never started"
        model = genzoo.create("realnvp", data=moons, n_layers=2, hidden=8)
        with pytest.raises(RunLockedError, match=f"pid {busy.pid}"):
            genzoo.Trainer(out=out, resume=True, **_quick()).fit(model, moons)
    finally:
        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait()
    # the kernel released the dead process's lock: the folder is usable again
    with folder_lock(out):
        pass


def test_the_same_folder_cannot_be_locked_twice_in_one_process(tmp_path):
    with (
        folder_lock(tmp_path / "x"),
        pytest.raises(RunLockedError, match="in use"),
        folder_lock(tmp_path / "x"),
    ):
        pass


def test_an_out_folder_under_a_file_is_a_clear_error(tmp_path, moons):
    (tmp_path / "file").write_text("x")
    model = genzoo.create("realnvp", data=moons, n_layers=2, hidden=8)
    with pytest.raises(RunLockedError, match="cannot use"):
        genzoo.Trainer(out=tmp_path / "file" / "run", **_quick()).fit(model, moons)


# 2: resume refuses another model, data set or hyper-parameter, naming each --------------------
@pytest.mark.parametrize(
    ("model", "dataset", "hparams", "named"),
    [
        ("realnvp", "8gaussians", {}, "model: the run has 'gmm', now 'realnvp'"),
        ("gmm", "moons", {"n_components": 4}, "dataset: the run has '8gaussians', now 'moons'"),
        ("gmm", "8gaussians", {"n_components": 3}, "n_components: the run has 4, now 3"),
    ],
)
def test_resume_refuses_what_differs(gmm_run, model, dataset, hparams, named):
    before = _hashes(gmm_run)
    with pytest.raises(ResumeMismatchError) as err:
        train(model, dataset, out=gmm_run, n=500, hparams=hparams, resume=True, **_quick())
    assert named in str(err.value)
    assert _hashes(gmm_run) == before


def test_resume_refuses_other_batches_but_takes_more_steps_and_a_new_lr(tmp_path, moons):
    out = tmp_path / "run"
    model = genzoo.create("realnvp", data=moons, n_layers=2, hidden=8)
    genzoo.Trainer(out=out, **_quick()).fit(model, moons)
    with pytest.raises(ResumeMismatchError, match="batch_size: the run has 64, now 32"):
        genzoo.Trainer(out=out, resume=True, **{**_quick(), "batch_size": 32}).fit(model, moons)
    trainer = genzoo.Trainer(out=out, resume=True, lr=1e-4, **{**_quick(), "steps": 30})
    trainer.fit(model, moons)
    with safe_open(str(out / CHECKPOINT_FILE), framework="pt") as f:
        saved = json.loads(f.metadata()["genzoo"])["optimizers"]["model"]
    assert saved["param_groups"][0]["lr"] == 1e-4  # the optimiser took the new rate
    assert trainer.history[-1]["step"] == 30


# 3: sample --out without the extension must not overwrite the .npy ---------------------------
def test_sample_out_without_extension_does_not_overwrite(gmm_run, tmp_path, capsys):
    target = tmp_path / "s.npy"
    np.save(target, np.zeros(3))
    before = target.read_bytes()
    assert main(["sample", str(gmm_run), "-n", "5", "--out", str(tmp_path / "s")]) == 2
    assert "--force" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert main(["sample", str(gmm_run), "-n", "5", "--out", str(tmp_path / "s"), "--force"]) == 0
    assert np.load(target).shape == (5, 2)


# 5: settings that would freeze, reverse or crash training are refused ------------------------
@pytest.mark.parametrize(
    "setting",
    [
        {"clip_grad": 0.0},
        {"clip_grad": -1.0},
        {"steps": 2.5},
        {"steps": "10"},
        {"log_every": 0},
        {"checkpoint_every": 0},
        {"lr": float("nan")},
        {"lr": float("inf")},
        {"device": "tpu"},
        {"batch_size": True},
    ],
)
def test_bad_trainer_settings_are_refused_before_anything_is_written(setting, tmp_path):
    with pytest.raises(ValueError, match=next(iter(setting))):
        genzoo.Trainer(out=tmp_path / "run", **setting)
    assert not (tmp_path / "run").exists()


# 11: --force keeps the old run until the new one has succeeded --------------------------------
def test_force_restores_the_old_run_when_the_new_one_fails(gmm_run, moons):
    before = _hashes(gmm_run)

    def failing(model):
        raise RuntimeError("evaluation broke")

    model = genzoo.create("realnvp", data=moons, n_layers=2, hidden=8)
    trainer = genzoo.Trainer(
        out=gmm_run, force=True, evaluate=failing, evaluate_every=5, **_quick()
    )
    with pytest.raises(RuntimeError, match="evaluation broke"):
        trainer.fit(model, moons)
    assert _hashes(gmm_run) == before
    assert not (gmm_run / PREVIOUS_FOLDER).exists()
    genzoo.Trainer(out=gmm_run, force=True, **_quick()).fit(model, moons)  # and replaces it
    assert json.loads((gmm_run / "config.json").read_text())["model"] == "realnvp"


# 12: a torn last log line is dropped with a warning; the clock goes on -------------------------
def test_resume_drops_a_torn_log_line_and_continues_the_clock(tmp_path, moons):
    out = tmp_path / "run"
    model = genzoo.create("realnvp", data=moons, n_layers=2, hidden=8)
    genzoo.Trainer(out=out, checkpoint_every=20, **_quick()).fit(model, moons)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 25, "ti')  # a power cut mid-write
    with pytest.warns(UserWarning, match="torn last line"):
        genzoo.Trainer(out=out, resume=True, **{**_quick(), "steps": 30}).fit(model, moons)
    after = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in after] == [5, 10, 15, 20, 25, 30]
    assert after[4]["time"] >= rows[-1]["time"]  # not back at 0


# 14 and friends: bad input is one clear line, and an existing run is untouched ---------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "realnvp", "--data", "moons", "--set", "hidden=abc"], "must be a number"),
        (["train", "realnvp", "--data", "moons", "--clip-grad", "-1"], "clip_grad"),
        (["train", "realnvp", "--data", "moons", "--lr", "inf"], "lr must be"),
        (["train", "gmm", "--data", "8gaussians", "--set", "covariance_type=3"], "a name"),
        (["sample", "RUN", "-n", "0"], "-n must be at least 1"),
        (["sample", "RUN", "-n", "-5"], "-n must be at least 1"),
        (["train", "realnvp", "--data", "moons", "--lr", "nan"], "lr must be"),
        (["train", "realnvp", "--data", "moons", "--clip-grad", "0"], "clip_grad"),
        (["train", "realnvp", "--data", "moons", "--batch-size", "0"], "batch_size"),
        (["train", "realnpv", "--data", "moons"], "Did you mean 'realnvp'"),
        (["train", "gmm", "--data", "missing.npy"], "no such file"),
        (
            [
                "train",
                "gmm",
                "--data",
                "8gaussians",
                "--set",
                "n_components=4",
                "--resume",
                "--out",
                "RUN",
                "--lr",
                "0.5",
                "--batch-size",
                "7",
            ],
            "batch_size: the run has",
        ),
        (["eval", "RUN/.."], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line_and_changes_nothing(args, message, gmm_run, capsys):
    before = _hashes(gmm_run)
    args = [a.replace("RUN", str(gmm_run)) for a in args]
    if args[0] == "train" and "--out" not in args:
        args += ["--out", str(gmm_run.parent / "other")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert _hashes(gmm_run) == before


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: genzoo.create(None), genzoo.UnknownNameError, "a string"),
        (lambda: genzoo.create(123), genzoo.UnknownNameError, "a string"),
        (
            lambda: genzoo.create("gmm", data=np.array([[1, "a"]], dtype=object)),
            genzoo.DataError,
            "numeric",
        ),
    ],
)
def test_api_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_steps_zero_saves_the_untrained_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "gmm", "--data", "8gaussians", "--steps", "0", "--out", str(out)]) == 0
    assert genzoo.load(out).name == "gmm"


def test_a_run_on_a_user_file_evaluates_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("points.npy", np.random.default_rng(0).normal(size=(400, 2)))
    train("gmm", "points.npy", out="run", hparams={"n_components": 2}, **_quick())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert np.isfinite(evaluate(tmp_path / "run")["nll"])


def test_oversized_batches_and_constant_dimensions_are_warned_about(moons):
    model = genzoo.create("realnvp", data=moons, n_layers=2, hidden=8)
    with pytest.warns(UserWarning, match="larger than the 100 training examples"):
        trainer = genzoo.Trainer(steps=2, batch_size=512, progress=False)
        trainer.fit(model, moons[:100])
    assert trainer.batch_size == 100
    flat = torch.cat([moons[:200, :1], torch.zeros(200, 1)], dim=1)
    with pytest.warns(UserWarning, match="1 of the 2 data dimensions are constant"):
        genzoo.Trainer(steps=2, batch_size=64, progress=False).fit(model, flat)


# 8: the report never reads outside its folder and escapes what it quotes ---------------------
def test_report_reads_nothing_outside_its_folder_and_escapes_html(tmp_path):
    from genzoo.bench import write_report
    from genzoo.bench.grid import cell_name

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "samples.txt").write_text("SECRET-BY-PATH")
    (tmp_path / "secret.txt").write_text("SECRET-BY-LINK")
    bench = tmp_path / "bench"
    linked = bench / "runs" / cell_name("gmm", "8gaussians", 1)
    linked.mkdir(parents=True)
    (linked / "samples.txt").symlink_to(tmp_path / "secret.txt")
    base = {"model": "gmm", "dataset": "8gaussians", "family": "mixture", "lr_factor": 1.0}
    rows = [
        {**base, "seed": "0/../../../outside", "status": "ok", "density": "exact", "nll": 2.9},
        {**base, "seed": 1, "status": "ok", "density": "exact", "nll": 3.0},
        {**base, "seed": 2, "status": "failed", "error": "<img src=x onerror=alert(1)>"},
    ]
    (bench / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in write_report(bench):
        text = path.read_text()
        assert "SECRET" not in text, path
        assert "<img src=x" not in text and "&lt;img src=x" in text, path


# 6 and 9: altered weights and out-of-scale configs are refused before use ----------------------
def _flip_a_byte_in_the_tensors(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(raw[:8], "little")
    raw[header + (len(raw) - header) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("name", ["model.safetensors", "checkpoint.safetensors"])
def test_a_flipped_byte_is_caught_by_the_checksum(gmm_run, name, capsys):
    _flip_a_byte_in_the_tensors(gmm_run / name)
    if name == "model.safetensors":
        assert main(["sample", str(gmm_run), "-n", "5"]) == 2
        assert "checksum" in capsys.readouterr().err
        assert not (gmm_run / "samples.npy").exists()
    else:
        with pytest.raises(genzoo.CheckpointError, match="checksum"):
            train("gmm", "8gaussians", out=gmm_run, n=500, hparams={"n_components": 4},
                  resume=True, **{**_quick(), "steps": 30})  # fmt: skip


def test_non_finite_parameters_are_refused(tmp_path, moons):
    model = genzoo.create("realnvp", data=moons, n_layers=2, hidden=8)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    model.save(tmp_path / "m")
    with pytest.raises(genzoo.CheckpointError, match="non-finite parameters"):
        genzoo.load(tmp_path / "m")


def test_a_config_out_of_scale_with_its_weights_is_refused_before_building(gmm_run):
    meta = json.loads((gmm_run / "config.json").read_text())
    meta["config"]["n_components"] = 1e8
    (gmm_run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(genzoo.CheckpointError, match="out of scale"):
        genzoo.load(gmm_run)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_loading_onto_cuda_without_a_gpu_is_a_clear_error(gmm_run):
    with pytest.raises(ValueError, match="no CUDA device"):
        genzoo.load(gmm_run, map_location="cuda")


@pytest.mark.parametrize("name", ["gmm", "realnvp", "vae", "ebm"])
def test_arrays_empty_draws_and_missing_data_are_handled_alike(name, moons):
    model = genzoo.create(name, data=moons[:200])
    assert model.sample(0).shape == (0, 2)
    as_array = model.log_prob(moons[:3].numpy())  # an array is taken as a tensor
    assert as_array.shape == (3,)
    with pytest.raises(genzoo.DataError, match="needs training data"):
        genzoo.Trainer(steps=1, progress=False).fit(model, None)
    with pytest.raises(genzoo.DataError, match="numeric"):
        model.log_prob(np.array([["a", "b"]], dtype=object))


def test_an_out_folder_under_a_file_is_one_line_on_the_cli(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / "file" / "run")
    assert main(["train", "gmm", "--data", "8gaussians", "--steps", "2", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "cannot use" in err and len(err.strip().splitlines()) == 1


def test_a_corrupt_checkpoint_on_resume_is_one_line(gmm_run, capsys):
    _flip_a_byte_in_the_tensors(gmm_run / "checkpoint.safetensors")
    args = ["train", "gmm", "--data", "8gaussians", "--n", "500", "--set", "n_components=4",
            "--batch-size", "64", "--steps", "30", "--resume", "--out", str(gmm_run)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "checksum" in err and len(err.strip().splitlines()) == 1


# 13: every file of a run gets the same mode, the umask's --------------------------------------
def test_weights_checkpoints_and_json_share_one_file_mode(gmm_run):
    modes = {p.name: p.stat().st_mode & 0o777 for p in gmm_run.iterdir() if p.is_file()}
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes
