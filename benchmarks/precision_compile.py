"""Mixed precision and ``--compile`` per family: speed-up over float32 at equal loss after N steps.

For one model per family (``FAMILIES``; printed with the results), on sprites 2x2 max-pooled
to 32x32 binary images (genzoo's re-rendering in the dSprites design, Matthey et al. 2017; the
first ``--n-train`` images of the train split in memory, ``--n-test`` of the test split held
out; ``--image-size 64`` keeps the full size), the Trainer runs N steps (the family's, or
``--steps``) in four settings: float32, ``bf16-mixed`` (``torch.autocast`` to bfloat16),
float32 + ``compile`` (``torch.compile``, inductor) and ``bf16-mixed`` + ``compile``. The eager
settings run once per seed (``--seeds``, default 2: seeds 0 and 1), the compiled ones for the
first ``--compile-seeds`` (default 1: seed 0; each compile costs minutes on the shared
machine), interleaved in one process (a seed's runs back to back, their order rotated per
seed), so a shared machine's load falls on all of them alike.

Reported per family and setting:

- steady-state steps/s: the median over seeds and timed segments (N / ``--segments`` steps
  each, from the Trainer's logged training time) of the segments after the first; the
  speed-up over float32 is the ratio of the medians;
- first-call time: the first segment's time less its steady-state time, i.e. what the first
  steps cost above the others, which under ``compile`` is the compilation (dynamo + inductor)
  of every player's loss and its backward: ``cold`` for the first seed (the script points
  ``TORCHINDUCTOR_CACHE_DIR`` at a fresh folder), ``warm`` for later seeds (dynamo reset
  between runs; inductor's kernels then come from its cache);
- the training loss after N steps (the mean of the last N / ``--segments`` steps' logged
  totals; a GAN's is its discriminator's) and a held-out metric on the test images: the NLL
  in nats per image where the model has one, labelled for what it is (MADE's exact; the
  flow's and the mixture's through uniform dequantisation, an upper bound on the discrete
  pixels' NLL, Theis et al. 2016; the RBM's AIS estimate), the VAE's negative ELBO (a bound,
  one posterior draw), else the model's own loss on test images with a fixed seed (DDPM's
  noise-prediction error; a GAN's discriminator loss, no quality measure);
- the accuracy flag (``vs float32, same seeds``): ``worse`` where a setting's loss or metric
  (its mean over its seeds) is above float32's on the same seeds by more than float32's
  seed-to-seed spread (the absolute difference of its seeds 0 and 1). Compiled runs do not
  repeat eager runs bit for bit even in float32: inductor draws its random numbers
  (``rand``, ``randn``, ``bernoulli`` inside the loss) with its own generator.

The EM ``gmm`` takes no gradient step (its ``fit_step`` is closed-form EM in float64, outside
autocast and compile): neither setting applies to it, so the mixture row is ``deep-gmm``
with ``fit="gradient"`` (Viroli & McLachlan 2019's model trained by gradient descent on its
exact negative log-likelihood), on 8x8 ``digits`` (17 levels, dequantised): its step is
cubic in the dimension (the factor analysers' covariances), about 6 s at 1024 pixels on the
shared machine.

``--device cuda`` runs the same on a GPU and adds ``fp16-mixed`` (float16 with a gradient
scaler, Micikevicius et al. 2018) and ``fp16-mixed`` + ``compile``. No GPU was available for
the measurements below: the CUDA path is untested.

Run (the default)::

    .venv/bin/python benchmarks/precision_compile.py --out runs/precision_compile.json

Smoke run: ``--steps 4 --segments 2 --n-train 256 --n-test 64 --seeds 2 --families vae``.

Measured: see ``MEASURED`` below.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

MEASURED = """
2026-12-07, AMD EPYC (avx512_bf16), 2 cores shared with 6 other jobs (load average 14-17),
torch 2.13.0+cpu, 2 threads, no GPU; the default run, interrupted in the score family after
29 minutes (DDPM's test NLL, since replaced by its test loss, took too long): score, flow and
gan not measured. Sprites 32x32 for made (NLL exact, nats), vae (-ELBO, a bound) and rbm (NLL,
AIS estimate); digits 8x8 for deep-gmm (dequantised NLL, a bound). N = 150 steps, 2 seeds
eager, 1 compiled; "1st call s": the first segment's time above the steady state (compile).

| model | setting | steps/s | vs f32 | 1st call s | loss | held-out | accuracy vs f32 |
|---|---|--:|--:|--:|--:|--:|---|
| made | float32 | 4.6 | 1.00x | 1 | 0.1265 | 127.3 |  |
| made | bf16 | 4.7 | 1.02x | 1 | 0.126 | 127.3 | within spread |
| made | float32+compile | 1.4 | 0.31x | 61 | 0.1246 | 125.4 | within spread |
| made | bf16+compile | 2.1 | 0.46x | 40 | 0.125 | 126 | within spread |
| vae | float32 | 2.2 | 1.00x | 0 | 121.8 | 121.6 |  |
| vae | bf16 | 7.7 | 3.42x | 0 | 121.9 | 121.6 | within spread |
| vae | float32+compile | 3.8 | 1.69x | 50 | 121.4 | 121.2 | within spread |
| vae | bf16+compile | 5.5 | 2.44x | 73 | 121.5 | 121.2 | within spread |
| rbm | float32 | 18.0 | 1.00x | 1 | 0.17 | 109.5 |  |
| rbm | bf16 | fails: message, see below |||||
| rbm | float32+compile | 2.8 | 0.15x | 11 | -14.31 | 131.8 | worse (metric) |
| rbm | bf16+compile | fails: message, see below |||||
| deep-gmm | float32 | 15.5 | 1.00x | 0 | 79.07 | 258.5 |  |
| deep-gmm | bf16 | 12.9 | 0.83x | 0 | 79.21 | 258.7 | worse (loss, metric) |
| deep-gmm | float32+compile | 0.7 | 0.04x | 41 | 79.05 | 258.5 | within spread |
| deep-gmm | bf16+compile | 1.6 | 0.10x | 65 | 79.19 | 258.7 | worse (loss, metric) |

rbm bf16: "rbm cannot train under precision 'bf16-mixed' (RuntimeError: dot : expected both
vectors to have same dtype, but found Float and BFloat16); train it with --precision 32".
rbm bf16+compile: "rbm cannot be compiled by torch.compile under precision 'bf16-mixed'
(TorchRuntimeError: ... <- RuntimeError: dot : expected both vectors to have same dtype ...);
train it without --compile (compile=False) or with --precision 32" (the run itself printed
the message before it named the cause). Speeds on so loaded a machine are noisy: the VAE's
float32 seed-0 run met a load spike, so its 3.4x for bf16 is not to be trusted (MADE's 1.02x
is the steadier reading); the compiled rbm and deep-gmm runs are 7-25x slower than eager in
the steady state (not investigated: recompiles or graph breaks are likely).
"""


@dataclass(frozen=True)
class Spec:
    """One family's model, hyper-parameters, batch size and learning rate."""

    model: str
    hparams: dict = field(default_factory=dict)
    batch_size: int = 64
    lr: float = 1e-3
    steps: int = 200
    data: str = "sprites"


