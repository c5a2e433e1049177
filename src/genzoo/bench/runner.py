"""The grid runner: train every model on every dataset and seed, measure, keep the pictures.

Each cell is a training run in its own process (as many at once as there are cores, or one
Ray task or Slurm job each: :mod:`genzoo.bench.executors`), with its folder
``out/runs/MODEL__DATASET__SEED/`` and, when done, ``result.json`` written atomically. A
benchmark that is interrupted resumes: finished cells are read back, never redone, but only
when they were computed with the same settings (steps or time budget, learning rate, batch
size, hyper-parameters, genzoo version: the cell's ``identity``); a folder holding cells of
other settings is refused, never mixed. Failed cells are retried.
``results.csv`` and ``results.jsonl`` are rebuilt from the cells after each one.

One benchmark at a time writes a folder (an OS lock), each cell in training holds its own
lock, and the worker processes end with the benchmark, even when it is killed by ``kill -9``.
Cells that failed are listed at the end.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from genzoo import __version__
from genzoo.bench import grid as _grid
from genzoo.bench.executors import Executor, executor_for
from genzoo.bench.grid import (
    PRESETS,
    SHIPPED,
    Budget,
    Cell,
    budget_for,
    cell_name,
    cells,
    condition_slug,
)
from genzoo.bench.report import CONDITIONAL_REFERENCES_FILE, REFERENCES_FILE, write_report
from genzoo.data import dataset_info
from genzoo.errors import GenzooError, RunExistsError, RunLockedError, TrainingDiverged
from genzoo.figures.catalogue import conditional_sample_figures, figure_data, sample_figures
from genzoo.io import atomic_write, read_json, write_json
from genzoo.models.capabilities import StepSampler
from genzoo.plotting import plot_losses
from genzoo.registry import list_models, model_class
from genzoo.train.runfolder import folder_lock

RESULT_FILE = "result.json"
#: The lock a cell holds while it trains (the training run inside holds the run's own lock).
CELL_LOCK = ".genzoo-cell.lock"
#: Failed cells listed by name at the end of a benchmark (the rest are counted).
LISTED_FAILURES = 20
#: The suffix of an equal-time cell's folder name: ``__{seconds}s``.
TIMED = re.compile(r"__[0-9.e+-]+s")
#: Sample-quality evaluations during each run (for time-to-target and quality-vs-time).
TRACKED_POINTS = 5
#: Quality at several sampler step counts, for models whose budget lists them.
STEPS_FILE = "quality_vs_steps.json"
#: Quality of the few-step samplers (DDIM, DPM-Solver) against network evaluations (VP
#: score models), and the classifier-free guidance sweep of class-conditional score models.
FAST_SAMPLERS_FILE = "fast_samplers.json"
GUIDANCE_FILE = "guidance.json"
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
    condition: str | None = None,
) -> Path:
    """The folder of one cell."""
    return out / "runs" / cell_name(model, dataset, seed, lr_factor, budget_seconds, condition)


def run_bench(
    out: str | Path | None = None,
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
    executor: str | Executor = "local",
    executor_options: Mapping[str, Any] | None = None,
    condition: str | None = None,
) -> list[Path]:
    """Run the grid (resuming finished cells), write the results, then the report.

    ``data`` holds the user's files (``.npy``, ``.npz``, ``.csv``, IDX, text): every model that
    accepts a file's kind, shape and levels is trained on it, beside any ``datasets``.
    ``budget_seconds`` trains every cell for that much wall-clock training time (evaluation
    excluded) instead of its budget's step count: the equal-compute comparison.
    Cells that failed (an error, not a divergence) are trained again unless ``keep_failed``.

    ``executor`` runs the cells: ``"local"`` (``jobs`` processes on this machine), ``"ray"``
    or ``"slurm"`` (every cell a Ray task, or a job of one Slurm job array), with
    ``executor_options`` (the ``genzoo.bench.executors`` class's keywords: ``address``,
    ``cpus_per_cell``, ``gpus_per_cell``, ``partition``, ``time_minutes``...); or any
    :class:`~genzoo.bench.executors.Executor`. On a cluster ``out`` must be on storage every
    worker sees.

    ``condition`` (``"label"``) benchmarks conditional generation: every model whose class
    can take the condition is trained as ``Q(x | c)`` on the datasets that carry it (cells
    ``MODEL__DATASET__SEED__c-label``, the condition part of their identity), measured by
    conditional NLL, Bayes-rule accuracy and the class accuracy of conditional samples, beside
    a scikit-learn ``LogisticRegression`` on the same split. ``out`` defaults to
    ``runs/bench`` (``runs/bench-CONDITION`` with a condition).
    """
    if out is None:
        out = "runs/bench" if condition is None else f"runs/bench-{condition_slug(condition)}"
    if budget_seconds is not None and not budget_seconds > 0:
        raise ValueError(f"budget_seconds must be > 0, got {budget_seconds}")
    if isinstance(executor, str):  # a missing extra fails here, before anything is written
        if jobs is not None and executor != "local":
            raise ValueError(f"--jobs is for --executor local; {executor} runs cells as its "
                             "cluster's resources allow (--cpus-per-cell)")  # fmt: skip
        options = {"jobs": jobs, **(executor_options or {})} if executor == "local" else (
            executor_options)  # fmt: skip
        executor = executor_for(executor, options)
    with folder_lock(out, "benchmark"):
        return _run_bench_locked(
            Path(out), quick, models, datasets, seeds, device, force, executor, lr_factors,
            data, budget_seconds, keep_failed, condition,
        )  # fmt: skip


def _run_bench_locked(
    out, quick, models, datasets, seeds, device, force, executor, lr_factors, data,
    budget_seconds, keep_failed, condition=None,
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
    grid = cells(names, data_names, n_seeds, explicit=explicit, lr_factors=factors,
                 condition=condition)  # fmt: skip
    if not grid and condition is not None:
        raise ValueError(
            f"no model can be conditioned on the {condition!r} of {', '.join(data_names)}: "
            "see `genzoo list` for the datasets' conditions and the models that take them"
        )
    if not grid:
        raise ValueError(
            f"no model accepts {', '.join(data_names)}: see `genzoo list` for what each "
            "model and dataset is"
        )
    todo = _cells_to_run(out, grid, quick, budget_seconds, keep_failed, condition)
    _write_references(out, sorted({c[1] for c in grid}))
    if condition is not None:
        _write_conditional_references(out, sorted({c[1] for c in grid}))
    if len(todo) < len(grid):
        tqdm.write(f"resuming: {len(grid) - len(todo)} of {len(grid)} cells already done")
    bar = tqdm(total=len(grid), initial=len(grid) - len(todo), desc="bench", unit="cell",
               disable=None)  # fmt: skip
    call = CellCall(str(out), quick, device, budget_seconds, _grid.BUDGETS, executor.threads,
                    condition=condition)  # fmt: skip
    failures = []
    results = executor.run(todo, call)
    try:
        for cell, result in results:
            row = result if isinstance(result, dict) else _lost_cell(call, cell, result)
            _report_cell(row, bar)
            if row["status"] != "ok":
                failures.append(row)
            collect(out, grid, condition)
    finally:  # an early end (an error, Ctrl-C) stops the workers and cancels queued cells
        getattr(results, "close", lambda: None)()
        executor.close()
        bar.close()
    collect(out, grid, condition)
    _list_failures(failures, len(todo), budget_seconds, out)
    return write_report(out)


@dataclass(frozen=True)
class CellCall:
    """One cell's training as a picklable callable, ``call(cell) -> row``, that executors
    send to their workers. The benchmark's budgets travel with it, so a worker process trains
    exactly the cells whose identity the benchmark checked; ``cwd``, ``token`` and
    ``version`` are for workers on other machines (:func:`genzoo.bench.executors.worker_run`
    checks them)."""

    out: str
    quick: bool
    device: str
    budget_seconds: float | None
    budgets: Mapping[str, Budget]
    threads: int = 1
    cwd: str = ""
    token: str | None = None
    version: str = __version__
    condition: str | None = None

    def __call__(self, cell: Cell) -> dict[str, Any]:
        if _grid.BUDGETS is not self.budgets:  # a worker process: the benchmark's budgets
            _grid.BUDGETS = self.budgets
        return run_cell(self.out, *cell, self.quick, self.device, self.budget_seconds,
                        threads=self.threads, condition=self.condition)  # fmt: skip

    def for_workers(self, token: str) -> CellCall:
        """This call for workers of a cluster: the folder as an absolute path, the
        benchmark's working folder, the token of :func:`~genzoo.bench.executors.mark_shared`."""
        return replace(self, out=str(Path(self.out).resolve()), cwd=os.getcwd(), token=token)


