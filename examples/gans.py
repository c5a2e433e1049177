"""GANs: a GAN with an R1 penalty on eight Gaussians, measured by its samples (it has no density).

A GAN defines no density: ``log_prob`` raises ``genzoo.DensityUnavailable`` and says what to use
instead. The script trains a small GAN (two players, one Adam optimiser each), prints the modes
its samples reach and the share of samples near a mode, and writes the samples and the saved
model into the output folder. More steps (``--steps 1000``) cover all eight modes.

    python examples/gans.py [--steps 200] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import genzoo
from genzoo.metrics import mode_centres, mode_coverage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="generator steps")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-gans-"))
    out.mkdir(parents=True, exist_ok=True)

    x = genzoo.load_dataset("8gaussians", split="train", n=4_000)
    gan = genzoo.create("gan", data=x, hidden=64, penalty="r1", penalty_weight=1.0)
    genzoo.Trainer(steps=args.steps, batch_size=256, lr=1e-3, progress=False).fit(gan, x)
    print(f"gan players={gan.players} density={gan.density}")

    try:
        gan.log_prob(x[:5])
    except genzoo.DensityUnavailable as err:
        print(f"log_prob refused: {err}")

    samples = gan.sample(2_500, generator=torch.Generator().manual_seed(0))
    coverage = mode_coverage(samples, *mode_centres("8gaussians"))
    print(
        f"modes covered {coverage['modes_covered']}/{coverage['n_modes']}, "
        f"high-quality share {coverage['high_quality_share']:.2f}"
    )
    np.save(out / "samples.npy", samples.numpy())
    gan.save(out / "gan")
    print(f"wrote {out / 'samples.npy'} and {out / 'gan'}")


if __name__ == "__main__":
    main()
