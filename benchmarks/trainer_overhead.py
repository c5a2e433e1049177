"""The Trainer's step time against a bare training loop, same model, batches and optimiser.

    python benchmarks/trainer_overhead.py [--reps 9] [--models vae rbm realnvp]

For each model the bare loop is ``for x in batches: loss.backward(); opt.step()`` over
batches gathered beforehand (their gathering is not timed), with the optimiser the Trainer
builds (``genzoo.train.trainer.make_optimizer``: fused Adam where torch has it, the RBM's
SGD). The Trainer draws the same batches itself (that is part of its time), logs every 50
steps and writes no files (``out=None``). Both start from the same weights and seeds, so
they end on the same parameters (checked). The two are timed interleaved in one process,
alternating which goes first, ``--reps`` times; the ratio Trainer / bare loop is reported
as the median over the repetitions with its min and max, since the machine may be shared;
the ratio of the process's CPU time (with ``--threads 1``, the work done, less sensitive to
other processes on a shared machine) is given beside it, and the wall-time ratio against a
bare loop with ``torch.optim.Adam``'s defaults (a for-loop over the tensors on CPU: what a
hand-written loop gets), which shows what the fused optimiser gains.

Models (issue 19's): the MLP VAE on binarised digits (64-256-8, Bernoulli, batch 64), the
RBM on binarised digits (64 hidden, PCD-1, SGD lr 0.1, batch 100) and RealNVP on moons
(8 couplings, MLP 2x64, batch 512).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import genzoo
from genzoo.train.distributed import split_terms
from genzoo.train.trainer import make_optimizer


def _vae(seed: int):
    x = genzoo.load_dataset("digits-binary", split="train")
    torch.manual_seed(seed)
    model = genzoo.create("vae", data=x, latent_dim=8, hidden=256, depth=2,
                          likelihood="bernoulli", network="mlp")  # fmt: skip
    return model, x, {"batch_size": 64, "lr": 1e-3, "steps": 400}


def _rbm(seed: int):
    x = genzoo.load_dataset("digits-binary", split="train")
    torch.manual_seed(seed)
    model = genzoo.create("rbm", data=x, n_hidden=64, cd_k=1, persistent=True, n_chains=100,
                          weight_decay=0.0, momentum=0.0, optimizer="sgd")  # fmt: skip
    return model, x, {"batch_size": 100, "lr": 0.1, "steps": 600}


def _realnvp(seed: int):
    x = genzoo.load_dataset("moons", n=4000)
    torch.manual_seed(seed)
    model = genzoo.create("realnvp", data=x, n_layers=8, hidden=64)
    return model, x, {"batch_size": 512, "lr": 1e-3, "steps": 60}


MODELS = {"vae": _vae, "rbm": _rbm, "realnvp": _realnvp}


def batches_of(x: torch.Tensor, batch_size: int, steps: int, seed: int) -> list[torch.Tensor]:
    """The Trainer's random batches (``batch_order="random"``) for ``seed``, gathered ahead."""
    generator = torch.Generator().manual_seed(seed)
    return [x[torch.randint(x.shape[0], (batch_size,), generator=generator)]
            for _ in range(steps)]  # fmt: skip


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def bare_loop(
    model, batches: list[torch.Tensor], lr: float, seed: int, plain_adam: bool = False
) -> tuple[float, float]:
    """The plain loop's (wall, CPU) seconds for ``batches`` (the model trains in place), with
    the Trainer's optimiser, or with ``torch.optim.Adam``'s defaults (``plain_adam``)."""
    settings = dict(model.optimizer_settings("model"))
    if plain_adam and settings.get("optimizer", "adam") == "adam":
        settings["foreach"] = None  # torch's default: a loop over the tensors on CPU
    optimizer = make_optimizer(model.player_parameters("model"), lr, settings)
    torch.manual_seed(seed)  # as the Trainer seeds the model's own noise
    tic = _clock()
    for step, x in enumerate(batches):
        total, _ = split_terms(model.loss(x))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        model.after_step("model", step)  # the model's bookkeeping (the VAE's step count)
    return _since(tic)


def trainer_run(model, x: torch.Tensor, settings: dict, seed: int) -> tuple[float, float]:
    """The Trainer's (wall, CPU) seconds for the same steps (its set-up included)."""
    trainer = genzoo.Trainer(seed=seed, progress=False, **settings)
    tic = _clock()
    trainer.fit(model, x)
    return _since(tic)


def compare(name: str, reps: int, seed: int = 0) -> dict[str, float]:
    """Interleaved timings of the two loops for model ``name``."""
    model, x, settings = MODELS[name](seed)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    batches = batches_of(x, settings["batch_size"], settings["steps"], seed)
    ratios, cpu_ratios, plain_ratios, bare_times, trainer_times = [], [], [], [], []
    for rep in range(reps + 1):  # the first is a warm-up
        timings = {}
        for side in ("bare", "trainer", "plain") if rep % 2 else ("plain", "trainer", "bare"):
            model.load_state_dict(initial)
            if side == "plain":
                timings[side] = bare_loop(model, batches, settings["lr"], seed, plain_adam=True)
            elif side == "bare":
                timings[side] = bare_loop(model, batches, settings["lr"], seed)
                bare_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                timings[side] = trainer_run(model, x, settings, seed)
                trainer_state = {k: v.clone() for k, v in model.state_dict().items()}
        if rep == 0:
            same = all(torch.equal(bare_state[k], trainer_state[k]) for k in bare_state)
            continue
        ratios.append(timings["trainer"][0] / timings["bare"][0])
        cpu_ratios.append(timings["trainer"][1] / timings["bare"][1])
        plain_ratios.append(timings["trainer"][0] / timings["plain"][0])
        bare_times.append(timings["bare"][0])
        trainer_times.append(timings["trainer"][0])
    steps = settings["steps"]
    return {
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "cpu_ratio": statistics.median(cpu_ratios),
        "plain_adam_ratio": statistics.median(plain_ratios),
        "bare_ms_per_step": 1000 * statistics.median(bare_times) / steps,
        "trainer_ms_per_step": 1000 * statistics.median(trainer_times) / steps,
        "identical_parameters": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9, help="interleaved repetitions")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.reps} "
          "interleaved repetitions, median ratio (min..max)")  # fmt: skip
    print(f"{'model':<9} {'bare ms/step':>12} {'Trainer ms/step':>15} {'ratio':>7}  range"
          f"         {'CPU-time ratio':>14} {'vs torch Adam':>13}  same parameters")  # fmt: skip
    for name in args.models:
        r = compare(name, args.reps)
        print(f"{name:<9} {r['bare_ms_per_step']:>12.3f} {r['trainer_ms_per_step']:>15.3f} "
              f"{r['ratio']:>7.3f}  {r['ratio_min']:.3f}..{r['ratio_max']:.3f}  "
              f"{r['cpu_ratio']:>14.3f} {r['plain_adam_ratio']:>13.3f}  "
              f"{r['identical_parameters']}")  # fmt: skip


if __name__ == "__main__":
    main()
