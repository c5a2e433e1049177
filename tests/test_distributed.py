"""Data-parallel training: two CPU processes under torchrun (gloo) against one process.

One launch of ``python -m torch.distributed.run --nproc_per_node 2 --standalone`` runs a
script that trains several tiny models; each rank saves what it saw and ended with, and the
tests below compare the ranks with each other and with single-process training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import genzoo

dist = pytest.importorskip("torch.distributed")
if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with the gloo backend is unavailable", allow_module_level=True)

N, BATCH, LR_SGD = 64, 16, 0.1

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    torch.set_num_threads(1)
    import genzoo
    from genzoo.train.trainer import Trainer

    where = sys.argv[1]
    rank = int(os.environ["RANK"])
    x = genzoo.load_dataset("moons", split="train", n=64, seed=0)
    result = {}

    def flow():
        torch.manual_seed(0)
        return genzoo.create("realnvp", data=x, n_layers=2, hidden=8)

    def recorder(seen):
        def record(batch, generator):
            seen.append(batch.clone())
            return batch
        return record

    # (a) one SGD step; the transform records this rank's batch
    model, seen = flow(), []
    model.optimizer_settings = lambda player: {"optimizer": "sgd"}
    result["init"] = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(steps=1, batch_size=16, lr=0.1, transform=recorder(seen), progress=False).fit(model, x)
    result["sgd_batch"], result["sgd_after"] = seen[0], model.state_dict()

    # (b) Adam, epoch order, run files, evaluation hook: 4 steps straight
    def settings(out, **kw):
        return dict(batch_size=16, lr=1e-2, batch_order="epochs", out=f"{where}/{out}",
                    checkpoint_every=2, log_every=1, progress=False, **kw)
    model, seen = flow(), []
    trainer = Trainer(steps=4, transform=recorder(seen), evaluate_every=2,
                      evaluate=lambda m: {"n": float(m.sample(3).shape[0])}, **settings("a"))
    trainer.fit(model, x)
    result["adam_batches"], result["adam_after"] = seen, model.state_dict()
    result["evaluations"] = trainer.evaluations

    # (c) the same run stopped after 2 steps and resumed to 4 on both ranks
    model = flow()
    Trainer(steps=2, **settings("b")).fit(model, x)
    model = flow()
    Trainer(steps=4, resume=True, **settings("b")).fit(model, x)
    result["resumed_after"] = model.state_dict()

    # a GAN (players touch different parameters) and EM (no players, not data-parallel)
    torch.manual_seed(0)
    gan = genzoo.create("gan", data=x, hidden=8)
    Trainer(steps=2, batch_size=16, lr=1e-3, progress=False).fit(gan, x)
    result["gan_after"] = gan.state_dict()
    torch.manual_seed(0)
    gmm = genzoo.create("gmm", data=x, n_components=2)
    Trainer(steps=3, out=f"{where}/gmm", log_every=1, progress=False).fit(gmm, x)
    result["gmm_after"] = gmm.state_dict()

    # (d) a conditional flow: each rank's batches carry the classes of their rows
    c = genzoo.load_dataset("moons", split="train", n=64, seed=0, condition=True)[1]
    torch.manual_seed(0)
    model, seen = genzoo.create("realnvp", data=x, condition=c, n_layers=2, hidden=8), []
    model.optimizer_settings = lambda player: {"optimizer": "sgd"}
    Trainer(steps=1, batch_size=16, lr=0.1, transform=recorder(seen), progress=False).fit(
        model, x, condition=c)
    result["cond_batch"], result["cond_after"] = seen[0], model.state_dict()
    torch.save(result, f"{where}/rank{rank}.pt")
    """
)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[dict, dict, Path]:
    """Run the script on two gloo ranks; return what each rank saved and the folder."""
    where = tmp_path_factory.mktemp("ddp")
    script = where / "script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--standalone", str(script), str(where)]  # fmt: skip
    done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=240)
    if done.returncode != 0:  # one retry: torchrun's free-port pick can race another process
        first = done.stdout[-2000:] + done.stderr[-2000:]
        done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=240)
        assert done.returncode == 0, first + done.stdout[-3000:] + done.stderr[-3000:]
    load = lambda r: torch.load(where / f"rank{r}.pt", weights_only=False)  # noqa: E731
    return load(0), load(1), where