#: In the order run (the cheapest first). ``data``: "sprites" (pooled to ``--image-size``) or
#: "digits" (8x8, 17 levels): the deep mixture's gradient step is cubic in the dimension (its
#: factor analysers' covariances), about 6 s a step at 1024 pixels on the shared machine.
FAMILIES: dict[str, Spec] = {
    "autoregressive": Spec("made", {"hidden": [512, 512]}, 64, 1e-3, 150),
    "vae": Spec(
        "vae", {"network": "mlp", "hidden": 512, "depth": 2, "latent_dim": 16}, 64, 1e-3, 150
    ),  # fmt: skip
    "energy": Spec("rbm", {"n_hidden": 256, "persistent": True, "n_chains": 64}, 64, 0.05, 150),
    "mixture": Spec(
        "deep-gmm", {"fit": "gradient", "n_components": [4, 2]}, 64, 1e-3, 150, "digits"
    ),  # fmt: skip
    "score": Spec("ddpm", {"channels": 8}, 32, 2e-3, 30),
    "flow": Spec("realnvp", {"n_layers": 4, "hidden": 128, "multiscale": False}, 64, 1e-3, 30),
    "gan": Spec("gan", {"hidden": 16, "latent_dim": 32}, 64, 2e-4, 30),
}

#: Models whose test NLL costs far more than their training here: DDPM's bound sums its
#: 1000 timesteps' terms (a U-Net pass each per image); their held-out metric is the test loss.
COSTLY_NLL = ("ddpm",)

