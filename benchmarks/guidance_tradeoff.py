"""Classifier-free guidance: guidance scale against class accuracy and sample diversity.

Trains a class-conditional ``ddpm`` (Ho & Salimans 2022: the class dropped to the null class
with probability ``p_uncond`` in training) through ``genzoo.workflow.train(...,
condition="label")`` on 2-D ``8gaussians`` with the component each point came from, then
samples every class with guidance scales ``w`` (``model.sample(n, c=k, guidance=w)``, the
same noise for every ``w``; ``eps(null) + w (eps(c) - eps(null))``: 0 the unconditional
model, 1 the conditional one, > 1 guided; Ho & Salimans' ``w`` is this ``w - 1``) and
measures, per ``w`` (``genzoo.figures.score.guidance_sweep``):

- ``accuracy``: the share of class-k samples within ``3 std`` of mode k's centre (any other
  place counts as wrong; chance, a sample near a random mode, would be at most 1/8);
- ``nearest``: the share whose nearest centre is mode k, however far;
- ``within_2std``: the share within ``2 std`` of mode k's centre (a true mode holds 86%);
- ``diversity``: the mean distance between two samples of one class, averaged over the classes
  (``within_class_diversity``; the data's own is the reference);
- ``nfe``: network evaluations per sample (``w`` other than 0 and 1 costs two per step).

``--digits`` also trains ``ddpm`` (U-Net) on dequantised digits given the digit and scores its
samples with genzoo's digits classifier (chance 0.1); slow on a CPU. Writes
``guidance_8gaussians.png`` (and ``guidance_digits.png``), ``rows.json`` and ``table.md``
under ``--out``.

    python benchmarks/guidance_tradeoff.py --out runs/guidance              # ~1 min, 1 thread
    python benchmarks/guidance_tradeoff.py --out runs/guidance --digits     # + digits
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import genzoo
from genzoo.figures.score import guidance_sweep, plot_guidance_tradeoff, within_class_diversity
from genzoo.metrics.modes import mode_centres
from genzoo.workflow import train

#: Guidance scales: 0 unconditional, 1 conditional, then Ho & Salimans' 0.25 .. 8 (plus 1).
WEIGHTS = (0.0, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 9.0)


def toy_rows(args: argparse.Namespace, out: Path) -> list[dict]:
    centres, std = mode_centres("8gaussians")  # in the order of the dataset's labels
    centres = torch.as_tensor(centres, dtype=torch.get_default_dtype())
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    hparams = {
        "hidden": args.hidden,
        "depth": 3,
        "ema": 0.99,
        "p_uncond": args.p_uncond,
        "sampling_steps": args.sampling_steps,
    }
    model, _ = train(
        "ddpm",
        "8gaussians",
        hparams=hparams,
        n=args.n_train,
        condition="label",
        steps=args.steps,
        batch_size=256,
        lr=2e-3,
        seed=args.seed,
        progress=False,
    )
    seconds = time.perf_counter() - start

    def distances(x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x.to(centres.dtype), centres)

    def classify(x: torch.Tensor) -> torch.Tensor:  # the nearest mode if within 3 std, else -1
        d = distances(x)
        nearest = d.argmin(1)
        return torch.where(d.min(1).values <= 3 * std, nearest, torch.full_like(nearest, -1))

    def within(n_std: float):
        def share(x: torch.Tensor, labels: torch.Tensor) -> float:
            d = distances(x)
            own = d[torch.arange(len(x)), labels]
            return float(((d.argmin(1) == labels) & (own <= n_std * std)).double().mean())

        return share

    def nearest(x: torch.Tensor, labels: torch.Tensor) -> float:
        return float((distances(x).argmin(1) == labels).double().mean())

    extra = {"nearest": nearest, "within_2std": within(2.0)}
    rows = guidance_sweep(model, args.weights, classify, args.n_per_class, seed=1, extra=extra)
    x, c = genzoo.load_dataset("8gaussians", "test", n=8 * args.n_per_class, condition=True)
    data = within_class_diversity(x, c)
    plot_guidance_tradeoff(
        rows,
        out / "guidance_8gaussians.png",
        data_diversity=data,
        title=f"ddpm on 8gaussians given the component ({args.steps} steps)",
        chance=1 / 8,
    )
    for row in rows:
        row.update(dataset="8gaussians", data_diversity=data, train_seconds=seconds)
    return rows


def digits_rows(args: argparse.Namespace, out: Path) -> list[dict]:
    from genzoo.metrics.frechet import digits_classifier

    classifier = digits_classifier()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    hparams = {
        "channels": args.digits_channels,
        "ema": 0.995,
        "p_uncond": args.p_uncond,
        "sampling_steps": args.sampling_steps,
    }
    model, _ = train(
        "ddpm",
        "digits",
        hparams=hparams,
        condition="label",
        steps=args.digits_steps,
        batch_size=128,
        lr=2e-3,
        seed=args.seed,
        progress=False,
    )
    seconds = time.perf_counter() - start

    def classify(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return classifier(x.clamp(0, 1).reshape(len(x), 64).float().cpu()).argmax(1)

    rows = guidance_sweep(
        model, args.weights, classify, n_per_class=args.digits_n_per_class, seed=1
    )
    x, c = genzoo.load_dataset("digits", "test", condition=True)
    data = within_class_diversity((x.double() + 0.5) / 17, c)  # on the [0, 1] scale
    plot_guidance_tradeoff(
        rows,
        out / "guidance_digits.png",
        data_diversity=data,
        title=f"ddpm on digits given the digit ({args.digits_steps} steps)",
        chance=0.1,
    )
    for row in rows:
        row.update(dataset="digits", data_diversity=data, train_seconds=seconds)
    return rows


def table(rows: list[dict]) -> str:
    keys = ["guidance", "accuracy", "nearest", "within_2std", "diversity", "nfe"]
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        part = [r for r in rows if r["dataset"] == dataset]
        shown = [k for k in keys if k in part[0]]
        lines += [
            f"\n### {dataset} (data's diversity {part[0]['data_diversity']:.3f}, "
            f"trained in {part[0]['train_seconds']:.0f} s)\n",
            "| " + " | ".join(shown) + " |",
            "|" + "---|" * len(shown),
        ]
        lines += ["| " + " | ".join(f"{r[k]:.3g}" for k in shown) + " |" for r in part]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/guidance")
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    parser.add_argument("--steps", type=int, default=2000, help="training steps (8gaussians)")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--p-uncond", type=float, default=0.1)
    parser.add_argument("--sampling-steps", type=int, default=200, help="ancestral steps")
    parser.add_argument("--n-per-class", type=int, default=250)
    parser.add_argument("--digits", action="store_true", help="also digits (slow on a CPU)")
    parser.add_argument("--digits-steps", type=int, default=1500)
    parser.add_argument("--digits-channels", type=int, default=16)
    parser.add_argument("--digits-n-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = toy_rows(args, out)
    if args.digits:
        rows += digits_rows(args, out)
    (out / "rows.json").write_text(json.dumps(rows, indent=1) + "\n")
    text = table(rows)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