def _lost_cell(call: CellCall, cell: Cell, err: BaseException) -> dict[str, Any]:
    """The row of a cell whose worker or job died without writing one (a failed cell, retried
    by the next run); genzoo's own errors from a worker (the bench folder unseen or not
    writable, a cell trained elsewhere) end the benchmark instead."""
    if isinstance(err, GenzooError):
        raise err
    model, dataset, seed, lr_factor = cell
    run_dir = cell_dir(Path(call.out), model, dataset, seed, lr_factor, call.budget_seconds,
                       call.condition)  # fmt: skip
    with folder_lock(run_dir, "benchmark cell", CELL_LOCK):
        row = _first_columns(model, dataset, seed, lr_factor, call.quick, call.budget_seconds,
                             call.condition)  # fmt: skip
        lines = str(err).strip().splitlines() or [""]
        row.update(status="failed", train_seconds=0.0,
                   error=f"{type(err).__name__}: {lines[-1]}".strip())  # fmt: skip
        (run_dir / "error.txt").write_text(f"{type(err).__name__}: {err}\n")
        write_json(run_dir / RESULT_FILE, row)
    return row


def _list_failures(failures: list[dict[str, Any]], ran: int, budget_seconds, out: Path) -> None:
    """Name the cells of this run that failed or diverged, with their errors, at the end."""
    if not failures:
        return
    tqdm.write(f"{len(failures)} of {ran} cells failed or diverged (each folder's error.txt "
               "has the traceback):")  # fmt: skip
    for row in failures[:LISTED_FAILURES]:
        name = cell_name(row["model"], row["dataset"], row["seed"], row["lr_factor"],
                         budget_seconds, row.get("condition"))  # fmt: skip
        error = row.get("error", "").splitlines()[0] if row.get("error") else ""
        tqdm.write(f"  {out / 'runs' / name}: {row['status']}: {error}")
    if len(failures) > LISTED_FAILURES:
        tqdm.write(f"  ... and {len(failures) - LISTED_FAILURES} more (results.csv, status)")


