"""Energy-based models: a Bernoulli RBM on binarised digits, its free energy and AIS log Z.

An RBM's density is known up to its normaliser Z: ``free_energy(x)`` is the unnormalised part
and ``estimate_log_z`` estimates log Z by annealed importance sampling (AIS, with a standard
error), so ``log_prob`` is an estimate (``model.density == "estimate"``). The script trains an
RBM by the classical contrastive-divergence loop (``fit_cd``; ``genzoo.Trainer`` applies the
same update), prints the AIS log Z and the test log-likelihood, and writes Gibbs samples and
the saved model into the output folder.

    python examples/energy.py [--epochs 10] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import genzoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="sweeps over the training data")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-energy-"))
    out.mkdir(parents=True, exist_ok=True)

    x_train = genzoo.load_dataset("digits-binary", split="train")
    x_test = genzoo.load_dataset("digits-binary", split="test")
    torch.manual_seed(0)
    rbm = genzoo.create("rbm", data=x_train, n_hidden=64, cd_k=1)
    rbm.fit_cd(x_train, epochs=args.epochs, batch_size=20, lr=0.05)

    log_z, stderr = rbm.estimate_log_z(n_betas=500, n_runs=32)
    with torch.no_grad():
        free_energy = rbm.free_energy(x_test).mean().item()
        log_likelihood = rbm.log_prob(x_test).mean().item()  # -free energy - log Z
    print(
        f"rbm density={rbm.density}: AIS log Z {log_z:.2f} +- {stderr:.2f}, "
        f"mean free energy {free_energy:.2f}, test log-likelihood {log_likelihood:.2f} nats"
    )

    samples = rbm.sample(16, generator=torch.Generator().manual_seed(0))
    np.save(out / "samples.npy", samples.numpy())
    rbm.save(out / "rbm")
    print(f"wrote {out / 'samples.npy'} and {out / 'rbm'}")


if __name__ == "__main__":
    main()
