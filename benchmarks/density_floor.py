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
``--seeds`` seeds; the table gives the mean and the standard error over seeds. What is not
given is the model's recommended budget for the toy (``genzoo.bench.budgets``), exactly what
``genzoo train MODEL --data TOY`` and ``genzoo bench`` train with: steps, batch size, learning
rate and schedule, the number of training points drawn (``n_train``; NSF on the toys: a fresh
draw of 1,000,000, since the toys are generated and 10,000 points overfit) and the
hyper-parameters, which ``--set key=value`` overrides one by one. So the sweep that chose the
2-D defaults can be rerun::

    # the recommended NSF budget on the nine toys, 3 seeds (the table of the report)
    python benchmarks/density_floor.py
    # the toy's own 10,000 training points instead of the budget's draw
    python benchmarks/density_floor.py --n-train 10000
    # a wider setting on the hardest toys
    python benchmarks/density_floor.py --toys rings checkerboard --set n_layers=8 bins=32
    python benchmarks/density_floor.py --model realnvp --set n_layers=8 hidden=64
    # one process per seed, then one table from the saved rows
    python benchmarks/density_floor.py --n-test 200000 --seed-list 0 --out s0.jsonl
    python benchmarks/density_floor.py --table s0.jsonl s1.jsonl s2.jsonl

Measured with the NSF budget (8 layers, 64 wide, 32 bins, tail 4; 12,000 steps, batch 512,
lr 3e-3 cosine, 1,000,000 points; 200,000 test points; 3 seeds, 2026-12-07): paired KL
0.002-0.008 nats on all nine toys (checkerboard 0.0084, rings 0.0069), about 270 CPU-s a cell
on one thread. The previous budget, 6 layers of 24 bins at 4000 steps, left rings at 0.016
and checkerboard at 0.020; the toy's own 10,000 points overfit (rings 0.055, checkerboard
0.051 at 2000 steps). The entropies are the toys' reference values to 1e-5 (quadrature).

Run by hand (not by pytest); it takes minutes per toy on a CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

import genzoo
from genzoo.bench.budgets import recommended_budget
from genzoo.cli import _parse_set
from genzoo.data import true_entropy, true_log_prob
from genzoo.data.toy2d import TOY_NAMES


def settings_for(toy: str, args: argparse.Namespace, given: dict) -> dict:
    """The trainer settings, training-set size and hyper-parameters of one toy's cells: the
    model's recommended budget for the toy, with what was given on the command line."""
    budget = recommended_budget(args.model, toy)
    chosen = {
        "steps": budget.full_steps,
        "batch_size": budget.batch_size,
        "lr": budget.lr,
        "lr_schedule": budget.lr_schedule,
        "n_train": budget.n_train,
    }
    chosen.update({k: getattr(args, k) for k in chosen if getattr(args, k) is not None})
    return {**chosen, "hparams": {**budget.hparams, **given}}


def run_cell(toy: str, seed: int, args: argparse.Namespace, hparams: dict) -> dict:
    """Train one model on one toy with one seed; its NLL - entropy and the paired KL."""
    setting = settings_for(toy, args, hparams)
    torch.manual_seed(seed)
    x = genzoo.load_dataset(toy, "train", n=setting["n_train"], seed=seed)
    model = genzoo.create(args.model, data=x, **setting["hparams"])
    trainer = genzoo.Trainer(
        steps=setting["steps"],
        batch_size=setting["batch_size"],
        lr=setting["lr"],
        lr_schedule=setting["lr_schedule"],
        warmup_steps=args.warmup_steps,
        seed=seed,
        progress=False,
    )
    tic, cpu = time.perf_counter(), time.process_time()
    trainer.fit(model, x)
    seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu
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
        "nll_mc_stderr": float(log_q.std() / math.sqrt(len(log_q))),
        "kl": float(kl.mean()),
        "kl_mc_stderr": float(kl.std() / math.sqrt(len(kl))),
        "train_s": seconds,
        "train_cpu_s": cpu,
        **setting,
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
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. SEEDS-1")
    parser.add_argument("--seed-list", type=int, nargs="+", metavar="SEED",
                        help="these seeds instead (to split a run across processes)")  # fmt: skip
    # not given: the model's recommended budget for the toy (genzoo.bench.budgets)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--lr-schedule", choices=("constant", "linear", "cosine"))
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--n-train", type=int, help="training points drawn (default: the "
                        "budget's n_train, else the toy's own 10,000)")  # fmt: skip
    parser.add_argument("--n-test", type=int, default=50_000)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the per-seed rows as JSON lines here")
    parser.add_argument("--table", nargs="+", metavar="JSONL",
                        help="train nothing: print the table of rows saved by --out")  # fmt: skip
    args = parser.parse_args()
    if args.table:
        lines = [line for path in args.table for line in Path(path).read_text().splitlines()]
        rows = [json.loads(line) for line in lines if line.strip()]
        print_table(rows)
        return
    torch.set_num_threads(args.threads)
    hparams = _parse_set(args.set)  # values as JSON, as `genzoo train --set`
    seeds = args.seed_list or range(args.seeds)
    # seed by seed: a run stopped early has every toy at the first seeds
    cells = [(toy, seed) for seed in seeds for toy in args.toys]
    rows = []
    for toy, seed in tqdm(cells, desc="density floor"):
        rows.append({"model": args.model, "n_test": args.n_test,
                     **run_cell(toy, seed, args, hparams)})  # fmt: skip
        tqdm.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                               for k, v in rows[-1].items()}))  # fmt: skip
        if args.out:  # rewritten after each cell: a stopped run keeps what it finished
            with open(args.out, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    """The markdown table of NLL - entropy and paired KL per toy: mean +- standard error
    over seeds, with the setting each toy was trained with."""
    toys = list(dict.fromkeys(r["toy"] for r in rows))
    print("\n| toy | seeds | NLL - entropy (nats) | paired KL (nats) | train CPU s | setting |")
    print("|---|---|---|---|---|---|")
    for toy in toys:
        mine = [r for r in rows if r["toy"] == toy]
        gap, gap_se = mean_stderr([r["nll_minus_entropy"] for r in mine])
        kl, kl_se = mean_stderr([r["kl"] for r in mine])
        cpu = statistics.fmean(r.get("train_cpu_s", r["train_s"]) for r in mine)
        first = mine[0]
        setting = (f"{first['model']} {json.dumps(first['hparams'])}, {first['steps']} steps, "
                   f"batch {first['batch_size']}, lr {first['lr']} {first['lr_schedule']}, "
                   f"n_train {first['n_train']}, n_test {first['n_test']}")  # fmt: skip
        print(f"| {toy} | {len(mine)} | {gap:.3f} +- {gap_se:.3f} | {kl:.3f} +- {kl_se:.3f} "
              f"| {cpu:.0f} | {setting} |")  # fmt: skip
    overall = [r["kl"] for r in rows]
    print(f"\nmean paired KL over all cells: {statistics.fmean(overall):.3f} nats; "
          "mean +- standard error over seeds")  # fmt: skip


if __name__ == "__main__":
    main()
