"""Score models: a DDPM on eight Gaussians, sampled at several step counts without retraining.

A diffusion model trains one denoising network; how many network evaluations a sample costs is
chosen at sampling time: ``model.sample(n, steps=k)``, with ``model.sampling_cost(k)`` giving
the cost and ``model.last_nfe`` the evaluations the last call made. The script trains a small
DDPM, scores its samples at three step counts against held-out data (energy distance, lower is
better; mode coverage), and writes each set of samples into the output folder.

    python examples/score.py [--steps 400] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import genzoo
from genzoo.metrics import energy_distance, mode_centres, mode_coverage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-score-"))
    out.mkdir(parents=True, exist_ok=True)

    x_train = genzoo.load_dataset("8gaussians", split="train", n=5_000)
    x_test = genzoo.load_dataset("8gaussians", split="test", n=1_000)
    model = genzoo.create(
        "ddpm", data=x_train, n_timesteps=100, sampling_steps=100, hidden=64, ema=0.99
    )
    genzoo.Trainer(steps=args.steps, batch_size=256, lr=2e-3, progress=False).fit(model, x_train)

    for steps in (5, 20, 100):
        generator = torch.Generator().manual_seed(0)
        samples = model.sample(1_000, generator=generator, steps=steps)
        cost = model.sampling_cost(steps)["nfe_per_sample"]
        modes = mode_coverage(samples, *mode_centres("8gaussians"))["modes_covered"]
        print(
            f"ddpm steps={steps:3d} nfe={cost} (last_nfe {model.last_nfe}): energy distance "
            f"{energy_distance(samples, x_test):.4f}, modes {modes}/8"
        )
        np.save(out / f"samples_{steps}_steps.npy", samples.numpy())
    print(f"wrote {len(list(out.glob('samples_*.npy')))} sample files into {out}")


if __name__ == "__main__":
    main()
