"""Compare families with a tiny benchmark: one model per family on the same data, same metrics.

Each model trains for a few steps on eight Gaussians and is scored on held-out points: the
test NLL where the model has a density, labelled for what it is (exact, a bound, an estimate;
none for a GAN), and the energy distance of 1,000 samples to the test points (lower is better),
which every model gets. The table goes to the screen and to ``comparison.csv`` in the output
folder. This is a toy: the real comparison, with budgets per model, seeds, rankings, ratings and
a report, is ``genzoo bench --quick`` (or ``genzoo bench --quick --models gmm realnvp vae gan
ddpm --datasets 8gaussians``).

    python examples/compare_families.py [--steps 100] [--dataset 8gaussians] [--out DIR]
"""

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

import genzoo
from genzoo.metrics import density_label, energy_distance

#: One model per family, with settings small enough for a few seconds each.
MODELS = {
    "gmm": {"n_components": 8},
    "realnvp": {"n_layers": 4, "hidden": 64},
    "vae": {"latent_dim": 2, "hidden": 64, "kl_warmup_steps": 50, "iwae_samples": 20},
    "gan": {"hidden": 64, "penalty": "r1", "penalty_weight": 1.0},
    "ddpm": {"n_timesteps": 100, "sampling_steps": 50, "hidden": 64, "depth": 2, "ema": 0.99},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per model")
    parser.add_argument("--dataset", default="8gaussians", help="a 2-D toy dataset")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-compare-"))
    out.mkdir(parents=True, exist_ok=True)

    x_train = genzoo.load_dataset(args.dataset, split="train", n=4_000)
    x_test = genzoo.load_dataset(args.dataset, split="test", n=1_000)
    rows = []
    for name, hparams in MODELS.items():
        torch.manual_seed(0)
        model = genzoo.create(name, data=x_train, **hparams)
        start = time.perf_counter()
        genzoo.Trainer(steps=args.steps, batch_size=256, lr=2e-3, progress=False).fit(
            model, x_train
        )
        seconds = time.perf_counter() - start
        with torch.no_grad():
            nll = -model.log_prob(x_test).mean().item() if model.density != "none" else None
            samples = model.sample(1_000, generator=torch.Generator().manual_seed(0))
        rows.append(
            {
                "model": name,
                "family": model.family,
                "log_prob is": density_label(model),
                "test NLL (nats)": "" if nll is None else f"{nll:.3f}",
                "energy distance": f"{energy_distance(samples, x_test):.4f}",
                "train seconds": f"{seconds:.1f}",
            }
        )

    widths = {key: max(len(key), *(len(row[key]) for row in rows)) for key in rows[0]}
    for row in [dict(zip(widths, widths, strict=True)), *rows]:
        print("  ".join(row[key].ljust(width) for key, width in widths.items()).rstrip())
    with open(out / "comparison.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(widths))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out / 'comparison.csv'}")


if __name__ == "__main__":
    main()
