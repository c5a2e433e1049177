"""The same MLP VAE on binarised sklearn digits in genzoo and in pythae: speed and test bounds.

Setup (pythae is never a genzoo dependency; it is installed beside genzoo's torch in a folder of
its own and put on ``sys.path`` by ``--peers``)::

    .venv/bin/pip install --target /tmp/peers pythae   # keeps genzoo's torch
    .venv/bin/python benchmarks/vae_vs_pythae.py --epochs 100 --seeds 3 --peers /tmp/peers

Both sides run in this one process with one thread, interleaved (seed 0 of every side, then
seed 1, ...), so that a shared machine slows them alike; times are medians over the seeds, as
wall-clock and as process CPU time (the steadier of the two on a shared machine: a thread's
CPU time does not grow while it waits for a core).

Both sides train the same model: ``digits-binary`` (1,000 training, 447 test images of 8x8
binary pixels, loaded once for both), encoder MLP
``64 -> hidden -> hidden -> 2 * latent_dim`` and decoder MLP ``latent_dim -> hidden -> hidden ->
64`` Bernoulli logits (ReLU; ``--depth`` hidden layers each, 2 by default as in genzoo's VAE),
``N(0, I)`` prior, one-sample reparameterised ELBO (Kingma & Welling 2014, eq. 10), Adam
at the same learning rate and batch size, the same number of epochs (genzoo:
``ceil(n / batch)`` steps an epoch, in shuffled sweeps, ``batch_order="epochs"``, or drawn with
replacement with ``--batch-order random``; pythae: its ``BaseTrainer``, shuffled epochs,
``keep_best_on_train``, i.e. it returns the epoch of lowest training loss where genzoo returns
the last). Time per epoch: the wall-clock of making the trainer and training, over the
epochs, median over the seeds (torch's one-off import of ``torch._dynamo`` by the first Adam,
about 3 s, is paid before the clock starts).
Both trained models are then scored by the same code below (:func:`bounds`): the test ELBO
(analytic KL, 10 draws of ``z``) and IWAE-k (Burda et al. 2016, eq. 8) from each model's
encoder ``(mu, logvar)`` and decoder logits, in nats per image. A third row trains genzoo's
model with its default KL warm-up (500 steps, Bowman et al. 2016), which pythae's VAE lacks.
``--compile`` trains genzoo's sides with the Trainer's ``compile=True`` (opt-in), compiled on
an untimed epoch and a step first (both batch shapes; the weights then put back), the
compilation's time reported apart. Last, the floor: the CPU time of the network's matrix
products and one fused Adam kernel alone (:func:`floor_step_seconds`), the least any float32
implementation of this VAE spends a step, as a fraction of pythae's step.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.no_grad()
def bounds(
    encode: Callable[[Tensor], tuple[Tensor, Tensor]],
    decode_logits: Callable[[Tensor], Tensor],
    x: Tensor,
    k: int,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean test ELBO (10 draws, analytic KL) and IWAE-k of a Bernoulli VAE, nats per example.

    ``encode(x (n, D)) -> mu, logvar (n, d)``; ``decode_logits(z (m, d)) -> (m, D)``.
    """
    gen = torch.Generator().manual_seed(seed)
    x = x.flatten(1)
    mu, logvar = encode(x)
    std = (0.5 * logvar).exp()
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)

    def log_px(z: Tensor) -> Tensor:  # z (s, n, d) -> (s, n)
        logits = decode_logits(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:2], -1)
        target = x.expand(z.shape[0], -1, -1)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)

    def normal(z: Tensor, m: Tensor, s: Tensor) -> Tensor:
        return (-0.5 * ((z - m) / s).square() - s.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    z = mu + std * torch.randn((10, *mu.shape), generator=gen)
    elbo = (log_px(z).mean(0) - kl).mean()
    parts = []
    for start in range(0, k, 100):
        s = min(100, k - start)
        z = mu + std * torch.randn((s, *mu.shape), generator=gen)
        parts.append(log_px(z) + normal(z, torch.zeros_like(mu), torch.ones_like(std))
                     - normal(z, mu, std))  # fmt: skip
    iwae = (torch.logsumexp(torch.cat(parts), 0) - math.log(k)).mean()
    return float(elbo), float(iwae)


def mlp(sizes: list[int]) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` (the layout of ``genzoo.models.nn.MLP``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def run_genzoo(args: argparse.Namespace, data: dict[str, np.ndarray]) -> dict[str, float]:
    import genzoo

    torch.manual_seed(args.seed)
    x, test = torch.from_numpy(data["train"]), torch.from_numpy(data["test"])
    model = genzoo.create("vae", data=x, latent_dim=args.latent_dim, hidden=args.hidden,
                          depth=args.depth, likelihood="bernoulli", network="mlp",
                          kl_warmup_steps=args.kl_warmup)  # fmt: skip
    steps = args.epochs * math.ceil(len(x) / args.batch_size)
    settings = {"batch_size": args.batch_size, "lr": args.lr, "batch_order": args.batch_order,
                "progress": False, "seed": args.seed, "compile": args.compile,
                "precision": args.precision}  # fmt: skip
    compile_s = 0.0
    if args.compile:  # compiled on an untimed epoch and a step (its short last batch
        # included), then the weights put back
        state = copy.deepcopy(model.state_dict())
        compile_s = time.perf_counter()
        genzoo.Trainer(steps=math.ceil(len(x) / args.batch_size) + 1, **settings).fit(model, x)
        compile_s = time.perf_counter() - compile_s
        model.load_state_dict(state)
    start, cpu = time.perf_counter(), time.process_time()
    genzoo.Trainer(steps=steps, **settings).fit(model, x)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    model.eval()

    def encode(v: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar, _ = model.posterior_parameters(v.reshape(-1, *model.data_shape))
        return mu, logvar

    elbo, iwae = bounds(encode, lambda z: model.decoder(z)[:, 0], test, args.iwae_k)
    return {
        "epoch_s": seconds / args.epochs,
        "cpu_s": cpu / args.epochs,
        "elbo": elbo,
        "iwae": iwae,
        "compile_s": compile_s,
    }


def floor_step_seconds(args: argparse.Namespace, batch: int, steps: int = 2000) -> float:
    """CPU seconds of the least work any float32 implementation of this VAE does per step:
    the network's matrix products alone (each layer's forward, weight gradient and input
    gradient, the data needing none) and one fused Adam kernel over its parameters; no
    activations, loss, bookkeeping or autograd. A lower bound for both libraries' steps."""
    d, h = args.latent_dim, args.hidden
    widths = [h] * args.depth
    sizes = [*pairwise([64, *widths, 2 * d]), *pairwise([d, *widths, 64])]
    weights = [torch.randn(o, i) for i, o in sizes]
    params = [*weights, *(torch.randn(o) for _, o in sizes)]
    grads = [torch.randn_like(p) for p in params]
    moments = [[torch.zeros_like(p) for p in params] for _ in range(2)]
    counts = [torch.zeros(()) for _ in params]
    x = torch.randn(batch, 64)
    first_decoder = args.depth + 1  # the layer that reads z

    def step() -> None:
        inputs, out = [], x
        for i, w in enumerate(weights):
            inputs.append(torch.randn(batch, d) if i == first_decoder else out)  # z
            out = inputs[-1] @ w.t()
        grad = torch.randn(batch, 64)
        for i in reversed(range(len(weights))):
            grads[i] = grad.t() @ inputs[i]
            if i:
                grad = grad @ weights[i]
            if i == first_decoder:  # the gradient of z becomes that of (mu, logvar)
                grad = torch.randn(batch, 2 * d)
        torch._foreach_add_(counts, 1)
        torch._fused_adam_(params, grads, *moments, [], counts, amsgrad=False, lr=1e-3,
                           beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                           maximize=False, grad_scale=None, found_inf=None)  # fmt: skip

    for _ in range(100):
        step()
    cpu = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - cpu) / steps


def run_pythae(args: argparse.Namespace, data: dict[str, np.ndarray]) -> dict[str, float]:
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    d, h = args.latent_dim, args.hidden

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp([64, *[h] * args.depth, 2 * d])

        def forward(self, x: Tensor) -> ModelOutput:
            mu, logvar = self.net(x.flatten(1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp([d, *[h] * args.depth, 64])

        def forward(self, z: Tensor) -> ModelOutput:  # pythae's "bce" wants probabilities
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).view(-1, 1, 8, 8))

    # its per-epoch log lines go to a handler made at import: silenced (less work on its side)
    logging.getLogger("pythae.trainers.base_trainer.base_trainer").setLevel(logging.WARNING)
    torch.manual_seed(args.seed)
    x, test = torch.from_numpy(data["train"]), torch.from_numpy(data["test"])
    config = VAEConfig(input_dim=(1, 8, 8), latent_dim=d, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    with tempfile.TemporaryDirectory() as out:
        train_config = BaseTrainerConfig(
            output_dir=out, num_epochs=args.epochs, learning_rate=args.lr,
            per_device_train_batch_size=args.batch_size, optimizer_cls="Adam",
            keep_best_on_train=True, no_cuda=True, seed=args.seed,
        )  # fmt: skip
        start, cpu = time.perf_counter(), time.process_time()
        with open(os.devnull, "w") as null, redirect_stdout(null), redirect_stderr(null):
            dataset = BaseDataset(x, torch.zeros(len(x)))
            trainer = BaseTrainer(model, dataset, None, train_config)
            trainer.train()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        best = trainer._best_model.eval()

    def encode(v: Tensor) -> tuple[Tensor, Tensor]:
        out = best.encoder(v)
        return out.embedding, out.log_covariance

    elbo, iwae = bounds(encode, best.decoder.net, test, args.iwae_k)
    return {
        "epoch_s": seconds / args.epochs,
        "cpu_s": cpu / args.epochs,
        "elbo": elbo,
        "iwae": iwae,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2, help="hidden layers of each MLP")
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3, help="runs per side, seeds 0..n-1")
    parser.add_argument(
        "--peers",
        default=os.environ.get("GENZOO_PEERS", "/tmp/peers"),
        help="folder holding pythae (pip install --target DIR pythae), put on sys.path",
    )
    parser.add_argument(
        "--batch-order",
        choices=("epochs", "random"),
        default="epochs",
        help="genzoo's batches: shuffled sweeps (as pythae) or with replacement",
    )
    parser.add_argument("--compile", action="store_true",
                        help="genzoo's Trainer with compile=True (opt-in; compiled on an "
                        "untimed epoch, whose time is reported apart)")  # fmt: skip
    parser.add_argument("--precision", default="32", choices=("32", "bf16-mixed"),
                        help="genzoo's Trainer precision (pythae has no mixed precision on a "
                        "CPU: its amp is CUDA float16); bounds in float32")  # fmt: skip
    parser.add_argument("--kl-warmup", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.peers and Path(args.peers).is_dir() and args.peers not in sys.path:
        sys.path.append(args.peers)  # after genzoo's own packages: peers never shadow them
    try:
        import pythae  # noqa: F401
    except ImportError:
        sys.exit(f"pythae not found: pip install --target {args.peers} pythae (never a genzoo "
                 "dependency), then pass --peers DIR")  # fmt: skip
    import genzoo

    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # torch's one-off import (dynamo)
    data = {s: genzoo.load_dataset("digits-binary", split=s).numpy() for s in ("train", "test")}
    sides = {
        "genzoo": (run_genzoo, 0),
        "pythae": (run_pythae, 0),
        "genzoo, KL warm-up 500": (run_genzoo, 500),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for seed in range(args.seeds):  # interleaved: each seed runs every side in turn
        for name, (run, warmup) in sides.items():
            args.seed, args.kl_warmup = seed, warmup
            results[name].append(run(args, data))
    net = "-".join(map(str, [64, *[args.hidden] * args.depth, args.latent_dim]))
    print(f"digits-binary, MLP VAE {net}, {args.epochs} epochs, batch {args.batch_size}, "
          f"Adam lr {args.lr}, 1 thread, sides interleaved in one process; median time, "
          f"bounds mean +- sd over {args.seeds} seeds\n")  # fmt: skip
    print(f"| library | s / epoch (wall) | vs pythae | CPU s / epoch | vs pythae | test ELBO "
          f"(nats) | test IS-NLL, IWAE-{args.iwae_k} (nats) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    base = {k: float(np.median([r[k] for r in results["pythae"]])) for k in ("epoch_s", "cpu_s")}
    for side, runs in results.items():
        wall, cpu = (float(np.median([r[k] for r in runs])) for k in ("epoch_s", "cpu_s"))
        elbo = np.array([r["elbo"] for r in runs])
        nll = -np.array([r["iwae"] for r in runs])
        print(f"| {side} | {wall:.4f} | {wall / base['epoch_s']:.2f}x | {cpu:.4f} | "
              f"{cpu / base['cpu_s']:.2f}x | {elbo.mean():.2f} +- {elbo.std():.2f} | "
              f"{nll.mean():.2f} +- {nll.std():.2f} |")  # fmt: skip
    steps = math.ceil(len(data["train"]) / args.batch_size)
    floor = floor_step_seconds(args, args.batch_size)
    print(f"\nfloor (matrix products and the Adam kernel alone, float32): {1000 * floor:.3f} "
          f"ms CPU a step = {floor * steps / base['cpu_s']:.2f}x pythae's step")  # fmt: skip
    if args.compile:
        first, *later = (r["compile_s"] for r in results["genzoo"])
        again = f"; later seeds reuse its graphs, {max(later):.1f} s at most" if later else ""
        print(f"\ngenzoo compiled (Trainer compile=True): compiling took {first:.1f} s on the "
              f"first seed{again}; outside the times above")  # fmt: skip


if __name__ == "__main__":
    main()