def cell_identity(model: str, dataset: str, quick: bool, budget_seconds: float | None,
                  lr_factor: float, condition: str | None = None) -> str:  # fmt: skip
    """Everything that changes a cell's result besides its name, as a canonical string: the
    step count (or the time budget), learning rate, batch size, hyper-parameters, the
    condition (of a conditional cell) and genzoo's version. A finished cell is reused only
    by a benchmark of the same identity."""
    budget = budget_for(model, dataset, conditioned=condition is not None)
    identity = {
        "steps": None if budget_seconds is not None else budget.steps(quick),
        "budget_seconds": budget_seconds,
        "lr": budget.lr * lr_factor,
        "batch_size": budget.batch_size,
        "hparams": budget.hparams,
        "genzoo": __version__,
    }
    if budget.lr_schedule != "constant":  # cells of a constant rate keep their identity
        identity["lr_schedule"] = budget.lr_schedule
    if budget.n_train is not None:  # cells of the dataset's own size keep their identity
        identity["n_train"] = budget.n_train
    if condition is not None:  # unconditional cells keep the identity they always had
        identity["condition"] = condition
    return json.dumps(identity, sort_keys=True)


def _cells_to_run(out: Path, grid: list[Cell], quick: bool, budget_seconds: float | None,
                  keep_failed: bool, condition: str | None = None) -> list[Cell]:  # fmt: skip
    """The cells without a usable result; refuse a folder holding cells of other settings."""
    todo, foreign = [], []
    for cell in grid:
        path = cell_dir(out, *cell, budget_seconds, condition) / RESULT_FILE
        if not path.exists():
            todo.append(cell)
            continue
        row = read_json(path)
        expected = cell_identity(cell[0], cell[1], quick, budget_seconds, cell[3], condition)
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


def _write_references(out: Path, datasets: list[str]) -> None:
    """Measure each dataset's held-out data once (the tables' reference row); kept across
    reruns in ``references.json``."""
    from genzoo.bench.measure import reference_row

    _measure_once(out / REFERENCES_FILE, datasets, reference_row)


def _write_conditional_references(out: Path, datasets: list[str]) -> None:
    """The discriminative reference of each conditioned dataset (scikit-learn's
    ``LogisticRegression`` on the cells' split), once, in ``conditional_references.json``."""
    from genzoo.bench.measure import logistic_reference

    _measure_once(out / CONDITIONAL_REFERENCES_FILE, datasets, logistic_reference)


def _measure_once(path: Path, datasets: list[str], measure) -> None:
    """``measure(dataset)`` of each dataset not yet in the JSON file ``path``, added to it."""
    known = read_json(path) if path.is_file() else {}
    missing = [d for d in datasets if d not in known]
    if missing:
        known.update({d: measure(d) for d in missing})
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
    threads: int = 1,
    condition: str | None = None,
) -> dict[str, Any]:
    """Train, measure and picture one cell; a failure becomes a row. Cells of a
    learning-rate sweep (``lr_factor`` other than 1) are measured but not pictured. With
    ``budget_seconds`` the cell trains for that much training time instead of a step count.
    The cell's folder is locked while it trains: a second process gets ``RunLockedError``.
    ``threads``: torch's threads (one process per core: 1). ``condition``: train and
    measure the conditional model on what the dataset carries under that name."""
    torch.set_num_threads(threads)
    run_dir = cell_dir(Path(out), model, dataset, seed, lr_factor, budget_seconds, condition)
    with folder_lock(run_dir, "benchmark cell", CELL_LOCK):
        return _run_cell_locked(out, model, dataset, seed, lr_factor, quick, device,
                                budget_seconds, run_dir, condition)  # fmt: skip


