"""Sample quality of the score family against network evaluations per sample (issue 8).

Trains ``ncsn``, ``ddpm`` and ``score-sde`` (VP, predictor-corrector) on 8gaussians with a
small budget, then varies each sampler's step count (``n_steps_each`` for ncsn,
``sampling_steps`` otherwise) and measures MMD to the test split (``genzoo.metrics.mmd_rbf``)
and mode coverage (``genzoo.metrics.mode_coverage``). Writes ``table.md``, ``rows.json`` and
``quality_vs_steps.png`` under ``--out``.

    python benchmarks/score_quality_vs_steps.py --out runs/score_quality
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import genzoo
from genzoo.figures.score import plot_quality_vs_steps, quality_vs_steps
from genzoo.metrics import mmd_rbf
from genzoo.metrics.modes import mode_centres, mode_coverage

STEPS = {
    "ncsn": ("n_steps_each", (1, 3, 10, 30)),
    "ddpm": ("sampling_steps", (10, 30, 100, 300, 1000)),
    "score-sde": ("sampling_steps", (10, 30, 100, 300)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/score_quality")
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--n", type=int, default=2000, help="samples per measurement")
    parser.add_argument("--models", nargs="+", default=list(STEPS))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x = genzoo.load_dataset("8gaussians", split="train", n=20_000, seed=0)
    test = genzoo.load_dataset("8gaussians", split="test", n=args.n, seed=0)
    centres, std = mode_centres("8gaussians")
    curves, table = {}, []
    for name in args.models:
        torch.manual_seed(0)
        model = genzoo.create(name, data=x, hidden=64, depth=3, ema=0.99)
        genzoo.Trainer(steps=args.train_steps, batch_size=256, lr=2e-3, progress=False).fit(
            model, x
        )
        coverage: list[dict] = []

        def metric(samples: torch.Tensor, reference: torch.Tensor, coverage=coverage) -> float:
            coverage.append(mode_coverage(samples, centres, std))
            return mmd_rbf(samples, reference)

        attribute, steps = STEPS[name]
        rows = quality_vs_steps(model, test, steps, metric, attribute=attribute, n=args.n)
        for row, cov in zip(rows, coverage, strict=True):
            row.update(modes=cov["modes_covered"], hq=cov["high_quality_share"])
            table.append({"model": name, **row})
            print(json.dumps(table[-1]), flush=True)
        curves[name] = rows
    plot_quality_vs_steps(curves, out / "quality_vs_steps.png")
    lines = ["| model | steps | NFE/sample | MMD | modes | high-quality share |", "|---" * 6 + "|"]
    for r in table:
        lines.append(
            f"| {r['model']} | {r['steps']} | {r['nfe']} | {r['metric']:.4f} | "
            f"{r['modes']}/8 | {r['hq']:.3f} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "rows.json").write_text(json.dumps(table, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
