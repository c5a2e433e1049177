"""genzoo's flows against zuko's and normflows' with the same architecture, in one process.

``--flow`` picks the architecture (all three libraries build the same one):

- ``nsf-ar`` (default): NSF-AR, ``--transforms`` autoregressive rational-quadratic spline
  layers with linear tails (``--bins`` bins), the order reversed between layers, MADE
  conditioners with two hidden layers of ``--hidden`` units (normflows: its residual MADE with
  one block of ``--hidden`` units, the closest it offers);
- ``nsf-c``: NSF-C, ``--transforms`` spline coupling layers, masks alternating (zuko: its NSF
  with ``passes=2``; normflows: ``CoupledRationalQuadraticSpline``, a residual conditioner of
  one block); splines on ``[-5, 5]``, zuko's fixed bound (``--tail-bound`` for the others);
- ``realnvp``: ``--transforms`` affine couplings, MLP conditioners ``2 x --hidden``
  (zuko's ``RealNVP``; normflows' ``AffineCouplingBlock`` with a swap between blocks).

Data are standardised with the training split's statistics (genzoo does it inside the model;
for the peers it is done outside and its log-det added to their NLL), so the NLLs are all in
the data's units. Every library runs the same plain loop (batches drawn with replacement, Adam
with torch's defaults: a for-loop over the tensors on a CPU) unless ``--trainer`` trains genzoo
as its users do, through ``genzoo.Trainer`` (batches drawn with replacement, fused Adam); the
peers keep the plain loop their documentation shows (``--fused-peers`` gives them fused Adam).

Measures per library and dataset: training steps/second (wall clock, and per second of
process CPU time, the steadier one on a shared machine), test NLL (nats), and the time to
sample and to score ``--n-throughput`` points. ``--repeats`` runs every library that many times,
interleaved (library after library, seed after seed), and the summary gives the median speed,
the mean NLL and genzoo's speed over the fastest peer's. ``--compile`` runs genzoo's
``log_prob`` through ``torch.compile`` (with ``--trainer``: the Trainer's ``compile=True``;
opt-in; compilation happens in the untimed ``--warmup`` steps, whose time the Trainer rows
give as ``warmup_s``). zuko and normflows are not dependencies: install them in the benchmark
environment (``pip install zuko normflows``); absent ones are skipped.

    python benchmarks/flows_vs_peers.py --steps 2000 --datasets moons checkerboard
    python benchmarks/flows_vs_peers.py --flow realnvp --transforms 8 --batch-size 512 \\
        --datasets moons --repeats 5 --threads 1 [--trainer] [--compile]
    python benchmarks/flows_vs_peers.py --flow nsf-c --transforms 8 --batch-size 512 \\
        --datasets moons --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch

import genzoo
from genzoo.train.trainer import make_optimizer


def _genzoo(x: torch.Tensor, args):
    common = {"n_layers": args.transforms, "hidden": args.hidden}
    if args.flow == "realnvp":
        model = genzoo.create("realnvp", data=x, **common)
    else:
        kind = "autoregressive" if args.flow == "nsf-ar" else "coupling"
        model = genzoo.create(
            "nsf", data=x, kind=kind, bins=args.bins, tail_bound=args.tail_bound, **common
        )
    log_prob = model.log_prob
    if args.compile:  # opt-in: one compiled graph for the whole density (torch inductor)
        log_prob = torch.compile(model.log_prob, dynamic=False)
    return model, log_prob, lambda n: model.sample(n)


def _zuko(x: torch.Tensor, args):
    import zuko

    hidden = (args.hidden, args.hidden)
    if args.flow == "realnvp":
        flow = zuko.flows.RealNVP(2, transforms=args.transforms, hidden_features=hidden)
    else:  # zuko's NSF with passes=2 is the coupling NSF; its splines act on [-5, 5]
        passes = 2 if args.flow == "nsf-c" else None
        flow = zuko.flows.NSF(
            2, transforms=args.transforms, bins=args.bins, passes=passes, hidden_features=hidden
        )
    return flow, lambda v: flow().log_prob(v), lambda n: flow().sample((n,))


def _normflows(x: torch.Tensor, args):
    import normflows as nf

    layers = []
    for i in range(args.transforms):
        if args.flow == "realnvp":
            net = nf.nets.MLP([1, args.hidden, args.hidden, 2], init_zeros=True)
            layers += [nf.flows.AffineCouplingBlock(net), nf.flows.Permute(2, mode="swap")]
            continue
        if i:
            layers.append(nf.flows.Permute(2, mode="swap"))
        if args.flow == "nsf-c":  # its conditioner: a residual net of one block
            layers.append(
                nf.flows.CoupledRationalQuadraticSpline(
                    2, 1, args.hidden, num_bins=args.bins, tail_bound=args.tail_bound
                )
            )
        else:
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


def run(library: str, dataset: str, args, seed: int) -> dict:
    """Train one library's flow on one dataset (one seed) and measure it."""
    torch.manual_seed(seed)
    x = genzoo.load_dataset(dataset, "train", n=args.n_train, seed=args.seed)
    x_test = genzoo.load_dataset(dataset, "test", n=args.n_test, seed=args.seed)
    shift = 0.0
    if library != "genzoo":  # the peers see standardised data; the log-det goes in the NLL
        mean, std = x.mean(0), x.std(0)
        x, x_test = (x - mean) / std, (x_test - mean) / std
        shift = float(std.log().sum())
    if library == "genzoo" and args.trainer:
        return _run_trainer(x, x_test, dataset, args, seed)
    model, log_prob, sample = LIBRARIES[library](x, args)
    fused = {"fused": True} if args.fused_peers and library != "genzoo" else {}
    if library == "genzoo" and args.trainer_optimizer:
        opt = make_optimizer(model.parameters(), args.lr, model.optimizer_settings("model"))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, **fused)
    gen = torch.Generator().manual_seed(seed)

    def step() -> None:
        batch = x[torch.randint(len(x), (args.batch_size,), generator=gen)]
        loss = -log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(args.warmup):  # first calls (and compilation) are not timed
        step()

    def train() -> None:
        for _ in range(args.steps):
            step()

    cpu = time.process_time()
    train_time, _ = _timed(train)
    cpu = time.process_time() - cpu
    return _measured(library, dataset, args, seed, model, log_prob, sample, x_test,
                     (train_time, cpu), shift)  # fmt: skip


