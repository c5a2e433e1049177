"""Fit your own data: a .npy, .npz or .csv file of numbers, one example per row.

Give ``--data FILE`` (without it the script writes a small demo CSV: three columns, two
clusters). genzoo reads the file by path, describes it (``genzoo.data.dataset_info``: kind,
shape, whether its values are integer levels), splits it 80/10/10 with a seed, and any model
that accepts it trains on it. The script trains ``--model`` (default ``realnvp``), prints the
held-out NLL and writes the run folder and new rows as CSV into the output folder. The command
line does the same: ``genzoo train realnvp --data FILE``, then ``genzoo eval RUN``.

    python examples/fit_your_data.py [--data FILE] [--model realnvp] [--steps 100] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import genzoo
from genzoo.data import dataset_info
from genzoo.registry import model_class


def demo_csv(path: Path) -> Path:
    """Two Gaussian clusters in 3-D, 2,000 rows with a header line."""
    rng = np.random.default_rng(0)
    centres = np.array([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0]])
    rows = centres[rng.integers(0, 2, 2_000)] + 0.5 * rng.standard_normal((2_000, 3))
    np.savetxt(path, rows, delimiter=",", header="a,b,c", comments="", fmt="%.5f")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="your .npy, .npz or .csv file")
    parser.add_argument("--model", default="realnvp", help="a name from genzoo.list_models()")
    parser.add_argument("--steps", type=int, default=100, help="training steps")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-your-data-"))
    out.mkdir(parents=True, exist_ok=True)
    path = args.data or demo_csv(out / "demo.csv")

    info = dataset_info(path)
    print(f"{path.name}: kind={info.kind} shape={info.shape} levels={info.levels}")
    if not model_class(args.model).accepts(info):
        raise SystemExit(f"{args.model} does not accept {info.kind} data; pick another model")
    x_train = genzoo.load_dataset(path, split="train")
    x_test = genzoo.load_dataset(path, split="test")

    model = genzoo.create(args.model, data=x_train)
    # force: a second run of this script replaces the run folder it wrote before
    trainer = genzoo.Trainer(steps=args.steps, batch_size=256, lr=3e-3, out=out / "run", force=True)
    trainer.fit(model, x_train, run_info={"dataset": str(path)})  # genzoo eval reads the dataset
    if model.density in ("exact", "bound", "estimate"):
        with torch.no_grad():
            nll = -model.log_prob(x_test).mean().item()
        print(
            f"{args.model}: held-out NLL {nll:.3f} nats per row ({model.density}), "
            f"{len(x_test)} test rows"
        )
    rows = model.sample(500, generator=torch.Generator().manual_seed(0)).reshape(500, -1)
    np.savetxt(out / "samples.csv", rows.numpy(), delimiter=",", fmt="%.5f")
    print(f"wrote {out / 'samples.csv'} and the run folder {out / 'run'}")


if __name__ == "__main__":
    main()
