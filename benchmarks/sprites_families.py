"""One model per family on streamed 64x64 sprites: speed, peak memory and quality.

``sprites`` (genzoo's re-rendering in the dSprites design, Matthey et al. 2017: 737,280 binary
64x64 images, streamed from its bit-packed cache file). For one model per family, at the
configuration in ``FAMILIES`` (printed with the results), each in a fresh child process:

1. Training with ``genzoo.workflow.train`` (what ``genzoo train MODEL --data sprites`` runs:
   the Trainer on the streamed train split of 589,824 images; continuous models see the 0/1
   pixels uniformly dequantised, ``(x + u) / 2``) for ``--steps`` steps (the family's own
   count when not given); training images/s; peak resident memory of the child (``ru_maxrss``,
   training and evaluation together).
2. Sampling images/s (``model.sample``, ``--samples`` images; ``--ar-samples`` for the
   autoregressive model, which takes one network pass per pixel: 4,096 passes a batch).
3. Quality on the test split: bits/dim = NLL in nats / (4096 ln 2) for the autoregressive model
   (exact), the flow (the uniform-dequantisation bound of Theis et al. 2016: an upper bound on
   the NLL of the binary pixels) and the mixture (the same bound); for the VAE the test ELBO and
   the IWAE estimate (Burda et al. 2016) in nats per image, both bounds on log p(x) (the ELBO
   a lower bound, IWAE-k a tighter lower bound in expectation); for every family the Fréchet
   distance of its samples to as many test images on the features of genzoo's sprites
   classifier (``genzoo.metrics.sprites_classifier``; NOT FID; two sets of real images score
   the ``real`` row), and the *render agreement*: the classifier reads each sample's five
   factors, the sprite with those factors is rendered, and the share of samples whose pixels
   overlap that rendering with IoU >= 0.5 is reported with the mean IoU. (The classifier's
   factor accuracy proper needs the factors a sample was asked for: only conditional models
   have them; this is its unconditional counterpart: "is each sample a sprite the classifier
   can name?") Continuous models' samples are put back on the data's 0/1 levels first
   (``floor(2 s)``, the inverse of the dequantisation).
4. Peak resident memory of a fresh child running ``--memory-steps`` Trainer steps of the
   family's model on the first 10,000 vs all 737,280 images of a seeded permutation of the grid,
   streamed (``benchmarks/sprites_scale.py``'s child). It must not grow with the data size.
   The mixture is the exception, found here: a model fitted by its own procedure (EM's
   ``fit_step``, no optimiser) makes the Trainer read the whole Dataset into memory
   (``genzoo.train.batches.materialize``): 4096 float32 per image, 12 GB at 737,280, so its
   child runs 10,000 vs ``--gmm-memory-n`` images and the mixture trains on the first
   ``--gmm-n`` training images (in memory, as ``genzoo train gmm --data sprites --n``).

Run (the whole default; the families can run as separate processes, each with its own
``--out``, merged by ``--tables``)::

    .venv/bin/python benchmarks/sprites_families.py --out runs/sprites_families.json
    .venv/bin/python benchmarks/sprites_families.py --models made,vae --out runs/part.json
    .venv/bin/python benchmarks/sprites_families.py --tables runs/sprites_families.json \
        runs/part.json

``--models`` picks families by model name; ``--steps N`` overrides every family's step count
(a smoke run: ``--steps 2 --samples 300 --ar-samples 1 --nll-n 50 --memory-steps 2``).

Measured so (2026-12-07, x86_64, torch 2.13.0+cpu, 2 threads; the 2-core machine was shared by
7 jobs, load 11-15, so every speed below is 3-6x lower than on an idle machine and noisy; the
families ran as 4 processes in parallel, ``--memory-steps`` 20 for ddpm, 10 for glow, gan, vae,
rbm, 5 for made): the step counts in ``FAMILIES`` (60-300 steps, 1-2 % of an epoch) leave every
sampler far from sprites: only the RBM's samples are mostly sprites the classifier can
name (render agreement 0.81, mean IoU 0.54; 500 real train images: 0.996, 0.945), the others
0; the gan collapsed to empty images; Fréchet distances are 3,900 (vae) to 15,000 (the real
images against 500 test images: 84; the small-sample bias, about 17 at 2,000 vs 2,000).
Bits/dim: made 0.147 (exact), gmm 0.332 and glow 0.359 (dequantisation bounds); an
independent Bernoulli per pixel is about 0.142; the vae's IWAE-100 of -286.4 nats is
0.101 bits/dim (an estimate, not a bound to compare as exact).
Findings:

* Peak memory does not grow with the data for the gradient-trained families (10,000 vs
  737,280 streamed images, MB: ddpm 762 / 780, glow 488 / 485; the rest in the table).
* It does for the mixture: the Trainer reads a Dataset into memory for a model fitted by its
  own ``fit_step`` (``materialize`` in ``genzoo.train.batches``) and dequantises the whole
  copy at every EM step (``Trainer._apply_transform(data[0], ...)``): peak RSS 1,135 MB at
  10,000 images, 3,479 MB at 40,000 (read from ``VmHWM`` during the EM steps; about 5 copies
  of the 625 MiB of float32 pixels); at 737,280 it would need about 55 GB.
  ``GaussianMixture.fit_step_chunks`` already sums EM statistics chunk by chunk;
  the Trainer does not use it.
* Sampling the autoregressive model costs 4,096 sequential network passes a batch (made: see
  the table); a 64x64 PixelCNN pass is 4.5x a MADE pass (0.90 vs 0.21 s for 100 images,
  channels 16 / hidden [128, 128]), so ``pixelcnn`` could not be sampled within the budget.
  (Since then, Session 8, each step does only its pixel's work: MADE updates its input layer
  by one column and computes one output row, PixelCNN runs on the window its convolutions
  reach; 16 samples at 64x64: MADE [512, 512] 1.0 s instead of 29 s, PixelCNN's defaults
  13 s instead of about 13 minutes. The table above predates it.)
* Session 8, ``--models made,pixelcnn --memory-steps 5`` (2 threads, a quiet machine; the
  autoregressive families now sample 500 images each): made (hidden [256], 150 x 64)
  trains 1,376 img/s, samples 397 img/s, 0.147 bits/dim (exact), Fréchet 17,138, pixel mean
  of its samples 0.109; pixelcnn (16 channels, 3 blocks, kernel 5 from its budget; 150 x 32)
  trains 196 img/s, samples 23.8 img/s, 0.033 bits/dim (exact), Fréchet 3,200, but its
  samples are nearly blank (pixel mean 0.003; test images 0.023): render agreement 0 for
  both. Peak RSS flat between 10,000 and 737,280 streamed images (made 509 / 502 MB,
  pixelcnn 569 / 566).
* ``genzoo eval`` (``sprites_sample_quality``) scores a continuous model's raw samples, on
  the dequantised ``[0, 1)`` scale, while discrete models' are 0/1 levels; the two give
  different Fréchet distances (gmm 7,366 raw vs 12,160 on levels, glow 8,273 vs 15,447).

Results go to ``--out`` (JSON) and are printed as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sprites_scale import FULL, machine, memory_run, peak_rss_mb  # noqa: E402

VAE = {
    "network": "mlp",
    "hidden": 256,
    "depth": 2,
    "latent_dim": 10,
    "iwae_samples": 100,
    "kl_warmup_steps": 100,
}
RBM = {"n_hidden": 256, "persistent": True, "n_chains": 100, "sample_steps": 200}
GMM = {"n_components": 16, "covariance_type": "diag", "reg_covar": 1e-3}
#: family -> (model, hyper-parameters, steps, batch size, learning rate). Hyper-parameters
#: not given are the model's (``genzoo.bench.budgets``'s for the model, else its own).
FAMILIES: dict[str, tuple[str, dict, int, int, float]] = {
    "autoregressive": ("made", {"hidden": [256]}, 150, 64, 1e-3),
    "autoregressive-conv": ("pixelcnn", {"channels": 16}, 150, 32, 1e-3),
    "flow": ("glow", {"n_steps": 2, "n_levels": 2, "hidden": 32}, 60, 32, 1e-3),
    "vae": ("vae", VAE, 300, 64, 1e-3),
    "gan": (
        "gan",
        {"hidden": 16, "latent_dim": 32, "penalty": "none", "ema_decay": 0.99},
        150,
        32,
        5e-4,
    ),  # fmt: skip
    "energy": ("rbm", RBM, 300, 100, 0.05),
    "score": ("ddpm", {"channels": 16, "sampling_steps": 25, "ema": 0.99}, 150, 32, 2e-3),
    "mixture": ("gmm", GMM, 20, 256, 1e-3),
}
#: Families whose bits/dim the benchmark reports (exact or a dequantisation bound).
BITS_FAMILIES = ("autoregressive", "autoregressive-conv", "flow", "mixture")
#: Families sampled one pixel at a time (``--ar-samples`` images).
AR_FAMILIES = ("autoregressive", "autoregressive-conv")
IMAGE_DIM = 64 * 64
#: Render agreement: a sample counts when its IoU with its factors' rendering reaches this.
IOU_FLOOR = 0.5


def render_agreement(samples: torch.Tensor) -> dict[str, float]:
    """Share of 0/1 samples (n, 4096) that the sprites classifier can name: it predicts each
    sample's five factors; the sprite with those factors is rendered (orientation taken
    modulo the shape's symmetry, as the classifier reads it) and compared to the sample by
    intersection over union of the lit pixels. ``valid_share``: IoU >= ``IOU_FLOOR``."""
    from genzoo.data import sprites
    from genzoo.metrics.sprites_classifier import sprites_classifier

    model = sprites_classifier()
    with torch.no_grad():
        pred = torch.cat([model.predict(chunk) for chunk in samples.split(1024)]).numpy()
    rendered = sprites.render(sprites.FULL_GRID, sprites.FULL_GRID.index(pred))
    lit = samples.numpy().reshape(len(samples), -1) > 0.5
    ref = rendered.reshape(len(rendered), -1) > 0
    union = (lit | ref).sum(1)
    iou = np.where(union > 0, (lit & ref).sum(1) / np.maximum(union, 1), 0.0)
    return {"valid_share": float((iou >= IOU_FLOOR).mean()), "mean_iou": float(iou.mean())}


def real_reference(n: int) -> dict:
    """The metrics of ``n`` real train images against ``n`` test images (the floor)."""
    from genzoo.data import open_dataset
    from genzoo.metrics.sprites_classifier import frechet_sprites_distance

    test = open_dataset("sprites", split="test", n=n)
    real = open_dataset("sprites", split="train", n=n)
    x = real.images(np.arange(n)).reshape(n, -1)
    y = test.images(np.arange(n)).reshape(n, -1)
    return {"family": "real", "model": "train images", "n_samples": n,
            "frechet_sprites": frechet_sprites_distance(x, y), **render_agreement(x)}  # fmt: skip


def family_child(family: str, args: argparse.Namespace) -> dict:
    """Run in a fresh process: train ``family``'s model on streamed sprites, time its
    sampling, score it; the peak resident memory of the whole."""
    from genzoo import workflow
    from genzoo.data import open_dataset
    from genzoo.metrics import negative_log_likelihood
    from genzoo.metrics.likelihood import on_levels
    from genzoo.metrics.sprites_classifier import frechet_sprites_distance

    name, hparams, steps, batch_size, lr = FAMILIES[family]
    steps = args.steps or steps
    n = args.gmm_n if family == "mixture" else None  # EM reads its data into memory
    start = time.perf_counter()
    model, trainer = workflow.train(name, "sprites", hparams=dict(hparams), n=n, steps=steps,
                                    batch_size=batch_size, lr=lr, seed=args.seed,
                                    progress=False)  # fmt: skip
    train_seconds = time.perf_counter() - start
    model.eval()
    seen = steps * (args.gmm_n if family == "mixture" else batch_size)
    result = {"family": family, "model": name, "config": {k: v for k, v in model.config.items()
              if k != "data_shape"}, "steps": steps, "batch_size": batch_size, "lr": lr,
              "train_examples": n or 589_824, "train_seconds": train_seconds,
              "train_images_per_s": seen / train_seconds}  # fmt: skip
    m = args.ar_samples if family in AR_FAMILIES else args.samples
    with torch.no_grad():
        start = time.perf_counter()
        samples = model.sample(m, generator=torch.Generator().manual_seed(args.seed))
        result["sample_seconds"] = time.perf_counter() - start
    result["sample_images_per_s"] = m / result["sample_seconds"]
    result["n_samples"] = m
    raw = samples.reshape(m, -1).float()
    x = on_levels(raw, model, 2)  # a continuous model's (x + u) / 2 back to 0/1
    result["sample_pixel_mean"] = float(x.mean())
    test = open_dataset("sprites", split="test", n=max(m, args.nll_n))
    # Fréchet needs more samples than features (256) for a full-rank covariance
    if m > 256:
        ref = test.images(np.arange(m)).reshape(m, -1)
        result["frechet_sprites"] = frechet_sprites_distance(x, ref)
        if model.data_kind == "continuous":  # as genzoo eval scores them: not on the levels
            result["frechet_sprites_raw"] = frechet_sprites_distance(raw, ref)
    result.update(render_agreement(x))
    xt = test.images(np.arange(args.nll_n))
    with torch.no_grad():
        if family in BITS_FAMILIES:
            nll = negative_log_likelihood(model, xt, levels=2)
            result.update({k: nll[k] for k in ("nll", "nll_kind", "nll_label", "bits_per_dim")})
        if family == "vae":
            g = torch.Generator().manual_seed(0)
            result["test_elbo_nats"] = float(model.elbo(xt, samples=1, generator=g).mean())
            iwae = negative_log_likelihood(model, xt, levels=2)
            result["test_iwae_nats"] = -iwae["nll"]
            result["iwae_samples"] = model.config.get("iwae_samples")
            result["nll_label"] = iwae["nll_label"]
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def run_child(args: argparse.Namespace, family: str) -> dict:
    """``family_child`` in a fresh process; a failure is recorded with its last error line."""
    cmd = [
        sys.executable,
        __file__,
        "--family-child",
        family,
        "--threads",
        str(args.threads),
        "--samples",
        str(args.samples),
        "--ar-samples",
        str(args.ar_samples),
        "--nll-n",
        str(args.nll_n),
        "--gmm-n",
        str(args.gmm_n),
        "--seed",
        str(args.seed),
    ]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"family": family, "model": FAMILIES[family][0],
                "error": lines[-1] if lines else f"exit {done.returncode}"}  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_rows(args: argparse.Namespace, family: str) -> list[dict]:
    """Peak RSS of ``--memory-steps`` Trainer steps on 10,000 vs the full grid (streamed)."""
    name, hparams, _, batch_size, _ = FAMILIES[family]
    sizes = (10_000, args.gmm_memory_n if family == "mixture" else FULL)
    rows = []
    for n in sizes:
        try:
            row = memory_run(n, "train", args.memory_steps, batch_size, args.threads, name,
                             hparams)  # fmt: skip
        except subprocess.CalledProcessError as err:
            lines = [line for line in (err.stderr or "").strip().splitlines() if line.strip()]
            row = {"n": n, "mode": "train", "error": lines[-1] if lines else str(err)}
        rows.append({"family": family, "model": name, **row})
    return rows


def _fmt(value, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        format(value, spec))  # fmt: skip


def print_tables(results: dict) -> None:
    print(f"\n{results['machine']}\n")
    print("| family | model (configuration) | steps x batch | train img/s | sample img/s | "
          "peak RSS (MB) | bits/dim | ELBO / IWAE (nats) | Fréchet (n) | render agreement "
          "(mean IoU) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for r in results["models"]:
        if "error" in r:
            print(f"| {r['family']} | {r['model']} | failed: {r['error']} |||||||")
            continue
        given = FAMILIES.get(r["family"], ("", {}))[1]  # the stated configuration
        config = ", ".join(f"{k}={v}" for k, v in r.get("config", {}).items() if k in given)
        bits = r.get("bits_per_dim")
        bits_cell = f"{bits:.3f} ({r['nll_kind']})" if bits is not None else "—"
        bound = "—"
        if "test_elbo_nats" in r:
            bound = f"{r['test_elbo_nats']:.1f} / {r['test_iwae_nats']:.1f}"
        steps = f"{r['steps']} x {r['batch_size']}" if "steps" in r else "—"
        if r["family"] == "mixture":  # EM: each step one sweep over the training images
            steps = f"{r['steps']} EM sweeps of {r['train_examples']:,}"
        frechet = r.get("frechet_sprites")
        raw = f", raw {r['frechet_sprites_raw']:.1f}" if "frechet_sprites_raw" in r else ""
        print(f"| {r['family']} | {r['model']} ({config}) | {steps} | "
              f"{_fmt(r.get('train_images_per_s'), '.0f')} | "
              f"{_fmt(r.get('sample_images_per_s'), '.3g')} | "
              f"{_fmt(r.get('peak_rss_mb'), '.0f')} | {bits_cell} | {bound} | "
              f"{_fmt(frechet, '.1f')}{raw} ({r['n_samples']}) | "
              f"{r['valid_share']:.3f} ({r['mean_iou']:.3f}) |")  # fmt: skip
    if results["memory"]:
        print("\n| family | model | examples (streamed) | Trainer steps | peak RSS (MB) |\n"
              "|---|---|---:|---:|---:|")  # fmt: skip
        for r in results["memory"]:
            rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else f"failed: {r['error']}"
            print(f"| {r['family']} | {r['model']} | {r['n']:,} | "
                  f"{r.get('steps', '—')} | {rss} |")  # fmt: skip


def merge(parts: list[dict]) -> dict:
    """Results of several runs (families run apart) as one: their rows in order, one
    ``real`` row."""
    rows = [r for p in parts for r in p["models"] if r["family"] != "real"]
    real = [r for p in parts for r in p["models"] if r["family"] == "real"][:1]
    return {"machine": parts[0]["machine"], "models": rows + real,
            "memory": [r for p in parts for r in p["memory"]]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        default=",".join(m for m, *_ in FAMILIES.values()),
        help="comma-separated model names, one per family (default: all)",
    )
    parser.add_argument("--steps", type=int, default=0, help="override every family's steps")
    parser.add_argument("--samples", type=int, default=500, help="samples scored per model")
    parser.add_argument(
        "--ar-samples",
        type=int,
        default=500,
        help="samples of the autoregressive models (4,096 steps a batch, one per pixel)",
    )
    parser.add_argument("--nll-n", type=int, default=500, help="test images for NLL/ELBO")
    parser.add_argument("--gmm-n", type=int, default=10_000, help="training images of the GMM")
    parser.add_argument(
        "--gmm-memory-n",
        type=int,
        default=40_000,
        help="images of the GMM's larger memory run (an EM step sweeps them all; 737,280 "
        "takes minutes)",
    )
    parser.add_argument("--memory-steps", type=int, default=20)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/sprites_families.json")
    parser.add_argument(
        "--tables",
        nargs="+",
        metavar="JSON",
        help="print the tables of saved results (several: merged) and exit",
    )
    parser.add_argument("--family-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.family_child:
        print(json.dumps(family_child(args.family_child, args)))
        return
    if args.tables:
        print_tables(merge([json.loads(Path(f).read_text()) for f in args.tables]))
        return
    by_model = {m: family for family, (m, *_) in FAMILIES.items()}
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in by_model]
    if unknown:
        parser.error(f"--models: {', '.join(unknown)} not benchmarked here; choose from "
                     f"{', '.join(by_model)}")  # fmt: skip
    from genzoo.data import sprites

    sprites.ensure_cache()
    results: dict = {"machine": machine(args.threads), "families": {f: FAMILIES[f] for f in
                     (by_model[m] for m in wanted)}, "models": [], "memory": []}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for m in wanted:
        family = by_model[m]
        start = time.perf_counter()
        try:
            row = run_child(args, family)
        except Exception:  # noqa: BLE001 - a benchmark row, not a crash of the whole run
            row = {"family": family, "model": m, "error": traceback.format_exc(limit=1)}
        row["wall_seconds"] = time.perf_counter() - start
        results["models"].append(row)
        print(json.dumps(row), flush=True)
        if not args.skip_memory:
            results["memory"] += memory_rows(args, family)
            print(json.dumps(results["memory"][-2:]), flush=True)
        out.write_text(json.dumps(results, indent=2))  # what is done survives an interruption
    results["models"].append(real_reference(args.samples))
    out.write_text(json.dumps(results, indent=2))
    print_tables(results)


if __name__ == "__main__":
    main()
