"""Gaussian mixtures: EM with the number of components chosen by BIC, then saved and reloaded.

``gmm`` is fitted by EM (no gradient steps: the trainer calls its ``fit_step``), and its
``log_prob`` is exact. With ``n_components="auto"`` it picks K by BIC over ``k_range``, and the
chosen K is written into the saved config. The script fits eight Gaussians, prints the chosen K,
the BIC and the test NLL beside the true entropy, saves the model, loads it back with
``genzoo.load`` and checks that it gives the same densities.

    python examples/mixtures.py [--steps 100] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import torch

import genzoo
from genzoo.data import true_entropy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="most EM iterations")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-mixtures-"))
    out.mkdir(parents=True, exist_ok=True)

    x_train = genzoo.load_dataset("8gaussians", split="train", n=4_000)
    x_test = genzoo.load_dataset("8gaussians", split="test", n=2_000)
    gmm = genzoo.create("gmm", data=x_train, n_components="auto", k_range=[2, 12])
    genzoo.Trainer(steps=args.steps, progress=False).fit(gmm, x_train)

    with torch.no_grad():
        nll = -gmm.log_prob(x_test).mean().item()
    print(
        f"gmm chose K={gmm.config['n_components']} by BIC ({gmm.bic(x_train):.1f}); "
        f"test NLL {nll:.3f} nats ({gmm.density}), true entropy "
        f"{true_entropy('8gaussians'):.3f}"
    )

    gmm.save(out / "gmm")
    again = genzoo.load(out / "gmm")
    same = torch.allclose(again.log_prob(x_test), gmm.log_prob(x_test))
    print(f"wrote {out / 'gmm'}; reloaded model gives the same log_prob: {same}")


if __name__ == "__main__":
    main()
