"""Normalizing flows: RealNVP on two moons, with an exact density and the true entropy.

A flow's ``log_prob`` is exact (change of variables), and the 2-D toys know their true
density, so the test NLL can be set against the data's entropy: the gap is the KL divergence
from the data to the model. The script trains RealNVP for a few steps, prints the test NLL, the
entropy and the gap, and writes samples and the saved model into the output folder.

    python examples/flows.py [--steps 150] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import genzoo
from genzoo.data import true_entropy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training steps")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-flows-"))
    out.mkdir(parents=True, exist_ok=True)

    x_train = genzoo.load_dataset("moons", split="train", n=5_000, seed=0)
    x_test = genzoo.load_dataset("moons", split="test", n=2_000, seed=0)
    model = genzoo.create("realnvp", data=x_train, n_layers=4, hidden=64)
    trainer = genzoo.Trainer(steps=args.steps, batch_size=256, lr=3e-3, out=out / "run", force=True)
    trainer.fit(model, x_train)

    with torch.no_grad():
        nll = -model.log_prob(x_test).mean().item()
    entropy = true_entropy("moons")
    print(
        f"realnvp density={model.density}: test NLL {nll:.3f} nats, "
        f"true entropy {entropy:.3f}, gap (KL) {nll - entropy:.3f}"
    )
    samples = model.sample(1_000, generator=torch.Generator().manual_seed(0))
    np.save(out / "samples.npy", samples.numpy())
    print(f"wrote {out / 'samples.npy'}; the run folder {out / 'run'} holds the model")


if __name__ == "__main__":
    main()
