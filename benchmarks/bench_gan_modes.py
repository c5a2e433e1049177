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
    python benchmarks/bench_gan_modes.py --datasets 25gaussians --variants gan-ns-r1,gan-ns-r1-b0
        --steps 3000 --decay-steps 1500 --batch-size 256 --hidden 128 --depth 3 --latent-dim 4
        --ema 0.99 --threads 1    (one command line)
    python benchmarks/bench_gan_modes.py --infogan-digits --steps 3000 --threads 1

``gan-ns-r1-b0`` is ``gan-ns-r1`` with Adam betas ``(0, 0.99)`` (StyleGAN's, with R1) instead
of DCGAN's ``(0.5, 0.999)``: on 25gaussians, momentum-free Adam is what makes the modes sharp.
``--infogan-digits`` trains InfoGAN on digits instead and prints its code purity: for each
categorical value, the share of samples the digits classifier puts in its majority class.
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
    "gan-ns-r1-b0": ("gan", {"penalty": "r1", "penalty_weight": 0.1, "betas": (0.0, 0.99)}),
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
    if args.depth:
        hparams["depth"] = args.depth
    if args.latent_dim:
        hparams["latent_dim"] = args.latent_dim
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


#: InfoGAN on digits: the categorical code picks the digit class (Chen et al. 2016, Fig. 2a).
INFOGAN_DIGITS = {
    "hparams": {"hidden": 32, "latent_dim": 4, "n_continuous": 1, "info_weight": 1.0,
                "ema_decay": 0.99},
    "steps": 3000, "batch_size": 64, "lr": 1e-3,
}  # fmt: skip


def infogan_digits(seed: int, steps: int) -> None:
    """Train the ``INFOGAN_DIGITS`` recipe and print its code purity under the digits classifier."""
    from genzoo.data import dequantize
    from genzoo.metrics.frechet import digits_classifier

    x = dequantize(genzoo.load_dataset("digits", split="train"), 17,
                   torch.Generator().manual_seed(0))  # fmt: skip
    classifier = digits_classifier()
    torch.manual_seed(seed)
    model = genzoo.create("infogan", data=x, **INFOGAN_DIGITS["hparams"])
    start = time.perf_counter()
    genzoo.Trainer(steps=steps, batch_size=INFOGAN_DIGITS["batch_size"],
                   lr=INFOGAN_DIGITS["lr"], seed=seed, progress=False).fit(model, x)  # fmt: skip
    seconds = time.perf_counter() - start
    r = model.code_purity(lambda v: classifier(v.float().cpu()).argmax(1), 200,
                          torch.Generator().manual_seed(seed))  # fmt: skip
    accuracy = model.code_accuracy(1000, torch.Generator().manual_seed(seed))
    print(f"infogan digits {INFOGAN_DIGITS['hparams']} steps={steps} seed={seed}: "
          f"code purity {r['purity']:.2f}, {r['distinct']}/10 distinct majority classes "
          f"{r['majority']}, Q accuracy {accuracy:.3f}, {seconds:.0f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="8gaussians,25gaussians")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps per player")
    parser.add_argument("--decay-steps", type=int, default=300, help="more steps at lr / 10")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--depth", type=int, default=0, help="MLP hidden layers; 0: default")
    parser.add_argument("--latent-dim", type=int, default=0, help="noise size; 0: default")
    parser.add_argument("--ema", type=float, default=0.0, help="generator EMA decay; 0: off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: default")
    parser.add_argument(
        "--infogan-digits", action="store_true", help="instead: InfoGAN code purity on digits"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.infogan_digits:
        infogan_digits(args.seed, args.steps)
        return
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
