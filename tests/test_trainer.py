"""The trainer: seeding, resume after a real kill, the NaN guard, run folders, float64."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import genzoo
from genzoo.models.base import GenerativeModel
from genzoo.train.batches import EpochOrder
from genzoo.train.checkpoint import CHECKPOINT_FILE
from genzoo.train.runfolder import LOCK_FILE


def _flow(data):
    return genzoo.create("realnvp", data=data, n_layers=2, hidden=16)


def _trainer(**kw) -> genzoo.Trainer:
    settings = dict(steps=40, batch_size=64, lr=1e-3, progress=False, log_every=10)
    settings.update(kw)
    return genzoo.Trainer(**settings)


def _copy(model):
    """A model of the same class and config holding the same weights."""
    twin = type(model)(**model.config)
    twin.load_state_dict(model.state_dict())
    return twin


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_result(moons):
    initial = _flow(moons)
    a = _trainer(seed=1).fit(_copy(initial), moons)
    torch.manual_seed(123)  # global state before fit must not matter
    b = _trainer(seed=1).fit(_copy(initial), moons)
    for (k, va), vb in zip(_state(a).items(), _state(b).values(), strict=True):
        assert torch.equal(va, vb), k


def test_resume_continues_exactly_where_it_stopped(moons, tmp_path):
    initial = _flow(moons)
    full = _trainer(steps=40).fit(_copy(initial), moons)
    _trainer(steps=20, out=tmp_path / "run").fit(_copy(initial), moons)
    resumed = _trainer(steps=40, out=tmp_path / "run", resume=True).fit(_flow(moons), moons)
    for (k, va), vb in zip(_state(full).items(), _state(resumed).values(), strict=True):
        assert torch.allclose(va, vb, atol=1e-6), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "run/metrics.jsonl").open()]
    assert steps == [10, 20, 30, 40]


KILLED_RUN = """
import sys, genzoo
x = genzoo.load_dataset("moons", n=2000)
model = genzoo.create("realnvp", data=x, n_layers=2, hidden=16)
genzoo.Trainer(steps=100000, batch_size=64, out=sys.argv[1], checkpoint_every=25,
               log_every=25, progress=False).fit(model, x)
