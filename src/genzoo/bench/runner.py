"""The grid runner: train every model on every dataset and seed, measure, keep the pictures.

Each cell is a training run in its own process (as many at once as there are cores), with
its folder ``out/runs/MODEL__DATASET__SEED/`` and, when done, ``result.json`` written
atomically. A benchmark that is interrupted resumes: finished cells are read back, never
redone, but only when they were computed with the same settings (steps or time budget,
learning rate, batch size, hyper-parameters, genzoo version: the cell's ``identity``); a
folder holding cells of other settings is refused, never mixed. Failed cells are retried.
``results.csv`` and ``results.jsonl`` are rebuilt from the cells after each one.

One benchmark at a time writes a folder (an OS lock), each cell in training holds its own
lock, and the worker processes end with the benchmark, even when it is killed by ``kill -9``.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import re
import shutil
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from genzoo import __version__
from genzoo.bench.grid import PRESETS, SHIPPED, Cell, budget_for, cell_name, cells
from genzoo.bench.report import REFERENCES_FILE, write_report
from genzoo.data import dataset_info
from genzoo.errors import RunExistsError, RunLockedError, TrainingDiverged
from genzoo.figures.catalogue import figure_data, sample_figures
from genzoo.io import atomic_write, read_json, write_json
from genzoo.models.capabilities import StepSampler
from genzoo.plotting import plot_losses
from genzoo.registry import list_models, model_class
from genzoo.train.runfolder import folder_lock

RESULT_FILE = "result.json"
#: The lock a cell holds while it trains (the training run inside holds the run's own lock).
CELL_LOCK = ".genzoo-cell.lock"
#: Seconds between a worker's checks that the benchmark that started it is still alive.
PARENT_CHECK_SECONDS = 0.5
#: The suffix of an equal-time cell's folder name: ``__{seconds}s``.
TIMED = re.compile(r"__[0-9.e+-]+s")
#: Sample-quality evaluations during each run (for time-to-target and quality-vs-time).
TRACKED_POINTS = 5
#: Quality at several sampler step counts, for models whose budget lists them.
STEPS_FILE = "quality_vs_steps.json"
FIRST_COLUMNS = [
    "model", "family", "dataset", "seed", "lr_factor", "status", "density", "measure", "steps",
]  # fmt: skip


def cell_dir(
    out: Path,
    model: str,
    dataset: str,
    seed: int,
    lr_factor: float = 1.0,
    budget_seconds: float | None = None,
) -> Path:
    """The folder of one cell."""
    return out / "runs" / cell_name(model, dataset, seed, lr_factor, budget_seconds)


def run_bench(
    out: str | Path = "runs/bench",
    quick: bool = False,
    models: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    seeds: int | None = None,
    device: str = "cpu",
    force: bool = False,
    jobs: int | None = None,
    lr_factors: Sequence[float] | None = None,
    data: Sequence[str] | None = None,
    budget_seconds: float | None = None,
    keep_failed: bool = False,
) -> list[Path]:
    """Run the grid (resuming finished cells), write the results, then the report.

    ``data`` holds the user's files (``.npy``, ``.npz``, ``.csv``, IDX, text): every model that
    accepts a file's kind, shape and levels is trained on it, beside any ``datasets``.
    ``budget_seconds`` trains every cell for that much wall-clock training time (evaluation
    excluded) instead of its budget's step count: the equal-compute comparison.
    Cells that failed (an error, not a divergence) are trained again unless ``keep_failed``.
    """
    if budget_seconds is not None and not budget_seconds > 0:
        raise ValueError(f"budget_seconds must be > 0, got {budget_seconds}")
    with folder_lock(out, "benchmark"):
        return _run_bench_locked(
            Path(out), quick, models, datasets, seeds, device, force, jobs, lr_factors, data,
            budget_seconds, keep_failed,
        )  # fmt: skip


def _run_bench_locked(
    out, quick, models, datasets, seeds, device, force, jobs, lr_factors, data, budget_seconds,
    keep_failed,
) -> list[Path]:  # fmt: skip
    if force and (out / "runs").exists():
        shutil.rmtree(out / "runs")
        for name in ("results.csv", "results.jsonl", "report.md", "report.html"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    preset = PRESETS["quick" if quick else "full"]
    names = list(models) if models else [m.name for m in list_models()]
    for name in names:
        model_class(name)  # unknown names fail before any training
    files = [str(path) for path in data or ()]
    for path in files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--data {path}: no such file")
    explicit = bool(datasets or files)
    data_names = list(datasets or ()) + files if explicit else list(preset.datasets)
    for name in data_names:
        dataset_info(name)
    n_seeds = preset.seeds if seeds is None else seeds
    if n_seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {n_seeds}")
    factors = tuple(lr_factors) if lr_factors else preset.lr_factors
    grid = cells(names, data_names, n_seeds, explicit=explicit, lr_factors=factors)
    if not grid:
        raise ValueError(
            f"no model accepts {', '.join(data_names)}: see `genzoo list` for what each "
            "model and dataset is"
        )
    todo = _cells_to_run(out, grid, quick, budget_seconds, keep_failed)
    _write_references(out, sorted({c[1] for c in grid}))
    if len(todo) < len(grid):
        tqdm.write(f"resuming: {len(grid) - len(todo)} of {len(grid)} cells already done")
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(total=len(grid), initial=len(grid) - len(todo), desc="bench", unit="cell",
               disable=None)  # fmt: skip
    if jobs == 1:
        for cell in todo:
            _report_cell(run_cell(str(out), *cell, quick, device, budget_seconds), bar)
            collect(out, grid)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_end_with_parent, initargs=(os.getpid(),)
        ) as pool:
            futures = [
                pool.submit(run_cell, str(out), *c, quick, device, budget_seconds) for c in todo
            ]
            for future in as_completed(futures):
                _report_cell(future.result(), bar)
                collect(out, grid)
    bar.close()
    collect(out, grid)
    return write_report(out)


def cell_identity(model: str, dataset: str, quick: bool, budget_seconds: float | None,
                  lr_factor: float) -> str:  # fmt: skip
    """Everything that changes a cell's result besides its name, as a canonical string: the
    step count (or the time budget), learning rate, batch size, hyper-parameters and genzoo's
    version. A finished cell is reused only by a benchmark of the same identity."""
    budget = budget_for(model, dataset)
    identity = {
        "steps": None if budget_seconds is not None else budget.steps(quick),
        "budget_seconds": budget_seconds,
        "lr": budget.lr * lr_factor,
        "batch_size": budget.batch_size,
        "hparams": budget.hparams,
        "genzoo": __version__,
    }
    return json.dumps(identity, sort_keys=True)


def _cells_to_run(out: Path, grid: list[Cell], quick: bool, budget_seconds: float | None,
                  keep_failed: bool) -> list[Cell]:  # fmt: skip
    """The cells without a usable result; refuse a folder holding cells of other settings."""
    todo, foreign = [], []
    for cell in grid:
        path = cell_dir(out, *cell, budget_seconds) / RESULT_FILE
        if not path.exists():
            todo.append(cell)
            continue
        row = read_json(path)
        expected = cell_identity(cell[0], cell[1], quick, budget_seconds, cell[3])
        if row.get("identity") != expected:
            foreign.append((cell, row.get("identity"), expected))
        elif row.get("status") == "failed" and not keep_failed:
            todo.append(cell)
    if foreign:
        (model, dataset, seed, _), had, wants = foreign[0]
        raise RunExistsError(
            f"{out} holds {len(foreign)} cells computed with other settings than these (e.g. "
            f"{model} on {Path(dataset).name} seed {seed}: {had or 'no identity recorded'} "
            f"here, {wants} now); use another --out, or --force to recompute them"
        )
    return todo


def _end_with_parent(parent: int) -> None:
    """Pool initializer: end this worker as soon as the benchmark that started it is gone (a
    killed benchmark must not leave workers training into its folder)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="genzoo-parent-watch").start()