def _run_trainer(x: torch.Tensor, x_test: torch.Tensor, dataset: str, args, seed: int) -> dict:
    """genzoo as its users train it: ``genzoo.Trainer`` (its batches drawn with replacement,
    its optimiser: fused Adam; ``--compile``: its ``compile`` option), ``--warmup`` steps
    then ``--steps`` timed ones in one run, the clock read by an evaluation callback at the
    warm-up's end and at the last step (the Trainer keeps evaluation out of training time).
    ``warmup_s``: the untimed warm-up's wall time, compilation included."""
    model, log_prob, sample = _genzoo(x, argparse.Namespace(**{**vars(args), "compile": False}))
    marks: list[tuple[float, float]] = []

    def mark(_model) -> dict:
        marks.append((time.perf_counter(), time.process_time()))
        return {}

    start = time.perf_counter()
    genzoo.Trainer(steps=args.warmup + args.steps, batch_size=args.batch_size, lr=args.lr,
                   seed=seed, progress=False, compile=args.compile, evaluate=mark,
                   evaluate_every=args.warmup).fit(model, x)  # fmt: skip
    (wall0, cpu0), (wall1, cpu1) = marks[0], marks[-1]
    model.eval()
    row = _measured("genzoo", dataset, args, seed, model, log_prob, sample, x_test,
                    (wall1 - wall0, cpu1 - cpu0), 0.0)  # fmt: skip
    return row | {"warmup_s": wall0 - start}  # with --compile: the compilation's time


def _measured(library, dataset, args, seed, model, log_prob, sample, x_test, times, shift):
    """The row of one run: speed, test NLL and the throughput of scoring and sampling;
    ``times`` = (wall, CPU) seconds of the timed steps, ``shift`` the peers' log-det."""
    train_time, cpu = times
    with torch.no_grad():
        nll = -float(log_prob(x_test).mean()) + shift
        lp_time, _ = _timed(lambda: log_prob(torch.randn(args.n_throughput, 2)))
        sample_time, _ = _timed(lambda: sample(args.n_throughput))
    return {
        "library": library,
        "dataset": dataset,
        "seed": seed,
        "steps_per_s": args.steps / train_time,
        "steps_per_cpu_s": args.steps / cpu,  # steadier on a shared machine (one thread)
        "test_nll": nll,
        "true_entropy": genzoo.data.true_entropy(dataset),
        "log_prob_100k_s": lp_time,
        "sample_100k_s": sample_time,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def summary(rows: list[dict]) -> list[dict]:
    """Median steps/s and mean test NLL per library and dataset, and the speed ratio to the
    fastest peer (both measured in this process, interleaved)."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        cells = {}
        for library in dict.fromkeys(r["library"] for r in rows):
            mine = [r for r in rows if r["dataset"] == dataset and r["library"] == library]
            if mine:
                cells[library] = {
                    "steps_per_s": statistics.median(r["steps_per_s"] for r in mine),
                    "steps_per_cpu_s": statistics.median(r["steps_per_cpu_s"] for r in mine),
                    "test_nll": statistics.fmean(r["test_nll"] for r in mine),
                    "runs": len(mine),
                }
        for library, cell in cells.items():
            for key in ("steps_per_s", "steps_per_cpu_s"):
                peers = [c[key] for lib, c in cells.items() if lib != "genzoo"]
                if peers and library == "genzoo":
                    cell[f"{key}_vs_fastest_peer"] = cell[key] / max(peers)
            out.append({"dataset": dataset, "library": library, **cell})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flow", choices=("nsf-ar", "nsf-c", "realnvp"), default="nsf-ar")
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES))
    parser.add_argument("--datasets", nargs="+", default=["moons", "checkerboard"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs per library")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--transforms", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--tail-bound", type=float, default=5.0)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile genzoo's log_prob (with --trainer: the Trainer's "
                        "compile option)")  # fmt: skip
    parser.add_argument("--trainer", action="store_true",
                        help="train genzoo through genzoo.Trainer, as its users do (the "
                        "peers keep the plain loop their documentation shows)")  # fmt: skip
    parser.add_argument("--trainer-optimizer", action="store_true",
                        help="genzoo's plain loop with the optimiser its Trainer builds "
                        "(fused Adam)")  # fmt: skip
    parser.add_argument(
        "--fused-peers", action="store_true", help="give the peers torch's fused Adam too"
    )
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-throughput", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the rows as JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    skipped = set()
    for dataset in args.datasets:
        for repeat in range(args.repeats):  # interleaved: the machine's load hits all alike
            for library in args.libraries:
                if library in skipped:
                    continue
                try:
                    row = run(library, dataset, args, args.seed + repeat)
                except ImportError as err:
                    print(f"skipping {library}: {err} (pip install {library})")
                    skipped.add(library)
                    continue
                rows.append(row)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                  for k, v in row.items()}))  # fmt: skip
    for cell in summary(rows):
        print("SUMMARY", json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                     for k, v in cell.items()}))  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    assert all(math.isfinite(r["test_nll"]) for r in rows)


if __name__ == "__main__":
    main()