#: (label, precision, compile) of the settings compared on CPU; CUDA adds fp16.
SETTINGS = [("float32", "32", False), ("bf16", "bf16-mixed", False),
            ("float32+compile", "32", True), ("bf16+compile", "bf16-mixed", True)]  # fmt: skip
CUDA_SETTINGS = [("fp16", "fp16-mixed", False), ("fp16+compile", "fp16-mixed", True)]


def load_images(split: str, n: int, size: int, data: str = "sprites") -> torch.Tensor:
    """``n`` sprites of ``split`` as (n, 1, size, size) 0/1 levels (2x2 max-pooled for 32);
    for ``data="digits"`` the 8x8 digits (17 levels; at most 1000 train, 447 test)."""
    import genzoo

    if data == "digits":
        return genzoo.load_dataset("digits", split=split)[:n]
    x = genzoo.load_dataset("sprites", split=split, n=n)
    if size != 64:
        x = F.max_pool2d(x.float(), 64 // size)
    return x


def make_model(spec: Spec, x: torch.Tensor, seed: int):
    """The family's model, its parameters drawn from ``seed``."""
    import genzoo

    torch.manual_seed(seed)
    return genzoo.create(spec.model, data=x, **spec.hparams)


def levels_of(spec: Spec) -> int:
    return 17 if spec.data == "digits" else 2


def transform_for(model, levels: int):
    """Uniform dequantisation for a continuous model on the levels, else ``None``."""
    from genzoo.workflow import batch_transform

    return batch_transform(model.data_kind, levels)


def held_out(model, x_test: torch.Tensor, levels: int) -> tuple[float | None, str]:
    """The held-out metric (lower is better) and what it is."""
    from genzoo.errors import DensityUnavailable
    from genzoo.metrics import negative_log_likelihood
    from genzoo.train.distributed import split_terms

    model.eval()
    try:
        with torch.no_grad():
            if model.name == "vae":  # the negative ELBO (cheap; IWAE would be tighter)
                g = torch.Generator().manual_seed(0)
                return -float(model.elbo(x_test, samples=1, generator=g).mean()), "-ELBO (bound)"
            if model.name in COSTLY_NLL:
                raise DensityUnavailable(model.name)  # to the test loss below
            torch.manual_seed(0)
            nll = negative_log_likelihood(model, x_test, levels=levels)
        return float(nll["nll"]), f"NLL ({nll['nll_kind']})"
    except DensityUnavailable:
        pass
    finally:
        model.train()
    # the model's own loss on test images, with a fixed seed (its first player's)
    player = model.players[0]
    transform = transform_for(model, levels)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    values = []
    with torch.no_grad():
        for batch in x_test.split(256):
            batch = transform(batch, g) if transform is not None else batch
            total, _ = split_terms(model.loss(batch, player))
            values.append(float(total) * len(batch))
    return sum(values) / len(x_test), f"test loss ({player})"


def total_loss(row: dict, player: str, prefixed: bool) -> float:
    """A logged row's total loss of ``player``: the sum of its terms other than ``diag/``."""
    prefix = f"{player}/" if prefixed else ""
    terms = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
    return sum(
        v for k, v in terms.items() if not k.startswith("diag/") and k not in ("step", "time")
    )


def segments(history: list[dict], log_every: int) -> list[float]:
    """Seconds of each logged segment of ``log_every`` steps (the last may be shorter: dropped)."""
    times, steps = [0.0], [0]
    for row in history:
        if "time" in row and "step" in row and row["step"] != steps[-1]:
            times.append(row["time"])
            steps.append(row["step"])
    return [t1 - t0 for t0, t1, s0, s1 in zip(times, times[1:], steps, steps[1:], strict=False)
            if s1 - s0 == log_every]  # fmt: skip


def one_run(spec, x, x_test, seed, precision, compile_, args) -> dict:
    """Train a fresh model ``args.steps`` steps in one setting; its timings, loss, metric."""
    import genzoo

    if compile_:
        torch._dynamo.reset()  # a fresh compile each run (and no recompile limit across runs)
    model = make_model(spec, x, seed)
    steps = args.steps or spec.steps
    log_every = steps // args.segments
    trainer = genzoo.Trainer(steps=steps, batch_size=spec.batch_size, lr=spec.lr,
                             seed=seed, precision=precision, compile=compile_,
                             log_every=log_every, progress=False, device=args.device,
                             transform=transform_for(model, levels_of(spec)))  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, x)
    wall = time.perf_counter() - start
    rows = [r for r in trainer.history if "time" in r]
    player, prefixed = model.players[0], len(model.players) > 1
    # the last k steps' mean: the logged rows are means over log_every steps
    tail = [total_loss(r, player, prefixed) for r in rows[-args.last_segments :]]
    metric, metric_kind = held_out(model, x_test.to(args.device), levels_of(spec))
    return {"seconds": segments(rows, log_every), "wall": wall, "steps": steps,
            "log_every": log_every, "loss": sum(tail) / len(tail), "loss_key": player,
            "metric": metric, "metric_kind": metric_kind}  # fmt: skip


