"""Sample quality of the score family against network evaluations per sample (issue 8).

Trains ``ncsn``, ``ddpm`` and ``score-sde`` (VP, predictor-corrector) once each on 8gaussians
with a small budget, then samples each with several step counts through
``model.sample(n, generator, steps=k)`` (Langevin steps per level for ncsn, ancestral or
predictor steps otherwise; no retraining), and the VP models also with the few-step samplers
``sampler="ddim"`` (eta = 0) and ``"dpm-solver"`` (order 3) at 10, 20, 50, 100 and 1000
network evaluations and measures MMD to the test split
(``genzoo.metrics.mmd_rbf``) and mode coverage (``genzoo.metrics.mode_coverage``). Then (unless
``--no-digits``) trains ``ddpm`` on dequantised digits and measures the Fréchet distance in
genzoo's digits-classifier features (``genzoo.metrics.frechet``; NOT FID) against the 1,000
training digits, and Ho et al.'s variational bound (``ddpm.elbo``) on test digits. Writes
``quality_vs_steps.csv``, ``quality_vs_steps.png``, ``hq_share_vs_steps.png``,
``digits_quality_vs_steps.png``, ``table.md`` and ``rows.json`` under ``--out``.

    python benchmarks/score_quality_vs_steps.py --out runs/score_quality          # ~5 min
    python benchmarks/score_quality_vs_steps.py --out runs/score_quality --full   # bigger
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import torch

import genzoo
from genzoo.figures.score import plot_quality_vs_steps, quality_vs_steps
from genzoo.metrics import mmd_rbf
from genzoo.metrics.modes import mode_centres, mode_coverage

# Step counts per model (None: the configured default: ncsn 100 per level, ddpm 1000,
# score-sde 500 predictor steps).
STEPS = {
    "ncsn": (1, 3, 10, 30, None),
    "ddpm": (10, 30, 100, 300, None),
    "score-sde": (10, 30, 100, 300, None),
}
DIGITS_STEPS = (10, 30, 100, 300, None)
#: The few-step samplers of the VP models (issue 19), at these network evaluations per sample.
FAST_SAMPLERS = ("ddim", "dpm-solver")
FAST_STEPS = (10, 20, 50, 100, 1000)
FIELDS = (
    "dataset", "model", "sampler", "steps", "nfe", "metric_name", "metric", "modes", "hq",
    "seconds",
)  # fmt: skip


def runs(model, steps: tuple[int | None, ...]) -> list[tuple[str | None, int | None]]:
    """``(sampler, steps)`` pairs: the configured sampler at ``steps``, then (VP models) DDIM
    and DPM-Solver at ``FAST_STEPS``."""
    pairs: list[tuple[str | None, int | None]] = [(None, k) for k in steps]
    for sampler in FAST_SAMPLERS:
        if sampler in getattr(model, "samplers", ()):
            limit = getattr(model, "n_timesteps", None) if sampler == "ddim" else None
            pairs += [(sampler, k) for k in FAST_STEPS if limit is None or k <= limit]
    return pairs


def toy_rows(args: argparse.Namespace) -> list[dict]:
    x = genzoo.load_dataset("8gaussians", split="train", n=20_000, seed=0)
    test = genzoo.load_dataset("8gaussians", split="test", n=args.n, seed=0)
    centres, std = mode_centres("8gaussians")
    rows = []
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

        for sampler, k in runs(model, STEPS[name]):
            start = time.perf_counter()
            (row,) = quality_vs_steps(model, test, [k], metric, n=args.n, sampler=sampler)
            cov = coverage[-1]
            rows.append(
                {
                    "dataset": "8gaussians",
                    "model": name,
                    "sampler": sampler or model.samplers[0],
                    "steps": "default" if k is None else k,
                    "nfe": row["nfe"],
                    "metric_name": "MMD",
                    "metric": row["metric"],
                    "modes": cov["modes_covered"],
                    "hq": cov["high_quality_share"],
                    "seconds": time.perf_counter() - start,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def digits_rows(args: argparse.Namespace) -> list[dict]:
    from genzoo.data import dequantize
    from genzoo.metrics.frechet import digits_to_unit, frechet_digits_distance
    from genzoo.workflow import train

    reference = digits_to_unit(genzoo.load_dataset("digits", split="train"))
    model, _ = train(
        "ddpm",
        "digits",
        hparams={"channels": args.digits_channels, "ema": 0.995},
        steps=args.digits_train_steps,
        batch_size=128,
        lr=2e-3,
        progress=False,
    )
    rows = []
    for sampler, k in runs(model, DIGITS_STEPS):
        start = time.perf_counter()
        (row,) = quality_vs_steps(
            model,
            reference,
            [k],
            lambda s, r: frechet_digits_distance(s.clamp(0, 1), r),
            n=args.digits_n,
            sampler=sampler,
        )
        rows.append(
            {
                "dataset": "digits",
                "model": "ddpm",
                "sampler": sampler or model.samplers[0],
                "steps": "default" if k is None else k,
                "nfe": row["nfe"],
                "metric_name": "Frechet (digits features)",
                "metric": row["metric"],
                "modes": "",
                "hq": "",
                "seconds": time.perf_counter() - start,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    # Ho et al.'s variational bound (eq. 5) on dequantised test digits; minus D log 17 it
    # bounds the log probability of the discrete grey levels (Theis et al. 2016).
    start = time.perf_counter()
    levels = genzoo.load_dataset("digits", split="test")[: args.digits_elbo_n]
    x = dequantize(levels, 17, torch.Generator().manual_seed(0))
    bound = model.elbo(x, torch.Generator().manual_seed(1))
    discrete = bound - 64 * math.log(17)
    rows.append(
        {
            "dataset": "digits",
            "model": "ddpm",
            "sampler": "",
            "steps": "all",
            "nfe": model.last_nfe,
            "metric_name": "ELBO bits/dim (discrete levels, test)",
            "metric": float(-discrete.mean()) / (64 * math.log(2)),
            "modes": "",
            "hq": "",
            "seconds": time.perf_counter() - start,
        }
    )
    print(json.dumps(rows[-1]), flush=True)
    return rows


def _by_sampler(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped as one curve per model and sampler, ordered by network evaluations."""
    curves: dict[str, list[dict]] = {}
    for r in rows:
        curves.setdefault(f"{r['model']} {r['sampler']}", []).append(r)
    return {k: sorted(v, key=lambda r: r["nfe"]) for k, v in curves.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/score_quality")
    parser.add_argument("--full", action="store_true", help="longer training, more samples")
    parser.add_argument("--train-steps", type=int, default=None, help="default 800 (full 3000)")
    parser.add_argument("--n", type=int, default=None, help="samples per point (1000; full 4000)")
    parser.add_argument("--models", nargs="+", default=list(STEPS))
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--digits-train-steps", type=int, default=None, help="800 (full 4000)")
    parser.add_argument("--digits-n", type=int, default=None, help="500 (full 1000)")
    parser.add_argument("--digits-channels", type=int, default=None, help="16 (full 32)")
    parser.add_argument("--digits-elbo-n", type=int, default=None, help="100 (full 447)")
    args = parser.parse_args()
    defaults = {
        "train_steps": (800, 3000),
        "n": (1000, 4000),
        "digits_train_steps": (800, 4000),
        "digits_n": (500, 1000),
        "digits_channels": (16, 32),
        "digits_elbo_n": (100, 447),
    }
    for key, (quick, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, full if args.full else quick)
    torch.set_num_threads(1 if not args.full else torch.get_num_threads())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows = toy_rows(args)
    curves = _by_sampler(rows)
    plot_quality_vs_steps(curves, out / "quality_vs_steps.png", metric_name="MMD (8gaussians)")
    share = {m: [{**r, "metric": r["hq"]} for r in rs] for m, rs in curves.items()}
    plot_quality_vs_steps(share, out / "hq_share_vs_steps.png", "share within 3 std of a mode")
    if not args.no_digits:
        digits = digits_rows(args)
        curve = [r for r in digits if r["steps"] != "all"]
        plot_quality_vs_steps(
            _by_sampler(curve), out / "digits_quality_vs_steps.png", "Fréchet (digits features)"
        )
        rows += digits

    with open(out / "quality_vs_steps.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| data | model | sampler | steps | NFE/sample | metric | value | modes | HQ share |",
        "|---" * 9 + "|",
    ]
    for r in rows:
        modes = f"{r['modes']}/8" if r["modes"] != "" else ""
        hq = f"{r['hq']:.3f}" if r["hq"] != "" else ""
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['sampler']} | {r['steps']} | {r['nfe']} | "
            f"{r['metric_name']} | "
            f"{r['metric']:.4f} | {modes} | {hq} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