def _run_cell_locked(out, model, dataset, seed, lr_factor, quick, device, budget_seconds,
                     run_dir, condition=None) -> dict[str, Any]:  # fmt: skip
    from genzoo.bench.measure import (
        measure,
        quality_target,
        quality_tracker,
        quality_vs_sampling_steps,
        time_to_target,
    )
    from genzoo.workflow import train

    budget = budget_for(model, dataset, conditioned=condition is not None)
    row = _first_columns(model, dataset, seed, lr_factor, quick, budget_seconds, condition)
    if budget_seconds is None:
        length = {"steps": budget.steps(quick),
                  "evaluate_every": max(1, budget.steps(quick) // TRACKED_POINTS)}  # fmt: skip
    else:  # equal compute: a step cap no run reaches, the clock decides
        row["budget_seconds"] = budget_seconds
        length = {"steps": 10**9, "max_seconds": budget_seconds,
                  "evaluate_every_seconds": budget_seconds / TRACKED_POINTS}  # fmt: skip
    tracker = quality_tracker(dataset, seed, conditional=condition is not None)
    tic = time.perf_counter()
    try:
        trained, trainer = train(
            model, dataset, out=run_dir, hparams=budget.hparams, data_seed=seed,
            batch_size=budget.batch_size, lr=budget.lr * lr_factor, seed=seed, device=device,
            lr_schedule=budget.lr_schedule,
            progress=False, force=True, checkpoint_every=10**9, evaluate=tracker,
            condition=condition, **length,
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
            if sampler and lr_factor == 1.0:
                _score_sampler_extras(run_dir, trained, dataset, seed, quick)
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


def _score_sampler_extras(run_dir: Path, model, dataset: str, seed: int, quick: bool) -> None:
    """A score model's few-step samplers scored at ``FAST_SAMPLER_NFE`` evaluations, and a
    class-conditional one's guidance sweep with its picture (``guidance.png``)."""
    from genzoo.bench.measure import fast_sampler_quality, guidance_tradeoff

    with torch.no_grad():
        fast = fast_sampler_quality(model, dataset, seed, quick)
        guided = guidance_tradeoff(model, dataset, seed, quick)
    if fast:
        write_json(run_dir / FAST_SAMPLERS_FILE, fast)
    if guided is not None:
        from genzoo.figures.score import plot_guidance_tradeoff

        write_json(run_dir / GUIDANCE_FILE, guided)
        plot_guidance_tradeoff(guided["rows"], run_dir / "guidance.png", guided["data_diversity"],
                               f"{model.name} on {dataset}: classifier-free guidance",
                               guided["chance"])  # fmt: skip


def _first_columns(model: str, dataset: str, seed: int, lr_factor: float, quick: bool,
                   budget_seconds: float | None,
                   condition: str | None = None) -> dict[str, Any]:  # fmt: skip
    """What a cell's row says before training: its name, kind, steps, condition, identity."""
    return {
        "model": model, "family": model_class(model).family, "dataset": dataset,
        "seed": seed, "lr_factor": lr_factor,
        "steps": budget_for(model, dataset, conditioned=condition is not None).steps(quick),
        "density": model_class(model).density,
        "mode": "steps" if budget_seconds is None else "seconds",
        "identity": cell_identity(model, dataset, quick, budget_seconds, lr_factor, condition),
        **({} if condition is None else {"condition": condition}),
    }  # fmt: skip


def _pictures(run_dir: Path, model, history, dataset: str, seed: int) -> None:
    """The loss curve, then the samples (and 2-D density) of ``genzoo figures``."""
    if history:
        plot_losses(history, run_dir / "loss.png", title=f"{model.name} on {dataset}")
    info = dataset_info(dataset)
    if model.condition_kind is not None:  # samples given conditions (class by class)
        conditional_sample_figures(model, info, run_dir, seed)
        return
    sample_figures(model, info, figure_data(model, info, seed), run_dir, seed)


def collect(out: Path, grid: list[Cell], condition: str | None = None) -> list[dict[str, Any]]:
    """Gather the finished cells into ``results.jsonl`` and ``results.csv``: the grid's
    step-budget runs and any equal-time runs (``--budget-seconds``) of the same cells (the
    conditional ones, with ``condition``)."""
    paths = [cell_dir(out, *c, None, condition) / RESULT_FILE for c in grid]  # step budgets,
    for cell in grid:  # then equal-time runs of the same cells (the report's second table)
        name = cell_name(*cell, None, condition)
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