def _close(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0.0, msg=key)


def test_one_sgd_step_equals_single_process_step_on_union_of_batches(ranks) -> None:
    zero, one, _ = ranks
    assert not torch.equal(zero["sgd_batch"], one["sgd_batch"]), "ranks drew the same batch"
    _close(zero["init"], one["init"])
    x = genzoo.load_dataset("moons", split="train", n=N, seed=0)
    model = genzoo.create("realnvp", data=x, n_layers=2, hidden=8)
    model.load_state_dict(zero["init"])
    union = torch.cat([zero["sgd_batch"], one["sgd_batch"]])
    model.loss(union)["nll"].backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= LR_SGD * p.grad
    moved = sum(float((zero["sgd_after"][k] - v).abs().sum()) for k, v in zero["init"].items())
    assert moved > 1e-3, "the SGD step changed nothing"
    _close(zero["sgd_after"], model.state_dict(), atol=1e-6)
    _close(one["sgd_after"], model.state_dict(), atol=1e-6)


def test_a_conditional_step_equals_the_single_process_step_on_the_union(ranks) -> None:
    """The conditions travel with their rows: one SGD step of a class-conditional flow on
    two ranks equals one step on the union of the batches, each row with its class."""
    zero, one, _ = ranks
    x, c = genzoo.load_dataset("moons", split="train", n=N, seed=0, condition=True)
    torch.manual_seed(0)
    model = genzoo.create("realnvp", data=x, condition=c, n_layers=2, hidden=8)
    union = torch.cat([zero["cond_batch"], one["cond_batch"]])
    rows = (union[:, None, :] == x[None, :, :]).all(-1).float().argmax(1)  # each row's index
    model.loss(union, c=c[rows])["nll"].backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= LR_SGD * p.grad
    _close(zero["cond_after"], model.state_dict(), atol=1e-6)
    _close(one["cond_after"], model.state_dict(), atol=1e-6)


def test_ranks_end_identical_and_sweep_disjoint_shares_of_each_epoch(ranks) -> None:
    zero, one, _ = ranks
    _close(zero["adam_after"], one["adam_after"])
    _close(zero["gan_after"], one["gan_after"])
    _close(zero["gmm_after"], one["gmm_after"])
    # epoch 1 = two batches of 16 per rank: together the 64 examples, each once
    x = genzoo.load_dataset("moons", split="train", n=N, seed=0)
    epoch = torch.cat(zero["adam_batches"][:2] + one["adam_batches"][:2])
    assert epoch.shape[0] == N
    match = (epoch[:, None, :] == x[None, :, :]).all(-1)  # (drawn, example)
    assert match.sum(0).eq(1).all(), "an example was skipped or drawn twice in one epoch"


def test_rank_zero_alone_writes_and_evaluates_and_resume_matches(ranks) -> None:
    zero, one, where = ranks
    rows = [json.loads(line) for line in (where / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "nll" in r] == [1, 2, 3, 4]  # one writer, not two
    assert [r["step"] for r in rows if "eval/n" in r] == [2, 4]
    assert (where / "a" / "checkpoint.safetensors").exists()
    assert len(zero["evaluations"]) == 2 and one["evaluations"] == []
    _close(zero["resumed_after"], zero["adam_after"], atol=1e-6)
    _close(one["resumed_after"], one["adam_after"], atol=1e-6)
    gmm_rows = (where / "gmm" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in gmm_rows]
    assert steps == list(range(1, len(steps) + 1)) and steps  # written once, by rank 0
