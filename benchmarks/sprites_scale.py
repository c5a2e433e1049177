"""Sprites at scale: streamed data, peak memory, speed, and vae vs beta-vae disentanglement.

``sprites`` (genzoo's re-rendering in the dSprites design, Matthey et al. 2017: 737,280 binary
64x64 images) is streamed from its bit-packed cache file (rendered on first use, about 2 s).
The benchmark measures, on this machine:

1. Peak resident memory (``ru_maxrss`` of a fresh child process) while streaming 10,000 and
   737,280 examples: one shuffled pass of a ``DataLoader`` over the ``SpritesDataset``
   (``iterate``), and ``--memory-steps`` steps of the Trainer on the same ``Dataset``
   (``train``). Memory must not grow with the number of examples.
2. For ``vae`` and ``beta-vae`` (beta = ``--beta``, Higgins et al. 2017) with the same MLP
   (4096 -> hidden -> hidden -> latent, Bernoulli decoder; the MLP of Chen et al. 2018's
   dSprites runs, narrower): trained ``--steps`` steps of ``--batch-size`` on the streamed
   train split (589,824 images); images/s of training and of sampling; the test ELBO (nats per
   image, 2,000 test images; a bound, not a likelihood); sample quality, the Fréchet distance
   of 2,000 samples to the 2,000 test images on the features of genzoo's sprites classifier
   (``genzoo.metrics.sprites_classifier``; not FID; 2,000 other real images score about 17);
   the beta-VAE metric (Higgins et al.
   2017) and MIG (Chen et al. 2018) from the encoder's means
   (``genzoo.metrics.disentanglement.sprites_disentanglement``).

Run (25 minutes on 2 cores shared with other work, 100-170 training images/s)::

    .venv/bin/python benchmarks/sprites_scale.py --steps 1200 --memory-steps 100

Measured so (2026-12-07, x86_64, torch 2.13.0+cpu, 2 threads, machine shared by 6 jobs):
peak RSS streaming 10,000 vs 737,280 examples: 322 vs 366 MB (one DataLoader pass; the
sampler's shuffled list of indices is the difference) and 487 vs 484 MB (100 Trainer steps).

Longer runs on one quieter thread (3,200-3,800 training images/s)::

    .venv/bin/python benchmarks/sprites_scale.py --steps 30000 --skip-memory --threads 1

vae / beta-vae (beta 4), one seed: after 4,000 steps of 64 (0.43 epoch) test ELBO -67.5 /
-77.6 nats, Fréchet 1,372 / 1,229, beta-VAE metric 0.697 / 0.713, MIG 0.020 / 0.026; after
30,000 steps (3.3 epochs, 19 min for both) ELBO -54.0 / -64.4, Fréchet 1,436 / 845, beta-VAE
metric 0.683 / 0.687, MIG 0.014 / 0.029. beta-VAE doubles the MIG and draws samples closer
to the data at a 10-nat cost in ELBO (the trade-off Higgins et al. describe), but the
beta-VAE metric does not separate them and both stay far below the papers' values (conv
encoders, hundreds of thousands of steps, several seeds).

Results go to ``--out`` (JSON) and are printed as markdown tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

FULL = 737_280


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def machine(threads: int) -> str:
    """The machine, in words, for the results."""
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, torch {torch.__version__}, {threads} threads"


def _subset(n: int):
    """The first ``n`` of a seeded permutation of the whole grid, as a streamed Dataset."""
    from genzoo.data import sprites

    grid = sprites.FULL_GRID
    path = sprites.ensure_cache(grid)
    index = np.random.default_rng(0).permutation(len(grid))[:n]
    return sprites.SpritesDataset(path, index, grid)


MODEL_SETTINGS = {"network": "mlp", "hidden": 256, "depth": 2, "latent_dim": 10}


def memory_child(
    n: int, mode: str, steps: int, batch_size: int, model: str = "vae", hparams: dict | None = None
) -> dict:
    """Run in a fresh process: stream ``n`` examples, report peak resident memory.

    ``train``: ``steps`` Trainer steps of ``model`` (``hparams``, default ``MODEL_SETTINGS``),
    the 0/1 pixels uniformly dequantised for a continuous model as ``genzoo train`` does."""
    import genzoo
    from genzoo.registry import model_class
    from genzoo.train import Trainer
    from genzoo.workflow import batch_transform

    data = _subset(n)
    base = peak_rss_mb()
    start = time.perf_counter()
    if mode == "iterate":
        loader = torch.utils.data.DataLoader(
            data, batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
        seen = sum(len(batch) for batch in loader)
    else:
        hparams = MODEL_SETTINGS if hparams is None else hparams
        sizing = data.images(np.arange(min(n, 256)))
        transform = batch_transform(model_class(model).data_kind_for(sizing, hparams), 2)
        if transform is not None:
            sizing = transform(sizing, torch.Generator().manual_seed(0))
        net = genzoo.create(model, data=sizing, **hparams)
        Trainer(steps=steps, batch_size=batch_size, progress=False, transform=transform).fit(
            net, data
        )
        seen = steps * batch_size
    seconds = time.perf_counter() - start
    return {"n": n, "mode": mode, "steps": steps, "examples_read": seen,
            "images_per_s": seen / seconds, "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": base}  # fmt: skip


def memory_run(
    n: int,
    mode: str,
    steps: int,
    batch_size: int,
    threads: int,
    model: str = "vae",
    hparams: dict | None = None,
) -> dict:
    """``memory_child`` in a fresh process (so that ``ru_maxrss`` is its own): its result."""
    cmd = [sys.executable, __file__, "--memory-child", str(n), "--mode", mode,
           "--memory-steps", str(steps), "--batch-size", str(batch_size),
           "--threads", str(threads), "--model", model,
           "--hparams", json.dumps(MODEL_SETTINGS if hparams is None else hparams)]  # fmt: skip
    line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(line.strip().splitlines()[-1])


def train_one(name: str, hparams: dict, args: argparse.Namespace) -> dict:
    import genzoo
    from genzoo.data import open_dataset
    from genzoo.metrics.disentanglement import sprites_disentanglement
    from genzoo.metrics.sprites_classifier import frechet_sprites_distance
    from genzoo.train import Trainer

    train = open_dataset("sprites", split="train")
    test = open_dataset("sprites", split="test", n=2000)
    torch.manual_seed(args.seed)
    model = genzoo.create(name, data=train.images(np.arange(256)), **MODEL_SETTINGS, **hparams)
    trainer = Trainer(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, progress=False)  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, train)
    train_seconds = time.perf_counter() - start
    with torch.no_grad():
        start = time.perf_counter()
        samples = model.sample(2000, generator=torch.Generator().manual_seed(0))
        sample_seconds = time.perf_counter() - start
        x = test.images(np.arange(len(test)))
        frechet = frechet_sprites_distance(samples.reshape(len(samples), -1), x)
        elbo = float(model.elbo(x, samples=1, generator=torch.Generator().manual_seed(0)).mean())
    start = time.perf_counter()
    scores = sprites_disentanglement(model, n=5000, seed=0, n_train=500, n_test=300, pairs=64)
    return {
        "model": name,
        **hparams,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "train_images_per_s": args.steps * args.batch_size / train_seconds,
        "train_seconds": train_seconds,
        "sample_images_per_s": 2000 / sample_seconds,
        "test_elbo_nats": elbo,
        "frechet_sprites": frechet,
        "metric_seconds": time.perf_counter() - start,
        **{k: v for k, v in scores.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-steps", type=int, default=100)
    parser.add_argument("--skip-models", action="store_true", help="memory only")
    parser.add_argument("--skip-memory", action="store_true", help="models only")
    parser.add_argument("--out", default="runs/sprites_scale.json")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="iterate", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="vae", help=argparse.SUPPRESS)
    parser.add_argument("--hparams", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        hparams = None if args.hparams is None else json.loads(args.hparams)
        result = memory_child(args.memory_child, args.mode, args.memory_steps, args.batch_size,
                              args.model, hparams)  # fmt: skip
        print(json.dumps(result))
        return
    from genzoo.data import sprites

    start = time.perf_counter()
    sprites.ensure_cache()
    results: dict = {
        "machine": machine(args.threads),
        "cache_ready_seconds": time.perf_counter() - start,
        "memory": [],
        "models": [],
    }
    if not args.skip_memory:
        for mode in ("iterate", "train"):
            for n in (10_000, FULL):
                results["memory"].append(
                    memory_run(n, mode, args.memory_steps, args.batch_size, args.threads)
                )
                print(results["memory"][-1], flush=True)
    if not args.skip_models:
        for name, hparams in (("vae", {}), ("beta-vae", {"beta": args.beta})):
            results["models"].append(train_one(name, hparams, args))
            print({k: v for k, v in results["models"][-1].items() if k != "mig_per_factor"},
                  flush=True)  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\n{results['machine']}; cache ready in {results['cache_ready_seconds']:.1f} s\n")
    if results["memory"]:
        print("| mode | examples | peak RSS (MB) | images/s |\n|---|---:|---:|---:|")
        for r in results["memory"]:
            print(f"| {r['mode']} | {r['n']:,} | {r['peak_rss_mb']:.0f} | "
                  f"{r['images_per_s']:.0f} |")  # fmt: skip
    if results["models"]:
        print("\n| model | steps x batch | train img/s | sample img/s | test ELBO (nats) | "
              "Fréchet (sprites classifier) | beta-VAE metric | MIG |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|")  # fmt: skip
        for r in results["models"]:
            label = r["model"] + (f" (beta={r['beta']:g})" if "beta" in r else "")
            print(f"| {label} | {r['steps']} x {r['batch_size']} | "
                  f"{r['train_images_per_s']:.0f} | {r['sample_images_per_s']:.0f} | "
                  f"{r['test_elbo_nats']:.1f} | {r['frechet_sprites']:.1f} | "
                  f"{r['beta_vae_accuracy']:.3f} | "
                  f"{r['mig']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