"""


def test_resume_after_a_kill_reaches_the_step_count_with_finite_loss(moons, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(run)])
    try:
        deadline = time.time() + 120
        while not (run / CHECKPOINT_FILE).exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        assert proc.poll() is None, "the training process ended before it could be killed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (run / CHECKPOINT_FILE).exists()
    killed_at = max(json.loads(line)["step"] for line in (run / "metrics.jsonl").open())
    target = killed_at + 50
    trainer = _trainer(steps=target, out=run, resume=True, log_every=25)
    model = trainer.fit(genzoo.load(run), moons)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert rows[-1]["step"] == target
    assert all(torch.isfinite(torch.tensor(r["nll"])) for r in rows)
    assert torch.isfinite(model.log_prob(moons[:100])).all()


class Exploding(GenerativeModel):
    """A test model whose loss turns to NaN at its tenth call."""

    name = "exploding"
    density = "exact"

    def __init__(self, data_shape):
        super().__init__(data_shape)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("calls", torch.zeros(()))

    def loss(self, batch, player="model"):
        self.calls += 1
        fit = (batch.mean() - self.w).pow(2).sum()
        blow = torch.tensor(float("nan")) if self.calls >= 10 else torch.tensor(0.0)
        return {"fit": fit, "blow_up": blow}


def test_nan_guard_names_step_term_and_last_good_checkpoint(moons, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(genzoo.TrainingDiverged) as err:
        _trainer(out=out, checkpoint_every=5).fit(Exploding([2]), moons)
    message = str(err.value)
    assert "'blow_up'" in message and "step 10" in message
    assert str(out / CHECKPOINT_FILE) in message and "(step 5)" in message
    # the last good checkpoint is intact and holds the state of step 5
    state = genzoo.io.read_tensors(out / CHECKPOINT_FILE)
    assert float(state["model/calls"]) == 5


def test_nan_guard_without_a_run_folder(moons):
    with pytest.raises(genzoo.TrainingDiverged, match="no checkpoint was written"):
        _trainer().fit(Exploding([2]), moons)


def test_existing_run_is_refused_unless_resume_or_force(moons, tmp_path):
    out = tmp_path / "run"
    _trainer(steps=5, out=out).fit(_flow(moons), moons)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(genzoo.RunExistsError, match="--resume"):
        _trainer(steps=5, out=out).fit(_flow(moons), moons)
    _trainer(steps=5, out=out, force=True).fit(_flow(moons), moons)
    assert (out / "notes.txt").read_text() == "mine"  # force removes genzoo's files only


def test_float64_mode(moons):
    model = _trainer(steps=5, dtype="float64").fit(_flow(moons), moons)
    assert model.dtype == torch.float64
    assert model.log_prob(moons[:5].double()).dtype == torch.float64


def test_bad_training_data_is_refused(moons):
    bad = moons.clone()
    bad[7, 0] = float("inf")
    with pytest.raises(genzoo.DataError, match="1 infinite values in 1 rows \\(rows 7\\)"):
        _trainer().fit(_flow(moons), bad)
    with pytest.raises(genzoo.DataError, match="shape"):
        _trainer().fit(_flow(moons), torch.zeros(10, 3))


def test_corrupt_truncated_and_foreign_checkpoints(moons, tmp_path):
    out = tmp_path / "run"
    _trainer(steps=5, out=out).fit(_flow(moons), moons)
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(genzoo.CheckpointError, match="corrupt or truncated"):
        genzoo.load(out)
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(genzoo.CheckpointError):
        genzoo.load(out)
    (out / "config.json").write_text("{not json")
    with pytest.raises(genzoo.CheckpointError, match="not valid JSON"):
        genzoo.load(out)
    (out / "config.json").write_text(json.dumps({"some": "other tool"}))
    with pytest.raises(genzoo.CheckpointError, match="not a genzoo model config"):
        genzoo.load(out)
    # a checkpoint of another model, resumed into a RealNVP
    other = tmp_path / "gmm"
    gmm = genzoo.create("gmm", data=moons, n_components=2)
    _trainer(steps=2, out=other).fit(gmm, moons)
    with pytest.raises(genzoo.CheckpointError, match="written for model 'gmm'"):
        _trainer(steps=10, out=other, resume=True).fit(_flow(moons), moons)


def test_checkpoint_of_another_configuration(moons, tmp_path):
    out = tmp_path / "run"
    _trainer(steps=5, out=out).fit(_flow(moons), moons)
    bigger = genzoo.create("realnvp", data=moons, n_layers=3, hidden=16)
    with pytest.raises(genzoo.CheckpointError, match="another model or configuration"):
        _trainer(steps=10, out=out, resume=True).fit(bigger, moons)


def test_files_are_safetensors_and_json_only(moons, tmp_path):
    out = tmp_path / "run"
    _trainer(steps=5, out=out).fit(_flow(moons), moons)
    suffixes = {p.suffix for p in Path(out).iterdir() if p.name != LOCK_FILE}
    assert suffixes <= {".json", ".jsonl", ".safetensors"}
    assert (out / LOCK_FILE).stat().st_size < 200  # the lock holds a pid and host, no data


def test_evaluations_are_logged_and_kept_out_of_training_and_its_clock(moons, tmp_path):
    # a VAE draws noise in its loss, and the evaluator samples from the global generator:
    # tracking quality must still leave the training untouched
    initial = genzoo.create("vae", data=moons, latent_dim=2, hidden=16)
    plain = _trainer(seed=2).fit(_copy(initial), moons)

    def slow_quality(model):
        time.sleep(0.3)
        return {"mean_norm": float(model.sample(50).norm(dim=1).mean())}

    trainer = _trainer(seed=2, out=tmp_path / "run", evaluate=slow_quality, evaluate_every=15)
    tracked = trainer.fit(_copy(initial), moons)
    for (k, va), vb in zip(_state(plain).items(), _state(tracked).values(), strict=True):
        assert torch.equal(va, vb), k  # evaluating does not disturb training
    assert [row["step"] for row in trainer.evaluations] == [15, 30, 40]
    assert all(math.isfinite(row["eval/mean_norm"]) for row in trainer.evaluations)
    # three 0.3 s evaluations not on the clock (on it, the time would pass 0.9 s whatever
    # the training's own time on a busy machine)
    assert trainer.evaluations[-1]["time"] < 0.9
    logged = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").open()]
    assert sum("eval/mean_norm" in row for row in logged) == 3
    assert all("eval/mean_norm" not in row for row in trainer.history)
    trainer.force = True
    trainer.fit(_copy(initial), moons)  # reused: this run's evaluations only
    assert [row["step"] for row in trainer.evaluations] == [15, 30, 40]
    with pytest.raises(ValueError, match="evaluate_every"):
        genzoo.Trainer(evaluate=slow_quality)


def test_epoch_order_sweeps_every_example_once_per_epoch():
    order = EpochOrder(n=10, batch_size=4, seed=3)
    epochs = [torch.cat([order.next() for _ in range(3)]) for _ in range(2)]
    assert [len(order.next()) for _ in range(3)] == [4, 4, 2]  # the last batch is smaller
    for seen in epochs:
        assert sorted(seen.tolist()) == list(range(10))
    assert not torch.equal(epochs[0], epochs[1])  # a new permutation each epoch
    again = EpochOrder(n=10, batch_size=4, seed=3, drawn=3)  # restarted from a count
    assert torch.equal(torch.cat([again.next() for _ in range(3)]), epochs[1])


def test_resume_with_epoch_order_continues_exactly(moons, tmp_path):
    initial = _flow(moons)
    settings = dict(batch_order="epochs", batch_size=300)  # 2000 rows: 7 batches an epoch
    full = _trainer(steps=40, **settings).fit(_copy(initial), moons)
    _trainer(steps=22, out=tmp_path / "run", **settings).fit(_copy(initial), moons)
    resumed = _trainer(steps=40, out=tmp_path / "run", resume=True, **settings)
    resumed = resumed.fit(_flow(moons), moons)
    for (k, va), vb in zip(_state(full).items(), _state(resumed).values(), strict=True):
        assert torch.allclose(va, vb, atol=1e-6), k
    with pytest.raises(ValueError, match="batch_order"):
        genzoo.Trainer(batch_order="shuffled")


def test_max_seconds_stops_at_the_time_budget_with_evaluation_off_the_clock(moons):
    def slow_quality(model):
        time.sleep(0.2)
        return {"mean_norm": float(model.sample(20).norm(dim=1).mean())}

    trainer = _trainer(steps=10**9, max_seconds=1.0, evaluate=slow_quality,
                       evaluate_every_seconds=0.25)  # fmt: skip
    trainer.fit(_flow(moons), moons)
    seconds = trainer.history[-1]["time"]
    assert 1.0 <= seconds <= 1.1  # one step past the budget at most
    assert trainer.history[-1]["step"] < 10**9
    times = [row["time"] for row in trainer.evaluations]
    assert len(times) >= 4 and times[-1] == seconds  # spread over the budget, plus the last
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="max_seconds"):
            genzoo.Trainer(max_seconds=bad)