def short_error(err: BaseException) -> str:
    """The first line of an error, with its type."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def run_family(family: str, spec: Spec, settings, args) -> dict:
    """Every setting for every seed, interleaved; the per-setting summary."""
    x = load_images("train", args.n_train, args.image_size, spec.data).to(args.device)
    x_test = load_images("test", args.n_test, args.image_size, spec.data)
    runs: dict[str, list[dict]] = {label: [] for label, *_ in settings}
    errors: dict[str, str] = {}
    for i, seed in enumerate(range(args.seed, args.seed + args.seeds)):
        order = settings[i % len(settings):] + settings[:i % len(settings)]  # fmt: skip
        for label, precision, compile_ in order:
            if label in errors or (compile_ and i >= args.compile_seeds):
                continue
            try:
                run = one_run(spec, x, x_test, seed, precision, compile_, args)
            except Exception as err:  # a finding: recorded, the other settings go on
                errors[label] = short_error(err)
                print(f"  {family} {label} seed {seed}: FAILED {errors[label]}", flush=True)
                if args.verbose:
                    traceback.print_exc()
                continue
            runs[label].append(run)
            print(f"  {family} {label} seed {seed}: {len(run['seconds'])} segments, "
                  f"loss {run['loss']:.4f}, {run['metric_kind']} {run['metric']:.4f}, "
                  f"wall {run['wall']:.1f}s", flush=True)  # fmt: skip
    return summarise(family, spec, runs, errors, args)


def summarise(family, spec, runs, errors, args) -> dict:
    """Steps/s, first-call time, loss and metric per setting; the bf16 accuracy flag."""
    rows = []
    for label, done in runs.items():
        if label in errors:
            rows.append({"setting": label, "error": errors[label]})
            continue
        if not done:  # not run (--compile-seeds 0)
            continue
        steady = [s for run in done for s in run["seconds"][1:]] or [
            s for run in done for s in run["seconds"]]  # fmt: skip
        per_segment = statistics.median(steady)
        first = [run["seconds"][0] - per_segment for run in done if run["seconds"]]
        rows.append({
            "setting": label,
            "steps_per_s": done[0]["log_every"] / per_segment,
            "steps": done[0]["steps"], "seeds": len(done),
            "first_call_s": first[0] if first else None,
            "first_call_warm_s": statistics.median(first[1:]) if len(first) > 1 else None,
            "loss": statistics.mean(r["loss"] for r in done),
            "losses": [r["loss"] for r in done],
            "loss_key": done[0]["loss_key"],
            "metric": statistics.mean(r["metric"] for r in done),
            "metrics": [r["metric"] for r in done],
            "metric_kind": done[0]["metric_kind"],
        })  # fmt: skip
    base = next((r for r in rows if r["setting"] == "float32" and "error" not in r), None)
    for r in rows:
        if base is None or "error" in r:
            continue
        r["speedup"] = r["steps_per_s"] / base["steps_per_s"]
        if r["setting"] == "float32" or len(base["losses"]) < 2:
            continue
        worse = []
        for what, many in (("loss", "losses"), ("metric", "metrics")):
            spread = abs(base[many][0] - base[many][1])
            spread = max(spread, 1e-6 * abs(base[what]))
            # against float32 on the same seeds
            diff = statistics.mean(r[many]) - statistics.mean(base[many][: len(r[many])])
            r[what + "_diff"], r[what + "_spread"] = diff, spread
            if diff > spread:
                worse.append(f"{what} +{diff:.3g} > spread {spread:.3g}")
        r["accuracy"] = "worse: " + "; ".join(worse) if worse else "within spread"
    config = ", ".join(f"{k}={v}" for k, v in spec.hparams.items())
    return {"family": family, "model": spec.model, "config": config,
            "batch_size": spec.batch_size, "lr": spec.lr, "rows": rows}  # fmt: skip


def _f(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def table(results: dict) -> str:
    """The markdown table of a run."""
    lines = ["| family | model | setting | steps/s | speed-up | first call (s): cold / warm "
             "| train loss (last N/5 steps) | held-out metric | vs float32, same seeds |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for fam in results["families"]:
        for r in fam["rows"]:
            head = f"| {fam['family']} | {fam['model']} | {r['setting']} |"
            if "error" in r:
                lines.append(f"{head} failed: {r['error']} ||||||")
                continue
            first = f"{_f(r['first_call_s'], '.1f')} / {_f(r['first_call_warm_s'], '.1f')}"
            lines.append(
                f"{head} {_f(r['steps_per_s'], '.1f')} | {_f(r.get('speedup'), '.2f')}x | "
                f"{first} | {_f(r['loss'], '.4g')} | {_f(r['metric'], '.4g')} "
                f"({r['metric_kind']}) | {r.get('accuracy', '')} |"
            )
    return "\n".join(lines)


def machine(args) -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpu} CPU"
    return f"{where}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--steps", type=int, default=0,
                        help="training steps per run (N; default: the family's)")  # fmt: skip
    parser.add_argument("--segments", type=int, default=5, help="timed segments of a run")
    parser.add_argument("--last-segments", type=int, default=1,
                        help="segments the final training loss averages (the last N/segments "
                        "steps by default)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=2, help="seeds per setting (>= 2: spread)")
    parser.add_argument("--compile-seeds", type=int, default=1,
                        help="seeds of the compiled settings (the first of --seeds)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=32, choices=[16, 32, 64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default="runs/precision_compile.json")
    parser.add_argument("--verbose", action="store_true", help="print failures' tracebacks")
    parser.add_argument("--table", metavar="JSON", help="print the table of a (partial) run")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return
    if args.segments < 2 or (args.steps and args.steps % args.segments):
        parser.error("--segments must be >= 2 and divide --steps")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    # a cold inductor cache, so the first compile of each model is timed in full
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="genzoo-inductor-"))
    settings = SETTINGS + (CUDA_SETTINGS if args.device == "cuda" else [])
    results = {"machine": machine(args), "command": " ".join(sys.argv), "args": vars(args),
               "families": []}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for family in args.families:
        start = time.perf_counter()
        print(f"{family} ({FAMILIES[family].model}) ...", flush=True)
        results["families"].append(run_family(family, FAMILIES[family], settings, args))
        print(f"{family}: {time.perf_counter() - start:.0f}s", flush=True)
        out.write_text(json.dumps(results, indent=1))
    results["table"] = table(results)
    out.write_text(json.dumps(results, indent=1))
    print(f"\n{results['machine']}; {args.seeds} seeds ({args.compile_seeds} compiled), "
          f"sprites {args.image_size}x{args.image_size}\n")  # fmt: skip
    print(results["table"])


if __name__ == "__main__":
    main()
