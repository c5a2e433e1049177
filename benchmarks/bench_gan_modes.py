"""Mode coverage of every GAN variant on 8gaussians and 25gaussians at one fixed budget.

Each variant trains from the same seed for ``--steps`` at ``--lr``, then ``--decay-steps``
at a tenth of it, with the same batch size and width. The table gives the modes covered
(a mode counts once a sample lands within 3 std of its centre) and the share of
high-quality samples (within 3 std of some centre), from 2500 samples. 25gaussians is much
harder: its modes have std 0.018 on a grid of spacing 0.707, so a sampler spread evenly
over the grid's square covers every mode with a high-quality share of only 1.8%.

Run by hand (not by pytest):
    python benchmarks/bench_gan_modes.py
    python benchmarks/bench_gan_modes.py --steps 2000 --datasets 25gaussians --variants gan-ns-r1
"""

from __future__ import annotations

import argparse
import time

import torch

import genzoo
from genzoo.metrics.modes import mode_centres, mode_coverage

#: name -> (registered model, hyperparameters); widths are added from --hidden.
VARIANTS: dict[str, tuple[str, dict]] = {
    "gan-minimax": ("gan", {"loss": "minimax"}),
    "gan-ns": ("gan", {"loss": "non-saturating"}),
    "gan-ns-r1": ("gan", {"penalty": "r1", "penalty_weight": 0.1}),
    "gan-ns-r2": ("gan", {"penalty": "r2", "penalty_weight": 0.1}),
    "wgan": ("wgan", {}),
    "wgan-gp": ("wgan-gp", {}),
    "lsgan": ("lsgan", {}),
    "infogan": ("infogan", {"n_categories": 8, "n_continuous": 1}),
    "stylegan": ("stylegan", {}),
}


def run(variant: str, dataset: str, args: argparse.Namespace) -> dict:
    """Train one variant on one dataset; return its coverage and wall time."""
    name, hparams = VARIANTS[variant]
    hparams = {**hparams, "hidden": args.hidden, "ema_decay": args.ema}
    if name == "stylegan":
        hparams["channels"] = args.hidden
    x = genzoo.load_dataset(dataset, n=4000, seed=0)
    torch.manual_seed(args.seed)
    model = genzoo.create(name, data=x, **hparams)
    start = time.perf_counter()
    for steps, lr in ((args.steps, args.lr), (args.decay_steps, args.lr / 10)):
        if steps:  # a second stage at lr / 10 (fresh Adam state) sharpens the modes
            trainer = genzoo.Trainer(
                steps=steps, batch_size=args.batch_size, lr=lr, seed=args.seed, progress=False
            )
            trainer.fit(model, x)
    seconds = time.perf_counter() - start
    centres, std = mode_centres(dataset)
    samples = model.sample(2500, torch.Generator().manual_seed(args.seed + 1))
    result = mode_coverage(samples, centres, std)
    return {**result, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="8gaussians,25gaussians")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps per player")
    parser.add_argument("--decay-steps", type=int, default=300, help="more steps at lr / 10")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--ema", type=float, default=0.0, help="generator EMA decay; 0: off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    print(f"steps={args.steps}+{args.decay_steps} batch={args.batch_size} lr={args.lr} "
          f"hidden={args.hidden} ema={args.ema} seed={args.seed}")  # fmt: skip
    print(f"{'dataset':<12} {'variant':<12} {'modes':>7} {'HQ share':>9} {'seconds':>8}")
    for dataset in args.datasets.split(","):
        for variant in variants:
            r = run(variant, dataset, args)
            modes = f"{r['modes_covered']}/{r['n_modes']}"
            print(f"{dataset:<12} {variant:<12} {modes:>7} {r['high_quality_share']:>9.1%} "
                  f"{r['seconds']:>8.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
