"""genzoo's neural spline flow against zuko's and normflows' with the same architecture.

Architecture (all three): NSF-AR, ``--transforms`` autoregressive rational-quadratic spline
layers with linear tails (``--bins`` bins), the order reversed between layers, MADE
conditioners with two hidden layers of ``--hidden`` units (normflows: its residual MADE with
one block of ``--hidden`` units, the closest it offers). Data are standardised with the
training split's statistics (genzoo does it inside the model; for the peers it is done
outside and its log-det added to their NLL), so the NLLs are all in the data's units.

Measures per library and dataset: training steps/second, test NLL (nats), and the time to
sample and to score 100k points. zuko and normflows are not dependencies: install them
in the benchmark environment (``pip install zuko normflows``); absent ones are skipped.

    python benchmarks/flows_vs_peers.py --steps 2000 --datasets moons checkerboard
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

import genzoo


def _genzoo(x: torch.Tensor, args):
    model = genzoo.create(
        "nsf", data=x, kind="autoregressive", n_layers=args.transforms, hidden=args.hidden,
        bins=args.bins, tail_bound=args.tail_bound,
    )  # fmt: skip
    return model, model.log_prob, lambda n: model.sample(n)


def _zuko(x: torch.Tensor, args):
    import zuko

    flow = zuko.flows.NSF(
        2, transforms=args.transforms, bins=args.bins,
        hidden_features=(args.hidden, args.hidden),
    )  # fmt: skip
    return flow, lambda v: flow().log_prob(v), lambda n: flow().sample((n,))


def _normflows(x: torch.Tensor, args):
    import normflows as nf

    layers = []
    for i in range(args.transforms):
        if i:
            layers.append(nf.flows.Permute(2, mode="swap"))
        layers.append(
            nf.flows.AutoregressiveRationalQuadraticSpline(
                2, 1, args.hidden, num_bins=args.bins, tail_bound=args.tail_bound
            )
        )
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), layers)
    return flow, flow.log_prob, lambda n: flow.sample(n)[0]


LIBRARIES = {"genzoo": _genzoo, "zuko": _zuko, "normflows": _normflows}


def _timed(fn) -> tuple[float, object]:
    tic = time.perf_counter()
    out = fn()
    return time.perf_counter() - tic, out


def run(library: str, dataset: str, args) -> dict:
    """Train one library's flow on one dataset and measure it."""
    torch.manual_seed(args.seed)
    x = genzoo.load_dataset(dataset, "train", n=args.n_train, seed=args.seed)
    x_test = genzoo.load_dataset(dataset, "test", n=args.n_test, seed=args.seed)
    shift = 0.0
    if library != "genzoo":  # the peers see standardised data; the log-det goes in the NLL
        mean, std = x.mean(0), x.std(0)
        x, x_test = (x - mean) / std, (x_test - mean) / std
        shift = float(std.log().sum())
    model, log_prob, sample = LIBRARIES[library](x, args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)

    def train() -> None:
        for _ in range(args.steps):
            batch = x[torch.randint(len(x), (args.batch_size,), generator=gen)]
            loss = -log_prob(batch).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    train_time, _ = _timed(train)
    with torch.no_grad():
        nll = -float(log_prob(x_test).mean()) + shift
        lp_time, _ = _timed(lambda: log_prob(torch.randn(args.n_throughput, 2)))
        sample_time, _ = _timed(lambda: sample(args.n_throughput))
    return {
        "library": library,
        "dataset": dataset,
        "steps_per_s": args.steps / train_time,
        "test_nll": nll,
        "true_entropy": genzoo.data.true_entropy(dataset),
        "log_prob_100k_s": lp_time,
        "sample_100k_s": sample_time,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES))
    parser.add_argument("--datasets", nargs="+", default=["moons", "checkerboard"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--transforms", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--tail-bound", type=float, default=5.0)
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-throughput", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the rows as JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for dataset in args.datasets:
        for library in args.libraries:
            try:
                row = run(library, dataset, args)
            except ImportError as err:
                print(f"skipping {library}: {err} (pip install {library})")
                continue
            rows.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in row.items()}))  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    assert all(math.isfinite(r["test_nll"]) for r in rows)


if __name__ == "__main__":
    main()
