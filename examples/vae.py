"""Variational autoencoders: a VAE on binarised digits, its bound, its estimate, its latent space.

A VAE is trained on the evidence lower bound (ELBO); its ``log_prob`` is the importance-weighted
IWAE-k estimate, so ``model.density`` says ``"estimate"`` and ``model.density_method`` names it.
The script trains a small VAE, prints the test ELBO (a bound) beside the IWAE estimate, and
writes a latent interpolation between two test digits and the saved model into the output
folder.

    python examples/vae.py [--steps 200] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import genzoo
from genzoo.models.vae import interpolate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-vae-"))
    out.mkdir(parents=True, exist_ok=True)

    x_train = genzoo.load_dataset("digits-binary", split="train")
    x_test = genzoo.load_dataset("digits-binary", split="test")
    model = genzoo.create(
        "vae", data=x_train, latent_dim=8, hidden=128, kl_warmup_steps=50, iwae_samples=50
    )
    genzoo.Trainer(steps=args.steps, batch_size=64, lr=3e-3, progress=False).fit(model, x_train)

    model.eval()
    with torch.no_grad():
        elbo = model.elbo(x_test).mean().item()
        estimate = model.log_prob(x_test).mean().item()
    print(
        f"vae density={model.density} ({model.density_method}): "
        f"test ELBO {elbo:.2f} <= log p(x) ~ {estimate:.2f} nats"
    )

    path = interpolate(model, x_test[:1], x_test[1:2], steps=8)  # decoded means along the line
    np.save(out / "interpolation.npy", path.numpy())
    model.save(out / "vae")
    print(f"wrote {out / 'interpolation.npy'} {tuple(path.shape)} and {out / 'vae'}")


if __name__ == "__main__":
    main()
