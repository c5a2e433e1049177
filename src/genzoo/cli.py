"""The ``genzoo`` command: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _parse_set(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON where they parse, else kept as text."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"genzoo: error: --set expects key=value, got {pair!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def cmd_list(args: argparse.Namespace) -> None:
    import genzoo

    if args.what in ("models", "all"):  # density: every kind the model's config may give
        print(f"{'model':<14} {'family':<10} {'density':<18} description")
        for m in genzoo.list_models():
            kinds = "|".join(m.density_kinds or (m.density,))
            print(f"{m.name:<14} {m.family:<10} {kinds:<18} {m.description}")
    if args.what == "all":
        print()
    if args.what in ("datasets", "all"):
        print(f"{'dataset':<21} {'kind':<8} {'shape':<10} {'condition':<13} description")
        for d in genzoo.list_datasets():
            shape = "x".join(map(str, d.shape))
            cond = "-"
            if d.condition is not None:
                cond = f"{d.condition.name}:{d.condition.size}"
            print(f"{d.name:<21} {d.kind:<8} {shape:<10} {cond:<13} {d.description}")


def cmd_train(args: argparse.Namespace) -> None:
    from genzoo.target_fitting import evaluate_target, fit_target
    from genzoo.train.distributed import is_main_process
    from genzoo.workflow import evaluate, train

    if (args.data is None) == (args.target is None):
        raise SystemExit("genzoo: error: give exactly one of --data DATASET or --target NAME")
    if args.target is not None:
        out = args.out or f"runs/{args.model}-{args.target}"
        given = {k: v for k, v in (("steps", args.steps), ("lr", args.lr)) if v is not None}
        fit_target(args.model, args.target, out=out, hparams=_parse_set(args.set), **given,
                   seed=args.seed, device=args.device,
                   dtype=args.dtype, clip_grad=args.clip_grad, resume=args.resume,
                   force=args.force)  # fmt: skip
        if not is_main_process():  # under torchrun, rank 0 alone reports
            return
        print(json.dumps(evaluate_target(out), indent=2))
        print(f"run saved in {out}")
        return
    out = args.out or f"runs/{args.model}-{Path(args.data).stem}"
    if args.image_size is not None:  # a data option of image folders, kept in the name
        from genzoo.data import image_folder_spec

        args.data = image_folder_spec(args.data, args.image_size)
    model, trainer = train(
        args.model,
        args.data,
        out=out,
        hparams=_parse_set(args.set),
        n=args.n,
        data_seed=args.seed,
        condition=args.condition,
        condition_column=args.condition_column,
        steps=args.steps,
        batch_size=args.batch_size,
        batch_order=args.batch_order,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        clip_grad=args.clip_grad,
        resume=args.resume,
        force=args.force,
        **_loop_settings(args),
    )
    if not is_main_process():  # under torchrun, rank 0 alone reports
        return
    last = trainer.history[-1] if trainer.history else {}
    print(f"trained {model.name} on {args.data}: {json.dumps(last)}")
    print(json.dumps(evaluate(out), indent=2))
    print(f"run saved in {out}")


def _loop_settings(args: argparse.Namespace) -> dict:
    """The Trainer's training-loop settings from ``genzoo train``'s flags; TensorBoard is on
    when the package is installed, unless ``--no-tensorboard``."""
    from genzoo.train import tensorboard

    settings = {"lr_schedule": args.lr_schedule, "warmup_steps": args.warmup_steps,
                "accumulate": args.accumulate, "ema": args.ema, "precision": args.precision,
                "compile": args.compile}  # fmt: skip
    settings["tensorboard"] = (
        tensorboard.available() if args.tensorboard is None else args.tensorboard
    )
    return settings


def cmd_sample(args: argparse.Namespace) -> None:
    from genzoo.io import atomic_write
    from genzoo.plotting import plot_samples
    from genzoo.workflow import generate_text, sample

    if args.n < 1:
        raise ValueError(f"-n must be at least 1 (samples to draw), got {args.n}")
    text_options = {"temperature": args.temperature, "top_k": args.top_k,
                    "top_p": args.top_p, "length": args.length}  # fmt: skip
    if args.prompt is not None or any(v is not None for v in text_options.values()):
        options = {k: v for k, v in text_options.items() if v is not None}
        for line in generate_text(args.run, args.n, args.prompt, args.seed, **options):
            print(line)
        return

    out = Path(args.out or Path(args.run) / "samples.npy")
    if out.suffix != ".npy":  # numpy would add it after the check below
        out = out.with_name(out.name + ".npy")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    # read by sample: a class, numbers, or the input text of a language model of P(y | x)
    x = sample(args.run, args.n, seed=args.seed, condition=args.condition, guidance=args.guidance,
               sampler=args.sampler, steps=args.steps, eta=args.eta, order=args.order)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: numpy adds no second extension
            np.save(f, x.numpy())

    atomic_write(out, write)
    print(f"wrote {args.n} samples to {out}")
    if args.condition is not None and not x.dtype.is_floating_point:  # text given an input?
        from genzoo.data.text import tokenizer_for
        from genzoo.errors import DataError

        try:
            tokenizer = tokenizer_for(Path(args.run))
        except DataError:  # not trained on text: the .npy is all
            tokenizer = None
        for line in tokenizer.decode_batch(x) if tokenizer is not None else []:
            print(line)
    if args.plot:
        print(f"wrote {plot_samples(x, args.plot, title=str(args.run))}")


def cmd_eval(args: argparse.Namespace) -> None:
    from genzoo.io import RUN_INFO_FILE, load_model, read_json
    from genzoo.models.capabilities import model_facts
    from genzoo.target_fitting import evaluate_target
    from genzoo.workflow import evaluate

    info = read_json(Path(args.run) / RUN_INFO_FILE)
    if "target" in info and args.data is None:
        result = evaluate_target(args.run)
    else:
        result = evaluate(args.run, dataset=args.data, n=args.n,
                          dequantization_draws=args.dequantization_draws,
                          disentanglement=not args.no_disentanglement)  # fmt: skip
    # what this model is (its config decides): density kind, data kind, players, capabilities
    result.update(model_facts(load_model(args.run)))
    print(json.dumps(result, indent=2))


def cmd_figures(args: argparse.Namespace) -> None:
    from genzoo.figures.catalogue import run_figures

    out = Path(args.out) if args.out else Path(args.run) / "figures"
    if out.exists() and any(out.iterdir()) and not args.force:
        raise FileExistsError(f"{out} already holds files: pass --force to overwrite them, "
                              "or --out another folder")  # fmt: skip
    for path in run_figures(args.run, out, seed=args.seed):
        print(f"wrote {path}")


def cmd_bench(args: argparse.Namespace) -> None:
    from genzoo.bench import run_bench
    from genzoo.bench.grid import condition_slug

    if args.out is None:
        args.out = "runs/bench" if args.condition is None else (
            f"runs/bench-{condition_slug(args.condition)}")  # fmt: skip
    run_bench(
        out=args.out,
        condition=args.condition,
        quick=args.quick,
        models=args.models,
        datasets=args.datasets,
        seeds=args.seeds,
        device=args.device,
        force=args.force,
        jobs=args.jobs,
        lr_factors=args.lr_factors,
        data=args.data,
        budget_seconds=args.budget_seconds,
        keep_failed=args.keep_failed,
        executor=args.executor,
        executor_options={
            k: getattr(args, k)
            for k in ("address", "cpus_per_cell", "gpus_per_cell", "partition", "time_minutes")
            if getattr(args, k) is not None
        },
    )
    print(f"report: {Path(args.out) / 'report.html'} and {Path(args.out) / 'report.md'}")


def cmd_report(args: argparse.Namespace) -> None:
    from genzoo.bench import write_report

    for path in write_report(args.bench_dir):
        print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genzoo", description="Every type of generative model, one API, measured."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list models or datasets")
    p.add_argument("what", nargs="?", default="all", choices=["models", "datasets", "all"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train a model on a dataset")
    p.add_argument("model")
    p.add_argument("--data", help="dataset name or a .npy/.npz/.csv path")
    p.add_argument("--target", help="fit an unnormalised target density instead (u1..u4)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: the model's recommended budget for the "
                        "dataset, as genzoo bench uses, from genzoo/bench/budgets.py)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=None,
                   help="examples per step (default: the recommended budget's)")  # fmt: skip
    p.add_argument("--batch-order", default="random", choices=["random", "epochs"],
                   help="random batches with replacement, or shuffled sweeps (epochs)")  # fmt: skip
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the recommended budget's); hyper-parameters "
                        "not given with --set also come from the budget")  # fmt: skip
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyper-parameter of the model (repeatable)",
    )
    p.add_argument(
        "--condition",
        metavar="NAME",
        help="train the conditional model Q(x | c) on what the dataset carries "
        "beside each example (genzoo list datasets: label, features, ...)",
    )
    p.add_argument("--condition-column", metavar="NAME",
                   help="a CSV file's column holding the condition (taken out of the "
                        "examples; implies --condition NAME)")  # fmt: skip
    p.add_argument("--image-size", type=int, metavar="N",
                   help="--data FOLDER of PNG/JPEG images: resize (shorter side) and "
                        "centre-crop every image to N x N (needs genzoo[images])")  # fmt: skip
    p.add_argument("--out", help="run folder (default runs/MODEL-DATA)")
    p.add_argument("--n", type=int, help="number of training examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--clip-grad", type=float)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="overwrite the run in --out")
    p.add_argument("--lr-schedule", choices=["constant", "linear", "cosine"],
                   help="decay of the learning rate to zero at the last step (default: the "
                        "model's recommended budget for the data, else constant)")  # fmt: skip
    p.add_argument("--warmup-steps", type=int, default=0, metavar="N",
                   help="linear learning-rate warm-up over the first N steps")  # fmt: skip
    p.add_argument("--accumulate", type=int, default=1, metavar="K",
                   help="sum the gradients of K batches into each optimiser step")  # fmt: skip
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.999), "
                        "used for sampling and evaluation")  # fmt: skip
    p.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "fp16-mixed"],
                   help="mixed precision: bf16-mixed (CPU, CUDA), fp16-mixed (CUDA)")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="run the losses through torch.compile")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="write TensorBoard event files into RUN/tensorboard (default: when "
                        "tensorboard is installed, pip install genzoo[tensorboard])")  # fmt: skip
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run")
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--out", help="where to write the .npy (default RUN/samples.npy)")
    p.add_argument("--plot", help="also write a picture (.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--condition", metavar="C",
                   help="conditional models: the class (3) or vector (0.5,-1,2) to sample "
                        "given; language models of P(output | input): the input text (abc; "
                        "prints the outputs)")  # fmt: skip
    p.add_argument("--guidance", type=float, metavar="W",
                   help="score models trained with --condition: classifier-free guidance "
                        "scale w >= 0, eps(null) + w (eps(c) - eps(null)): 0 unconditional, "
                        "1 conditional (default), > 1 guided; Ho & Salimans' w is this "
                        "w - 1")  # fmt: skip
    p.add_argument("--sampler", help="score models: the sampler (ddpm: ancestral, ode, ddim, "
                   "dpm-solver; score-sde: pc, ode, and ddim, dpm-solver for VP; default: "
                   "the run's)")  # fmt: skip
    p.add_argument("--steps", type=int, help="score models: sampler steps (network "
                   "evaluations for ddim and dpm-solver; default: the run's)")  # fmt: skip
    p.add_argument("--eta", type=float, help="--sampler ddim: 0 deterministic (default) .. 1 "
                   "ancestral")  # fmt: skip
    p.add_argument("--order", type=int, choices=(1, 2, 3),
                   help="--sampler dpm-solver: solver order (default 3)")  # fmt: skip
    p.add_argument("--prompt", help="language models: text to continue (prints text)")
    p.add_argument("--temperature", type=float, help="language models: softmax temperature")
    p.add_argument("--top-k", type=int, help="language models: keep the k likeliest tokens")
    p.add_argument("--top-p", type=float, help="language models: nucleus probability mass")
    p.add_argument("--length", type=int, help="language models: tokens per sample")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="test metrics of a trained run, as JSON")
    p.add_argument("run")
    p.add_argument("--data", help="dataset to evaluate on (default: the training dataset)")
    p.add_argument("--n", type=int, help="number of test examples (default: all; 1000 of "
                                         "data streamed from disk)")  # fmt: skip
    p.add_argument("--dequantization-draws", type=int, default=1, metavar="K",
                   help="continuous models on discrete data (and Glow with variational "
                        "dequantisation): importance-weighted noise draws of the "
                        "dequantisation bound (more draws, tighter bound)")  # fmt: skip
    p.add_argument("--no-disentanglement", action="store_true",
                   help="VAEs on sprites: skip the beta-VAE metric and MIG (reported by "
                        "default; they encode about 20,000 images)")  # fmt: skip
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("figures", help="draw every figure that applies to a trained run")
    p.add_argument("run")
    p.add_argument("--out", help="folder for the figures (default: RUN/figures)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite figures already there")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("bench", help="train and compare the families; write the report")
    p.add_argument("--quick", action="store_true", help="small budgets: minutes on a laptop")
    p.add_argument("--models", nargs="+")
    p.add_argument("--datasets", nargs="+", help="shipped datasets (default: the preset's)")
    p.add_argument("--data", nargs="+", metavar="FILE",
                   help="your own files (.npy .npz .csv IDX text): every model that accepts "
                        "them is trained and compared")  # fmt: skip
    p.add_argument(
        "--seeds",
        type=int,
        help="seeds per cell (preset: quick 1, full 3); reported as mean ± s.e.",
    )
    p.add_argument("--budget-seconds", type=float, metavar="S",
                   help="equal compute: train every cell for S seconds of training time "
                        "instead of its step budget")  # fmt: skip
    p.add_argument("--jobs", type=int, help="cells trained at once (default: CPU cores)")
    p.add_argument("--lr-factors", type=float, nargs="+",
                   help="learning-rate multipliers for the stability sweep "
                        "(preset: quick 1, full 1 10)")  # fmt: skip
    p.add_argument("--condition", metavar="NAME",
                   help="benchmark conditional generation: models that can take it are "
                        "trained as Q(x | c) on the datasets carrying NAME (label); "
                        "cond. NLL, Bayes accuracy, sample class accuracy")  # fmt: skip
    p.add_argument("--out", help="the bench folder (default runs/bench; with --condition "
                                 "NAME runs/bench-NAME)")  # fmt: skip
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--force", action="store_true", help="redo every cell (else finished ones are kept)"
    )
    p.add_argument(
        "--keep-failed",
        action="store_true",
        help="do not retry cells that failed (by default they are trained again)",
    )
    cluster = p.add_argument_group("on a cluster (the bench folder on storage every worker sees)")
    cluster.add_argument("--executor", default="local", choices=["local", "ray", "slurm"],
                         help="where cells run: this machine (--jobs), one Ray task each "
                              "(pip install 'genzoo[ray]'), or one job of a Slurm job array "
                              "each (pip install 'genzoo[slurm]')")  # fmt: skip
    cluster.add_argument("--address", metavar="ADDR",
                         help="ray: the cluster to join (default: start a local Ray)")  # fmt: skip
    cluster.add_argument("--cpus-per-cell", type=float, metavar="N",
                         help="ray, slurm: CPUs for each cell (default 1)")  # fmt: skip
    cluster.add_argument("--gpus-per-cell", type=float, metavar="N",
                         help="ray, slurm: GPUs for each cell (default 0)")  # fmt: skip
    cluster.add_argument("--partition", help="slurm: the partition (default: the cluster's)")
    cluster.add_argument("--time-minutes", type=int, metavar="M",
                         help="slurm: each cell's time limit (default 60)")  # fmt: skip
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="write report.md and report.html for a bench folder")
    p.add_argument("bench_dir")
    p.set_defaults(func=cmd_report)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line as one line, without the source location."""
    return f"genzoo: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genzoo`` command."""
    from genzoo.errors import GenzooError

    args = build_parser().parse_args(argv)
    warnings.formatwarning = _one_line_warning
    try:
        args.func(args)
    except (GenzooError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"genzoo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
