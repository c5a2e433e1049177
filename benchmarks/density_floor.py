"""How close the flows get to the true density of the nine 2-D toys: NLL - entropy, in nats.

Every toy has a known density (``genzoo.data.toy_log_prob``) and entropy
(``genzoo.data.true_entropy``), so a model's test NLL minus the entropy is its KL divergence
from the data, ``KL(p || q) = E_p[log p - log q] >= 0``, up to Monte-Carlo error. Two
estimates of it are reported per toy, both on ``--n-test`` fresh test points:

- ``nll_minus_entropy``: mean test ``-log q(x)`` minus the tabulated entropy (the column the
  benchmark report prints);
- ``kl``: the paired estimate, the mean of ``log p(x) - log q(x)`` over the same points;
  its per-point variance is far smaller than that of ``-log q(x)``, so its standard error is
  the one to read when the gap is a few hundredths of a nat.

Each cell is trained with ``genzoo.Trainer`` (random batches with replacement) for
``--seeds`` seeds; the table gives the mean and the standard error over seeds. Settings are
given as ``--set key=value`` model hyper-parameters and the trainer options below, so the
sweep that chose the 2-D defaults can be rerun::

    # the 2-D setting proposed for NSF: 9 toys x 3 seeds
    python benchmarks/density_floor.py --set hidden=64 bins=16 tail_bound=4.0
    # the reduced run of the report: one seed, 2000 steps, old (A) and proposed (B) settings
    python benchmarks/density_floor.py --seeds 1 --steps 2000 --n-test 20000 \\
        --batch-size 256 --lr-schedule constant --set hidden=32
    python benchmarks/density_floor.py --seeds 1 --steps 2000 --n-test 20000 \\
        --set hidden=64 bins=16 tail_bound=4.0
    python benchmarks/density_floor.py --model realnvp --set n_layers=8 hidden=64

Run by hand (not by pytest); it takes minutes per toy on a CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch
from tqdm import tqdm

import genzoo
from genzoo.cli import _parse_set
from genzoo.data import true_entropy, true_log_prob
from genzoo.data.toy2d import TOY_NAMES


def run_cell(toy: str, seed: int, args: argparse.Namespace, hparams: dict) -> dict:
    """Train one model on one toy with one seed; its NLL - entropy and the paired KL."""
    torch.manual_seed(seed)
    x = genzoo.load_dataset(toy, "train", n=args.n_train, seed=seed)
    model = genzoo.create(args.model, data=x, **hparams)
    trainer = genzoo.Trainer(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        seed=seed,
        progress=False,
    )
    tic = time.perf_counter()
    trainer.fit(model, x)
    seconds = time.perf_counter() - tic
    model.eval()
    test = genzoo.load_dataset(toy, "test", n=args.n_test, seed=seed)
    with torch.no_grad():
        log_q = torch.cat([model.log_prob(part) for part in test.split(10_000)]).double()
    log_p = true_log_prob(toy, test.double())
    kl = log_p - log_q
    return {
        "toy": toy,
        "seed": seed,
        "nll_minus_entropy": float(-log_q.mean()) - true_entropy(toy),
        "kl": float(kl.mean()),
        "kl_mc_stderr": float(kl.std() / math.sqrt(len(kl))),
        "train_s": seconds,
    }


def mean_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error over seeds (0 for one seed)."""
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nsf", help="a genzoo flow (nsf, realnvp, glow)")
    parser.add_argument("--toys", nargs="+", default=list(TOY_NAMES), choices=TOY_NAMES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lr-schedule", default="cosine", choices=("constant", "linear", "cosine"))
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None, help="default: the toy's own")
    parser.add_argument("--n-test", type=int, default=50_000)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the per-seed rows as JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hparams = _parse_set(args.set)  # values as JSON, as `genzoo train --set`
    cells = [(toy, seed) for toy in args.toys for seed in range(args.seeds)]
    rows = []
    for toy, seed in tqdm(cells, desc="density floor"):
        rows.append(run_cell(toy, seed, args, hparams))
        tqdm.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                               for k, v in rows[-1].items()}))  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps({**r, "model": args.model, **hparams}) + "\n" for r in rows)
    settings = ", ".join(f"{k}={v}" for k, v in hparams.items()) or "model defaults"
    print(f"\n{args.model} ({settings}); {args.steps} steps, batch {args.batch_size}, lr "
          f"{args.lr} {args.lr_schedule}; mean +- standard error over {args.seeds} seeds; "
          f"{args.n_test} test points\n")  # fmt: skip
    print("| toy | NLL - entropy (nats) | paired KL (nats) | train s |")
    print("|---|---|---|---|")
    for toy in args.toys:
        mine = [r for r in rows if r["toy"] == toy]
        gap, gap_se = mean_stderr([r["nll_minus_entropy"] for r in mine])
        kl, kl_se = mean_stderr([r["kl"] for r in mine])
        seconds = statistics.fmean(r["train_s"] for r in mine)
        print(f"| {toy} | {gap:.3f} +- {gap_se:.3f} | {kl:.3f} +- {kl_se:.3f} | {seconds:.0f} |")
    overall = [r["kl"] for r in rows]
    print(f"\nmean paired KL over all cells: {statistics.fmean(overall):.3f} nats")


if __name__ == "__main__":
    main()
