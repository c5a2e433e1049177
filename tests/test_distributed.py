"""Data-parallel training: two CPU processes under torchrun (gloo) against one process.

One launch of ``python -m torch.distributed.run --nproc_per_node 2 --standalone`` runs a
script that trains several tiny models; each rank saves what it saw and ended with, and the
tests below compare the ranks with each other and with single-process training. A second
launch fits mixtures by EM across the two ranks (each rank its share of the rows, the
sufficient statistics summed), compared in float64 with the single-process fit on all rows.
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

    # a GAN (players touch different parameters) and EM (no players: sharded statistics)
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


def _launch(script_text: str, where: Path) -> tuple[dict, dict]:
    """Run ``script_text`` on two gloo ranks in ``where``; return what each rank saved."""
    script = where / "script.py"
    script.write_text(script_text)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--standalone", str(script), str(where)]  # fmt: skip
    done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=240)
    if done.returncode != 0:  # one retry: torchrun's free-port pick can race another process
        first = done.stdout[-2000:] + done.stderr[-2000:]
        done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=240)
        assert done.returncode == 0, first + done.stdout[-3000:] + done.stderr[-3000:]
    load = lambda r: torch.load(where / f"rank{r}.pt", weights_only=False)  # noqa: E731
    return load(0), load(1)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[dict, dict, Path]:
    """Run the script on two gloo ranks; return what each rank saved and the folder."""
    where = tmp_path_factory.mktemp("ddp")
    return (*_launch(SCRIPT, where), where)


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


# -- EM across processes ------------------------------------------------------------------------
#: Built the same way by the torchrun script and by the single-process references below.
EM_SETUP = textwrap.dedent(
    """
    import numpy as np
    import torch
    import genzoo
    from genzoo.models.mixtures import GaussianMixture
    from genzoo.train.trainer import Trainer

    N_EM = 601  # odd: the two shares differ by one row
    x = genzoo.load_dataset("8gaussians", split="train", n=N_EM, seed=0).double()
    xc, cc = genzoo.load_dataset("moons", split="train", n=N_EM, seed=0, condition=True)
    xc = xc.double()

    def jitter(batch, generator):  # a transform: every rank draws it for the whole set
        return batch + 0.01 * torch.randn(batch.shape, generator=generator, dtype=batch.dtype)

    def cases():
        \"\"\"name -> (model, trainer settings, data, condition): the fits compared.\"\"\"
        return {
            # initialised at creation on every rank, fixed number of steps
            "full": (genzoo.create("gmm", data=x, n_components=4, tol=0.0),
                     dict(steps=15), x, None),
            # initialised lazily (rank 0 on the whole transformed set), stops by tol
            "diag": (GaussianMixture((2,), n_components=5, covariance_type="diag", seed=1),
                     dict(steps=200, transform=jitter), x, None),
            "tied": (GaussianMixture((2,), n_components=3, covariance_type="tied", tol=0.0),
                     dict(steps=10), x, None),
            "spherical": (GaussianMixture((2,), n_components=3, tol=0.0,
                                          covariance_type="spherical"),
                          dict(steps=10), x, None),
            # K chosen by BIC on rank 0, adopted by rank 1
            "auto": (GaussianMixture((2,), n_components="auto", k_range=(2, 4)),
                     dict(steps=5), x, None),
            # one mixture per class, each summing its statistics over the ranks
            "conditional": (GaussianMixture((2,), n_components=2, n_classes=2, tol=0.0),
                            dict(steps=10), xc, cc),
            # each class's K chosen by BIC on rank 0, adopted by rank 1
            "conditional-auto": (GaussianMixture((2,), n_components="auto", k_range=(1, 3),
                                                 n_classes=2, tol=0.0),
                                 dict(steps=5), xc, cc),
            # stochastic EM of a one-layer deep-gmm (a mixture of factor analysers)
            "deep1": (genzoo.create("deep-gmm", data=x, n_components=[3], latent_dims=[1]),
                      dict(steps=8), x, None),
            # two layers: layer 1's first update is exact, the draws above are per rank
            "deep2": (genzoo.create("deep-gmm", data=x, n_components=[3, 2],
                                    latent_dims=[1, 1], strict_dims=False),
                      dict(steps=1), x, None),
        }

    def fit(name, model, settings, data, condition, **extra):
        trainer = Trainer(dtype="float64", log_every=1, progress=False, **settings, **extra)
        trainer.fit(model, data, condition=condition)
        return model, trainer
    """
)

EM_SCRIPT = EM_SETUP + textwrap.dedent(
    """
    import os, sys
    torch.set_num_threads(1)
    import genzoo.models.gmm_files as gmm_files

    where = sys.argv[1]
    rank = int(os.environ["RANK"])
    result = {}
    for name, (model, settings, data, condition) in cases().items():
        seen, inner = [], model.fit_step
        def spy(rows, c=None, inner=inner, seen=seen):
            seen.append(rows.clone())
            return inner(rows) if c is None else inner(rows, c=c)
        model.fit_step = spy
        model, trainer = fit(name, model, settings, data, condition, out=f"{where}/{name}")
        result[name] = {"state": model.state_dict(), "seen": seen, "history": trainer.history,
                        "k": getattr(model, "n_components", None)}

    # the chunked file EM: each rank reads its rows of the file
    reads, opener = [], gmm_files._npy_reader
    def counting_reader(path):
        read, shape = opener(path)
        def counted(a, b):
            reads.append((a, b))
            return read(a, b)
        return counted, shape
    gmm_files._npy_reader = counting_reader
    for kind in ("full", "diag"):
        model = gmm_files.fit_gmm_memmap(f"{where}/big.npy", 4, covariance_type=kind, tol=0.0,
                                         max_iter=12, chunk_rows=50, init_rows=256,
                                         dtype=torch.float64, sharded=True)
        result["memmap_" + kind] = {"state": model.state_dict(), "reads": list(reads)}
        reads.clear()

    import copy
    mixture = GaussianMixture((2,), n_components=2)
    with mixture.sharded(x):  # a model copied mid-fit (an evaluator may) keeps no group
        result["copied_group"] = copy.deepcopy(mixture)._group
    result["group_after"] = mixture._group
    torch.save(result, f"{where}/rank{rank}.pt")
    """
)
EM_CASES = ("full", "diag", "tied", "spherical", "auto", "conditional", "conditional-auto", "deep1")


@pytest.fixture(scope="module")
def em_ranks(tmp_path_factory) -> tuple[dict, dict, dict, Path]:
    """Fit every EM case on two ranks (one launch) and in this process; return the ranks'
    results, the single-process references and the folder."""
    where = tmp_path_factory.mktemp("em")
    namespace: dict = {}
    exec(EM_SETUP, namespace)  # the same models, data and settings as the script
    np = namespace["np"]
    np.save(where / "big.npy", namespace["x"].numpy())
    zero, one = _launch(EM_SCRIPT, where)
    single = {}
    for name, (model, settings, data, condition) in namespace["cases"]().items():
        model, trainer = namespace["fit"](name, model, settings, data, condition)
        single[name] = {"state": model.state_dict(), "history": trainer.history}
    return zero, one, single, where


def test_em_across_two_ranks_equals_the_single_process_fit_on_all_rows(em_ranks) -> None:
    """Each rank fits on its half of the rows, the statistics summed each iteration: the
    parameters equal the single-process fit on the union within 1e-6 (float64), for every
    covariance type, K chosen by BIC, one mixture per class and a one-layer deep-gmm; the
    ranks stop at the same step as the single process (the stopping rule is global)."""
    zero, one, single, where = em_ranks
    for name in EM_CASES:
        _close(zero[name]["state"], one[name]["state"])  # one model on both ranks
        _close(zero[name]["state"], single[name]["state"], atol=1e-6)
        steps = [row["step"] for row in zero[name]["history"]]
        assert steps == [row["step"] for row in single[name]["history"]], name
        for mine, theirs in zip(zero[name]["history"], single[name]["history"], strict=True):
            assert abs(mine["log_likelihood"] - theirs["log_likelihood"]) < 1e-8, name
    assert len(zero["diag"]["history"]) < 200, "the tol stopping rule never fired"
    assert zero["auto"]["k"] == one["auto"]["k"] == single["auto"]["state"]["means_"].shape[0]
    sizes = [single["conditional-auto"]["state"][f"classes.{k}.means_"].shape[0] for k in (0, 1)]
    assert zero["conditional-auto"]["k"] == one["conditional-auto"]["k"] == sizes
    assert zero["copied_group"] == one["copied_group"] == "default"
    assert zero["group_after"] is None and one["group_after"] is None


def test_each_rank_fits_on_its_own_contiguous_share_of_the_rows(em_ranks) -> None:
    zero, one, _, where = em_ranks
    x = genzoo.load_dataset("8gaussians", split="train", n=601, seed=0).double()
    for name in ("full", "tied", "deep1"):
        torch.testing.assert_close(zero[name]["seen"][0], x[:301], rtol=0, atol=0)
        torch.testing.assert_close(one[name]["seen"][0], x[301:], rtol=0, atol=0)
    rows = [
        json.loads(line) for line in (where / "full" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == list(range(1, 16))  # rank 0 alone writes


def test_two_layer_deep_gmm_shares_the_exact_first_layer_update(em_ranks) -> None:
    """Layer 1's M-step sums over both ranks (exact); the layer above is fitted to draws
    each rank makes for its own rows, so only layer 1 equals the single process."""
    zero, one, single, _ = em_ranks
    _close(zero["deep2"]["state"], one["deep2"]["state"])
    for key in ("logits.0", "eta.0", "lam.0", "log_psi.0"):
        torch.testing.assert_close(zero["deep2"]["state"][key], single["deep2"]["state"][key],
                                   rtol=0, atol=1e-6, msg=key)  # fmt: skip


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_file_em_across_two_ranks_reads_each_share_once_and_equals_one_process(
    em_ranks, kind
) -> None:
    """``fit_gmm_memmap(sharded=True)``: rank 1 reads only its rows of the file, rank 0 its
    rows and the initialisation sample; the fit equals the single-process one (1e-6)."""
    from genzoo.models.gmm_files import fit_gmm_memmap

    zero, one, _, where = em_ranks
    reference = fit_gmm_memmap(where / "big.npy", 4, covariance_type=kind, tol=0.0,
                               max_iter=12, chunk_rows=50, init_rows=256,
                               dtype=torch.float64)  # fmt: skip
    _close(zero["memmap_" + kind]["state"], one["memmap_" + kind]["state"])
    _close(zero["memmap_" + kind]["state"], reference.state_dict(), atol=1e-6)
    read_by_one = {row for a, b in one["memmap_" + kind]["reads"] for row in range(a, b)}
    assert read_by_one == set(range(301, 601))
    assert len(one["memmap_" + kind]["reads"]) == 12 * 6  # 300 rows in chunks of 50, 12 passes
    in_zero_share = [(a, b) for a, b in zero["memmap_" + kind]["reads"] if b <= 301]
    assert {row for a, b in in_zero_share for row in range(a, b)} == set(range(301))


def test_shard_bounds_split_the_rows_in_order_into_near_equal_shares() -> None:
    from genzoo.models.em_shards import shard_bounds

    for n in (0, 1, 5, 601, 1000):
        for world in (1, 2, 3, 7):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1
            assert [len(t) for t in torch.arange(n).tensor_split(world)] == sizes


def test_sharded_em_is_refused_without_a_process_group_or_with_online_em(tmp_path) -> None:
    from genzoo.models.gmm_files import fit_gmm_memmap
    from genzoo.models.mixtures import GaussianMixture

    x = genzoo.load_dataset("moons", split="train", n=64, seed=0)
    entries = [
        (RuntimeError, "process group", GaussianMixture((2,), n_components=2).sharded(x)),
        (ValueError, "online EM is not sharded",
         GaussianMixture((2,), n_components=2, online=True).sharded(x)),
        (RuntimeError, "sharded EM needs a torch.distributed",
         genzoo.create("deep-gmm", data=x, n_components=[2], latent_dims=[1]).sharded()),
    ]  # fmt: skip
    for error, message, context in entries:
        with pytest.raises(error, match=message), context:
            pass
    import numpy as np

    np.save(tmp_path / "x.npy", x.numpy())
    with pytest.raises(RuntimeError, match="torchrun"):
        fit_gmm_memmap(tmp_path / "x.npy", 2, sharded=True)


def test_a_lazily_initialised_class_conditional_gmm_sets_its_class_prior() -> None:
    """Its first ``fit_step`` initialises as ``initialize(data, c)`` does, prior included."""
    from genzoo.models.mixtures import GaussianMixture

    x, c = genzoo.load_dataset("moons", split="train", n=90, seed=0, condition=True)
    keep = torch.cat([torch.nonzero(c == 0).flatten()[:40], torch.nonzero(c == 1).flatten()[:20]])
    lazy = GaussianMixture((2,), n_components=2, n_classes=2)
    lazy.fit_step(x[keep], c=c[keep])
    eager = GaussianMixture((2,), n_components=2, n_classes=2)
    eager.initialize(x[keep], c[keep])
    eager.fit_step(x[keep], c=c[keep])
    torch.testing.assert_close(lazy.class_log_prior.exp(), torch.tensor([2 / 3, 1 / 3]))
    _close(lazy.state_dict(), eager.state_dict())
