"""Sample from a saved run: a run folder holds everything needed to rebuild the model.

Give ``RUN`` (a folder written by ``genzoo train`` or ``genzoo.Trainer(out=...)``); without it
the script first trains a small RealNVP into ``OUT/run``. It lists the run's files, rebuilds the
model with ``genzoo.load`` (``config.json`` + ``model.safetensors``, no pickle), draws seeded
samples (the same seed gives the same samples) and writes them to ``OUT/samples.npy``. The
command line does the same: ``genzoo sample RUN -n 1000 --out samples.npy --plot samples.png``.

    python examples/sample_from_run.py [RUN] [-n 1000] [--seed 0] [--steps 100] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import genzoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a run folder (default: train one)")
    parser.add_argument("-n", type=int, default=1_000, help="number of samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples")
    parser.add_argument("--steps", type=int, default=100, help="training steps of the demo run")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-sample-"))
    out.mkdir(parents=True, exist_ok=True)

    run = args.run
    if run is None:
        run = out / "run"
        x = genzoo.load_dataset("moons", split="train", n=5_000)
        model = genzoo.create("realnvp", data=x, n_layers=4, hidden=32)
        genzoo.Trainer(steps=args.steps, batch_size=256, lr=3e-3, out=run, force=True).fit(
            model, x, run_info={"dataset": "moons"}
        )
    files = sorted(path.name for path in run.glob("[!.]*"))
    print(f"{run}: {', '.join(files)}")

    model = genzoo.load(run)  # any registered model, rebuilt from its config and weights
    draws = [
        model.sample(args.n, generator=torch.Generator().manual_seed(args.seed)) for _ in range(2)
    ]
    print(
        f"{model.name} ({model.family}): {tuple(draws[0].shape)} samples; "
        f"same seed, same samples: {torch.equal(*draws)}"
    )
    np.save(out / "samples.npy", draws[0].numpy())
    print(f"wrote {out / 'samples.npy'}")


if __name__ == "__main__":
    main()
