"""The grid runner: train every model on every dataset and seed, measure, keep the pictures.

It writes one run folder per cell under ``out/runs/`` and a row per cell to ``results.csv``;
the report is made from those files alone (the report never trains).
"""

from __future__ import annotations

import csv
import shutil
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from genzoo.bench.grid import DEFAULT_DATASETS, budget_for
from genzoo.bench.report import write_report
from genzoo.data import dataset_info, load_dataset
from genzoo.errors import RunExistsError
from genzoo.io import atomic_write
from genzoo.plotting import plot_density, plot_losses, plot_samples
from genzoo.registry import list_models
from genzoo.workflow import evaluate, train

RESULTS_FILE = "results.csv"
COLUMNS = [
    "model", "family", "dataset", "seed", "status", "density", "measure", "steps",
    "train_seconds", "sample_ms_per_1k", "nll", "nll_stderr", "bits_per_dim", "true_entropy",
    "gap_to_entropy", "kl_gap", "error",
]  # fmt: skip


def run_bench(
    out: str | Path = "runs/bench",
    quick: bool = False,
    models: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    seeds: int = 1,
    device: str = "cpu",
    force: bool = False,
) -> list[Path]:
    """Run the grid, write ``results.csv``, then the report; return the report's paths."""
    out = Path(out)
    if (out / RESULTS_FILE).exists():
        if not force:
            raise RunExistsError(f"{out} already holds a benchmark: pass --force or another --out")
        shutil.rmtree(out / "runs", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    families = {m.name: m.family for m in list_models()}
    names = list(models or families)
    data_names = list(datasets or DEFAULT_DATASETS)
    for name in data_names:
        dataset_info(name)  # unknown names fail before any training
    cells = [(m, d, s) for m in names for d in data_names for s in range(seeds)]
    rows = []
    for model, dataset, seed in tqdm(cells, desc="bench", unit="run"):
        row = _run_cell(out, model, families.get(model, "?"), dataset, seed, quick, device)
        rows.append(row)
        _write_rows(out / RESULTS_FILE, rows)
        tqdm.write(f"{model:>10} on {dataset:<10} seed {seed}: {row['status']} "
                   f"nll={row.get('nll', '')} ({row['train_seconds']} s)")  # fmt: skip
    return write_report(out)


def _run_cell(
    out: Path, model: str, family: str, dataset: str, seed: int, quick: bool, device: str
) -> dict[str, Any]:
    """Train, evaluate and picture one (model, dataset, seed); failures become a row."""
    budget = budget_for(model, quick)
    run_dir = out / "runs" / f"{model}__{dataset}__{seed}"
    row: dict[str, Any] = {"model": model, "family": family, "dataset": dataset, "seed": seed}
    row["steps"] = budget.steps
    tic = time.perf_counter()
    try:
        trained, trainer = train(
            model, dataset, out=run_dir, hparams=budget.hparams, data_seed=seed,
            steps=budget.steps, batch_size=budget.batch_size, lr=budget.lr, seed=seed,
            device=device, progress=False, force=True, checkpoint_every=10**9,
        )  # fmt: skip
        row["train_seconds"] = round(time.perf_counter() - tic, 2)
        row.update(_speed(trained))
        metrics = evaluate(trained, dataset, seed=seed)
        row.update({k: metrics.get(k, "") for k in COLUMNS if k in metrics and k not in row})
        _pictures(run_dir, trained, trainer.history, dataset, seed)
        row["status"] = "ok"
    except Exception as err:  # a failed cell is a result, not a crash of the benchmark
        row["train_seconds"] = round(time.perf_counter() - tic, 2)
        row["status"] = "failed"
        row["error"] = f"{type(err).__name__}: {err}"
        (run_dir / "error.txt").parent.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc())
    return row


@torch.no_grad()
def _speed(model) -> dict[str, float]:
    """Milliseconds to draw 1,000 samples."""
    generator = torch.Generator(device=model.device).manual_seed(0)
    tic = time.perf_counter()
    model.sample(1000, generator=generator)
    return {"sample_ms_per_1k": round(1000 * (time.perf_counter() - tic), 2)}


@torch.no_grad()
def _pictures(run_dir: Path, model, history, dataset: str, seed: int) -> None:
    generator = torch.Generator(device=model.device).manual_seed(seed)
    info = dataset_info(dataset)
    n = 64 if info.kind == "image" else 2000
    samples = model.sample(n, generator=generator).cpu()
    reference = load_dataset(dataset, split="test", n=2000) if info.kind != "image" else None
    plot_samples(samples, run_dir / "samples.png", reference=reference, title=f"{model.name}")
    if info.shape == (2,) and model.density != "none":
        plot_density(model, run_dir / "density.png", title=f"{model.name} density")
    if history:
        plot_losses(history, run_dir / "loss.png", title=f"{model.name} on {dataset}")


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row.get(k, "") for k in COLUMNS})

    atomic_write(path, write)