def _write_references(out: Path, datasets: list[str]) -> None:
    """Measure each dataset's held-out data once (the tables' reference row); kept across
    reruns in ``references.json``."""
    from genzoo.bench.measure import reference_row

    path = out / REFERENCES_FILE
    known = read_json(path) if path.is_file() else {}
    missing = [d for d in datasets if d not in known]
    if missing:
        known.update({d: reference_row(d) for d in missing})
        write_json(path, known)


def _report_cell(row: dict[str, Any], bar) -> None:
    bar.update(1)
    shown = row.get("nll", row.get("mmd", ""))
    lr = "" if row["lr_factor"] == 1.0 else f" lr x{row['lr_factor']:g}"
    dataset = row["dataset"] if row["dataset"] in SHIPPED else Path(row["dataset"]).name
    tqdm.write(f"{row['model']:>12} on {dataset:<11} seed {row['seed']}{lr}: "
               f"{row['status']:<6} {row['train_seconds']:>7.1f} s  {shown}")  # fmt: skip


def run_cell(
    out: str,
    model: str,
    dataset: str,
    seed: int,
    lr_factor: float,
    quick: bool,
    device: str,
    budget_seconds: float | None = None,
) -> dict[str, Any]:
    """Train, measure and picture one cell; a failure becomes a row. Cells of a
    learning-rate sweep (``lr_factor`` other than 1) are measured but not pictured. With
    ``budget_seconds`` the cell trains for that much training time instead of a step count.
    The cell's folder is locked while it trains: a second process gets ``RunLockedError``."""
    torch.set_num_threads(1)  # one process per core
    run_dir = cell_dir(Path(out), model, dataset, seed, lr_factor, budget_seconds)
    with folder_lock(run_dir, "benchmark cell", CELL_LOCK):
        return _run_cell_locked(out, model, dataset, seed, lr_factor, quick, device,
                                budget_seconds, run_dir)  # fmt: skip


