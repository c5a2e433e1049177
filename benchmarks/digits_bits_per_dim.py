"""Digits bits/dim of the multi-scale Glow: the configurations tried, over seeds.

``digits`` is scikit-learn's 8x8 digits with 17 grey levels: 1,000 training, 350 validation
and 447 test images (the bench's splits). Each configuration trains on the train split only
(no augmentation) with ``genzoo.Trainer`` and reports bits/dim on the validation and test
splits as ``genzoo eval`` does (``genzoo.metrics.likelihood.negative_log_likelihood``):

- uniform dequantisation: the bound ``E_u[log p((x + u) / L)] - D log L`` of Theis et al.
  (2016), one draw per image;
- ``--set dequantization=variational``: Glow's variational dequantisation (Ho et al. 2019,
  Flow++ section 3.1): the bound ``E_q[log p((x + u) / L) - D log L - log q(u | x)]``, one draw
  of the learned ``q(u | x)`` per image. Both are upper bounds on the discrete NLL, never the
  NLL itself. ``--draws K`` also reports the importance-weighted bound over ``K`` draws
  (tighter; not what the bench reports).

``--eval-every N`` records the validation/test curve. Measured on the shared 2-core CPU
(load 8-15 from other jobs, so times are only comparable within a row), batch 64, lr 3e-3,
levels x steps-per-level x channels of Glow as given, ``n_levels=2``:

=====  ==============================================  =====  ====  =========================
run    configuration                                    steps  seed  test bits/dim (val)
=====  ==============================================  =====  ====  =========================
A      uniform, 2 x 32 (the old digits budget)          6000   0     2.172 (2.238); best 2.154
                                                                    at 3000
B      uniform, 4 x 64, cosine                          6000   0     2.484 (2.600); best 2.144
                                                                    at 500, then overfits
E      uniform, 4 x 64, cosine, ``--ema 0.999``         3000   0     2.247 (2.349); best 2.095
                                                                    at 750, then overfits
D      uniform, 4 x 64, dropout 0.3, cosine             3000   0     2.061 (2.121)
C      variational, 2 x 32, constant lr                 6000   0     2.055 (2.105); best 2.001
                                                                    at 1500; 20-draw IW 1.937
G      variational, 2 x 32, cosine                      2000   0-2   1.990, 1.994, 2.017:
                                                                    2.000 +- 0.009
H      variational, 4 x 64, dropout 0.3, cosine         2000   0-2   1.999, 1.949, 1.924:
                                                                    1.957 +- 0.022
=====  ==============================================  =====  ====  =========================

``+-`` is the standard error over the seeds. Validation bits/dim of seeds 1 and 2: G 2.064,
2.078; H 1.998, 2.007. Seed 0 of G and of H is ``genzoo train glow --data digits`` itself,
run with that budget in place (``OMP_NUM_THREADS=1``, no flags); ``genzoo eval`` of the H
run gives 1.999 and 1.991 on two calls (one fresh draw of ``q`` per image each time).
Wall time per seed on the shared CPU: G about 650 s, H about 800 s.

H is the recommended budget of ``glow`` on ``digits`` (``genzoo/bench/budgets.py``), so
``genzoo train glow --data digits`` with no flags trains it. Variational dequantisation was
worth about 0.12 bits/dim at equal settings (C against A), dropout stopped the 4 x 64
model's overfitting on 1,000 images (D against B and E), and the two add up (H).

Reproduce (one line per row; add ``--seeds 0 1 2`` for more seeds)::

    python benchmarks/digits_bits_per_dim.py --seeds 0 --eval-every 500 --steps 6000 \\
        --set n_steps=2 hidden=32                                        # A
    python benchmarks/digits_bits_per_dim.py --seeds 0 --eval-every 500 --steps 6000 \\
        --lr-schedule cosine --set n_steps=4 hidden=64                   # B
    python benchmarks/digits_bits_per_dim.py --seeds 0 --eval-every 250 --steps 3000 \\
        --lr-schedule cosine --ema 0.999 --set n_steps=4 hidden=64       # E
    python benchmarks/digits_bits_per_dim.py --seeds 0 --eval-every 250 --steps 3000 \\
        --lr-schedule cosine --set n_steps=4 hidden=64 dropout=0.3       # D
    python benchmarks/digits_bits_per_dim.py --seeds 0 --eval-every 500 --steps 6000 \\
        --draws 20 --set n_steps=2 hidden=32 dequantization=variational  # C
    python benchmarks/digits_bits_per_dim.py --seeds 0 1 2 --eval-every 500 --steps 2000 \\
        --lr-schedule cosine --set n_steps=2 hidden=32 dequantization=variational      # G
    python benchmarks/digits_bits_per_dim.py --seeds 0 1 2 --eval-every 500 --steps 2000 \\
        --lr-schedule cosine --set n_steps=4 hidden=64 dropout=0.3 dequantization=variational
    genzoo train glow --data digits                                      # H, seed 0

Run by hand (not by pytest); one configuration and seed takes 5-25 minutes on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch

import genzoo
from genzoo.cli import _parse_set
from genzoo.data import dequantize
from genzoo.metrics.likelihood import negative_log_likelihood, per_example_log_prob

LEVELS = 17


def bits(model, x: torch.Tensor, draws: int = 1) -> float:
    """Bits/dim of ``model`` on the levels ``x`` as ``genzoo eval`` reports it; ``draws`` > 1:
    the importance-weighted bound over that many dequantisation draws (uniform, or the
    model's own ``q(u | x)``: log-mean-exp of independent one-draw bounds)."""
    if model.data_kind == "continuous" or draws == 1:
        result = negative_log_likelihood(model, x, levels=LEVELS, n_dequantizations=draws)
        return result["bits_per_dim"]
    torch.manual_seed(0)
    terms = torch.stack([per_example_log_prob(model, x) for _ in range(draws)])
    log_p = torch.logsumexp(terms, 0) - math.log(draws)
    return float(-log_p.mean()) / (x[0].numel() * math.log(2))


def run(seed: int, args: argparse.Namespace, hparams: dict) -> dict:
    """Train one model with one seed on the train split; val and test bits/dim."""
    train = genzoo.load_dataset("digits", "train")
    val = genzoo.load_dataset("digits", "val")
    test = genzoo.load_dataset("digits", "test")
    torch.manual_seed(seed)
    if hparams.get("dequantization") == "variational":  # the model takes the raw levels
        transform, seen, hparams = None, train, {"levels": LEVELS, **hparams}
    else:
        transform = lambda b, g: dequantize(b, LEVELS, g)  # noqa: E731
        seen = dequantize(train, LEVELS, torch.Generator().manual_seed(seed))
    model = genzoo.create(args.model, data=seen, **hparams)
    curve = []

    def evaluate(m):
        row = {"val": bits(m, val), "test": bits(m, test)}
        curve.append(row)
        return row

    trainer = genzoo.Trainer(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        ema=args.ema,
        seed=seed,
        clip_grad=args.clip_grad,
        progress=False,
        transform=transform,
        evaluate=evaluate if args.eval_every else None,
        evaluate_every=args.eval_every,
    )
    tic = time.perf_counter()
    trainer.fit(model, train)
    seconds = time.perf_counter() - tic
    model.eval()
    steps = [e["step"] for e in trainer.evaluations]
    out = {
        "seed": seed,
        "val": bits(model, val),
        "test": bits(model, test),
        "train_s": seconds,
        "params": sum(p.numel() for p in model.parameters()),
    }
    if args.draws > 1:
        out["test_k"] = bits(model, test, args.draws)
    if curve:
        pairs = zip(steps, curve, strict=True)
        out["curve"] = [(s, round(c["val"], 4), round(c["test"], 4)) for s, c in pairs]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="glow")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--lr-schedule", default="constant")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--ema", type=float, default=None)
    p.add_argument("--clip-grad", type=float, default=None)
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--draws", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    hparams = _parse_set(args.set)
    print(json.dumps({"config": vars(args)}), flush=True)
    rows = []
    for seed in args.seeds:
        row = run(seed, args, hparams)
        rows.append(row)
        print(json.dumps(row), flush=True)
    tests = [r["test"] for r in rows]
    mean = statistics.fmean(tests)
    spread = statistics.stdev(tests) / math.sqrt(len(tests)) if len(tests) > 1 else 0.0
    summary = {"test_mean": mean, "test_se": spread, "test_min": min(tests),
               "test_max": max(tests), "val_mean": statistics.fmean(r["val"] for r in rows),
               "train_s_mean": statistics.fmean(r["train_s"] for r in rows)}  # fmt: skip
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