def _run_cell_locked(out, model, dataset, seed, lr_factor, quick, device, budget_seconds,
                     run_dir) -> dict[str, Any]:  # fmt: skip
    from genzoo.bench.measure import (
        measure,
        quality_target,
        quality_tracker,
        quality_vs_sampling_steps,
        time_to_target,
    )
    from genzoo.workflow import train

    budget = budget_for(model, dataset)
    row: dict[str, Any] = {
        "model": model, "family": model_class(model).family, "dataset": dataset,
        "seed": seed, "lr_factor": lr_factor, "steps": budget.steps(quick),
        "density": model_class(model).density,
        "mode": "steps" if budget_seconds is None else "seconds",
        "identity": cell_identity(model, dataset, quick, budget_seconds, lr_factor),
    }  # fmt: skip
    if budget_seconds is None:
        length = {"steps": budget.steps(quick),
                  "evaluate_every": max(1, budget.steps(quick) // TRACKED_POINTS)}  # fmt: skip
    else:  # equal compute: a step cap no run reaches, the clock decides
        row["budget_seconds"] = budget_seconds
        length = {"steps": 10**9, "max_seconds": budget_seconds,
                  "evaluate_every_seconds": budget_seconds / TRACKED_POINTS}  # fmt: skip
    tracker = quality_tracker(dataset, seed)
    tic = time.perf_counter()
    try:
        trained, trainer = train(
            model, dataset, out=run_dir, hparams=budget.hparams, data_seed=seed,
            batch_size=budget.batch_size, lr=budget.lr * lr_factor, seed=seed, device=device,
            progress=False, force=True, checkpoint_every=10**9, evaluate=tracker, **length,
        )  # fmt: skip
        # training time only: the tracked evaluations' time is left out of the log's clock
        row["train_seconds"] = trainer.history[-1]["time"] if trainer.history else 0.0
        row["steps"] = trainer.history[-1]["step"] if trainer.history else 0
        trained.eval()
        row.update(measure(trained, dataset, seed, trainer.history))
        if tracker is not None:
            metric, threshold = quality_target(dataset)
            row["quality_target"] = f"{metric} <= {threshold:g}"
            row["time_to_target"] = time_to_target(trainer.evaluations, dataset)
            sampler = isinstance(trained, StepSampler)
            if sampler and budget.sampling_steps and lr_factor == 1.0:  # sweeps: stability only
                with torch.no_grad():
                    curve = quality_vs_sampling_steps(trained, tracker, budget.sampling_steps)
                write_json(run_dir / STEPS_FILE, curve)
        if lr_factor == 1.0:
            _pictures(run_dir, trained, trainer.history, dataset, seed)
        row["status"] = "ok"
    except RunLockedError:
        raise  # another process trains this cell: its result is not ours to write
    except Exception as err:  # a failed cell is a result, not a crash of the benchmark
        row["train_seconds"] = time.perf_counter() - tic
        row["status"] = "diverged" if isinstance(err, TrainingDiverged) else "failed"
        row["error"] = f"{type(err).__name__}: {err}"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc())
    write_json(run_dir / RESULT_FILE, row)
    return row


def _pictures(run_dir: Path, model, history, dataset: str, seed: int) -> None:
    """The loss curve, then the samples (and 2-D density) of ``genzoo figures``."""
    if history:
        plot_losses(history, run_dir / "loss.png", title=f"{model.name} on {dataset}")
    info = dataset_info(dataset)
    sample_figures(model, info, figure_data(model, info, seed), run_dir, seed)


def collect(out: Path, grid: list[Cell]) -> list[dict[str, Any]]:
    """Gather the finished cells into ``results.jsonl`` and ``results.csv``: the grid's
    step-budget runs and any equal-time runs (``--budget-seconds``) of the same cells."""
    paths = [cell_dir(out, *c) / RESULT_FILE for c in grid]  # step budgets first, then
    for cell in grid:  # equal-time runs of the same cells (the report's second table)
        name = cell_name(*cell)
        timed = (out / "runs").glob(f"{name}__*s/{RESULT_FILE}")
        paths.extend(sorted(p for p in timed if TIMED.fullmatch(p.parent.name[len(name) :])))
    rows = [read_json(path) for path in paths if path.exists()]
    columns = list(FIRST_COLUMNS)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    atomic_write(
        out / "results.jsonl",
        lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in rows)),
    )

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: row.get(k, "") for k in columns} for row in rows)

    atomic_write(out / "results.csv", write_csv)
    return rows
