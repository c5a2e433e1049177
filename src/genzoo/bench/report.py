"""The report: ``report.md`` and a self-contained ``report.html`` made from a bench folder's
files alone (the report never trains).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from genzoo.bench.grid import cell_name
from genzoo.bench.ratings import RULES, ratings, stars
from genzoo.bench.summary import rank, summarise
from genzoo.data import dataset_info
from genzoo.errors import GenzooError
from genzoo.io import atomic_write

#: (key, header) of the per-dataset tables; the header says which way is better
#: (↓ lower, ↑ higher) and the "held-out data" row gives the reference values.
DATASET_COLUMNS = [
    ("model", "model"),
    ("seeds", "seeds"),
    ("measure", "log_prob is"),
    ("nll", "test NLL (nats) ↓"),
    ("nll_rank", "NLL rank"),
    ("bits_per_dim", "bits/dim ↓"),
    ("bits_per_token", "bits/token ↓"),
    ("gap_to_entropy", "NLL - entropy ↓ (0 best)"),
    ("frechet_digits", "Fréchet (digits classifier) ↓"),
    ("mmd", "MMD² ↓"),
    ("c2st_accuracy", "C2ST accuracy (0.5 best)"),
    ("c2st_rank", "C2ST rank"),
    ("precision", "precision ↑"),
    ("coverage", "coverage ↑"),
    ("modes_covered", "modes ↑"),
    ("high_quality_share", "HQ share ↑"),
    ("steps", "steps"),
    ("train_seconds", "train s"),
    ("time_to_target", "s to target ↓"),
    ("samples_per_second", "samples/s ↑"),
    ("status", "status"),
]
#: The runner's reference values per dataset, read by the report.
REFERENCES_FILE = "references.json"
#: The discriminative reference (``LogisticRegression``) per conditioned dataset.
CONDITIONAL_REFERENCES_FILE = "conditional_references.json"
CONDITIONAL_COLUMNS = [
    ("model", "model"),
    ("dataset", "dataset"),
    ("condition", "condition"),
    ("seeds", "seeds"),
    ("nll", "cond. NLL (nats) ↓"),
    ("bayes_accuracy", "Bayes accuracy ↑"),
    ("sample_class_accuracy", "sample class accuracy ↑"),
    ("sample_class_accuracy_chance", "chance"),
    ("status", "status"),
]
CONDITIONAL_TEXT = (
    "Each model is trained as Q(x | c) on the examples and their condition. **cond. NLL**: "
    "the test NLL -log p(x | c) in nats given each test example's own condition, where the "
    "model has a density (marked ≤ for a bound, ≈ for an estimate, as above). **Bayes "
    "accuracy**: the density model used as a classifier by Bayes' rule, argmax_k log p(x | k) "
    "+ log p(k), on the test split (a generative classifier); the LogisticRegression row is "
    "scikit-learn's discriminative classifier trained and tested on the same split. **sample "
    "class accuracy**: the share of samples drawn given class k that are of class k: on "
    "digits as genzoo's digits classifier says, on the Gaussian-mixture toys by the nearest "
    "mode; **chance** is 1/K."
)
#: The conditional table of models given a text input (condition kind ``"tokens"``).
TEXT_CONDITIONAL_COLUMNS = [
    ("model", "model"),
    ("dataset", "dataset"),
    ("condition", "condition"),
    ("seeds", "seeds"),
    ("nll", "cond. NLL (nats) ↓"),
    ("nll_per_position", "nats per output token/label ↓"),
    ("true_conditional_entropy", "true conditional entropy (nats)"),
    ("kl_gap", "KL gap (nats) ↓"),
    ("conditional_kl", "exact KL (nats) ↓"),
    ("status", "status"),
]
TEXT_CONDITIONAL_TEXT = (
    "Models of an output Y given a text input X (token ids), Q(Y | X): the language models "
    "of an output text, categorical of a label. **cond. NLL**: the test -log Q(y | x) in "
    "nats per example; **per output token/label**: the same divided by the output's "
    "positions (a label: one; a text: its length, end-of-sequence and padding included). "
    "Where the dataset knows P(Y | X): the **true conditional entropy** H(Y | X), the NLL's "
    "floor, and the **KL gap** = cond. NLL - H(Y | X) (both averaged over the same test "
    "examples), an estimate of KL(P || Q); **exact KL**: for a label, the sum over its "
    "values, averaged over the test inputs."
)
#: The first row of each dataset table: held-out data scored as if it were a model's samples.
REFERENCE_NAME = "(held-out data)"
PICTURES = ("samples.png", "density.png", "loss.png")
#: Marks the page once loaded: ``data-images-ok="true"`` when every image decoded.
IMAGE_CHECK = (
    "window.addEventListener('load',()=>{document.body.dataset.imagesOk="
    "[...document.images].every(i=>i.complete&&i.naturalWidth>0)});"
)
INTRO = (
    "Every model trained on every dataset with the budget in `genzoo/bench/budgets.py`, then "
    "measured on the test split. Test NLL is in nats per example (lower is better) and is "
    "exact only where 'log_prob is' says NLL; bounds and estimates are labelled as such. "
    "bits/dim are on the discrete 17-level scale for digits. MMD² (RBF kernel, median "
    "heuristic, unbiased), precision (Kynkäänniemi et al. 2019) and coverage (Naeem et al. "
    "2020) compare 2,000 samples with 2,000 test examples. 'modes' and 'HQ share' count the "
    "mixture modes reached and the share of samples within 3 standard deviations of one. "
    "On digits, 'Fréchet' is the Fréchet distance between Gaussians fitted to the features "
    "of a small classifier genzoo trains itself (not FID: no Inception network; test against "
    "train digits scores about 3.5, uniform noise about 113). C2ST accuracy is a classifier "
    "two-sample test (Lopez-Paz & Oquab 2017): a small classifier trained to tell samples from "
    "test data, scored on held-out halves; 0.5 means indistinguishable. The NLL is marked '≤' "
    "where it is an upper bound (a VAE's -ELBO; a continuous model on discrete levels, through "
    "uniform dequantisation with the stated number of draws) and '≈' where it is an estimate "
    "(IWAE, AIS, probability-flow ODE); unnormalised energies get no NLL at all. With several "
    "seeds every number is the mean ± its standard error; ranks are shared ('=') where two "
    "models differ by less than 2 standard errors (over seeds, else over test examples). "
    "The first row of each table, '(held-out data)', scores the validation split against the "
    "test split with the same metrics: the reference a perfect model would reach (its NLL "
    "column holds the true entropy where the data's density is known)."
)
TIMED_TEXT = (
    "Every cell trained for the same wall-clock training time (evaluation excluded) instead "
    "of its own step budget: quality at equal compute, the table to read when choosing a "
    "family for a fixed time. 'steps' is how many steps each model took in that time; models "
    "fitted by EM stop earlier when they converge."
)

#: Lowest value drawn on the log-scaled quality curves (unbiased estimates can be <= 0).
CURVE_FLOOR = 1e-4
QUALITY_TEXT = (
    "Each run's samples are scored five times during training against its dataset's "
    "target (energy distance on 2-D data, digits-classifier Fréchet distance on digits; "
    "500 samples against 500 test examples; the dashed line is the target), with the "
    "evaluation time left out of the clock. 's to target' in the tables is the training time "
    "of the first evaluation that met the target (blank: never met within the budget). The "
    "second figure places each run's final coverage against its training time. The third "
    "scores the trained score models' samplers at fewer steps than configured (same metric, "
    "same 500 samples): sample quality against network evaluations per sample. Values at "
    "or below 1e-4 (a near-perfect fit, within sampling noise) are drawn at 1e-4."
)

FAST_SAMPLERS_TEXT = (
    "The trained VP score models (ddpm, score-sde) sampled again after training with their "
    "own stochastic sampler (ddpm: ancestral, Ho et al. 2020; score-sde: predictor-corrector "
    "with the budget's corrector steps), DDIM with eta = 0 (Song, Meng & Ermon 2021) and "
    "multistep DPM-Solver of order 3 (Lu et al. 2022) at a fixed number of network "
    "evaluations per sample (NFE; ddpm's ancestral and DDIM cannot exceed its training "
    "timesteps); the same metric as the tracked quality above (lower is better), on 500 "
    "samples against 500 test examples (--quick: at 10, 20 and 50 NFE, on 200 digits "
    "against 200; the full preset: 10, 20, 50, 100 and 1000). The deterministic samplers "
    "(DDIM, DPM-Solver) are functions of the same prior draws, so their errors are "
    "correlated; a briefly trained score is followed more faithfully by them than corrected, "
    "which is why the stochastic samplers can score better on an under-trained model."
)
GUIDANCE_TEXT = (
    "Classifier-free guidance (Ho & Salimans 2022) of the class-conditional score models: "
    "samples of every class drawn with guidance scale w from the same noise, eps~ = "
    "eps(null) + w (eps(c) - eps(null)): w = 0 is the unconditional model, w = 1 the "
    "conditional one (the default), w > 1 guided (Ho & Salimans' w is this w - 1). **class "
    "accuracy**: the share of samples of the class asked for (digits: genzoo's digits "
    "classifier; toys: the nearest mode); **diversity**: the mean distance between two "
    "samples of one class (digits on the [0, 1] pixel scale), beside the test data's own; "
    "**NFE**: network evaluations per sample (w other than 0 and 1 costs two per step). "
    "--quick: w in 0, 1, 2, 4 with 10 samples per class; the full preset: 0, 1, 1.5, 2, 3, "
    "5 with 50."
)


def read_results(bench_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl``."""
    path = Path(bench_dir) / "results.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `genzoo bench --out {bench_dir}` first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_report(bench_dir: str | Path) -> list[Path]:
    """Write ``report.md`` and ``report.html`` beside the results; return their paths."""
    bench_dir = Path(bench_dir)
    rows = read_results(bench_dir)
    figures = _summary_figures(bench_dir, rows)
    sections = _sections(bench_dir, rows, figures)
    paths = [bench_dir / "report.md", bench_dir / "report.html"]
    texts = [_markdown(sections), _html(bench_dir, sections)]
    for path, text in zip(paths, texts, strict=True):
        atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
    return paths


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return f"{value:.0f}"  # counts (steps, modes) summarised over seeds
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3f}"
    return "" if value is None else str(value)


#: How the NLL column marks what its number is.
NLL_MARKS = {"bound": "≤ ", "estimate": "≈ "}


def _cell(row: dict[str, Any], key: str) -> str:
    """A table cell: the value, ``± s.e.`` over seeds, and the NLL's kind mark."""
    if key == "measure" and row.get("nll_kind", row.get("density")) != row.get("density"):
        # the NLL column holds something else than log_prob (a dequantisation bound)
        return f"{row['measure']}; NLL column: {row['nll_label']}"
    text = _fmt(row.get(key))
    if text and (se := row.get(f"{key}_se")):
        text += f" ± {_fmt(float(se))}"
    if key == "nll" and text:
        text = NLL_MARKS.get(row.get("nll_kind", row.get("density", "")), "") + text
    return text


def _run_path(row: dict[str, Any]) -> Path:
    factor = float(row.get("lr_factor", 1.0))
    budget = row.get("budget_seconds")
    name = cell_name(row["model"], row["dataset"], row["seed"], factor, budget,
                     row.get("condition"))  # fmt: skip
    return Path("runs") / name


def _inside(bench_dir: Path, relative: Path) -> Path | None:
    """``bench_dir / relative`` if it is a file that really lies inside ``bench_dir`` (symbolic
    links followed), else ``None``: a crafted ``results.jsonl`` (``"seed": "0/../../x"``) or a
    link pointing out of the folder must never put another file into the report."""
    path = bench_dir / relative
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return path if real.is_file() and real.is_relative_to(bench_dir.resolve()) else None


def _cell_pictures(bench_dir: Path, row: dict[str, Any]) -> list[str]:
    run = _run_path(row)
    return [str(run / name) for name in PICTURES if _inside(bench_dir, run / name)]


def _summary_figures(bench_dir: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Quality against training time: tracked curves, and final coverage per run."""
    from genzoo.plotting import plot_quality_curves, plot_quality_vs_time

    ok = [r for r in rows if r.get("status") == "ok" and "coverage" in r]
    ok = [r for r in ok if float(r.get("lr_factor", 1.0)) == 1.0]
    if not ok:
        return []
    paths = []
    curves, targets = _curves(bench_dir, ok, _tracked_during_training)
    if curves:
        paths.append(plot_quality_curves(curves, targets, bench_dir / "quality_curves.png"))
    paths.append(plot_quality_vs_time(ok, bench_dir / "quality_vs_time.png"))
    curves, targets = _curves(bench_dir, ok, _scored_by_sampling_steps)
    if curves:
        paths.append(
            plot_quality_curves(curves, targets, bench_dir / "quality_vs_sampling_steps.png",
                                xlabel="network evaluations per sample")
        )  # fmt: skip
    return [str(path.relative_to(bench_dir)) for path in paths]


def _tracked_during_training(bench_dir: Path, run: Path, metric: str) -> list[tuple[float, float]]:
    """(training seconds, value) of the ``eval/`` rows of a run's metrics log."""
    log = _inside(bench_dir, run / "metrics.jsonl")
    if log is None:
        return []
    key = f"eval/{metric}"
    rows = map(json.loads, log.read_text(encoding="utf-8").splitlines())
    return [(max(r["time"], 1e-3), r[key]) for r in rows if key in r]


def _scored_by_sampling_steps(bench_dir: Path, run: Path, metric: str) -> list[tuple[float, float]]:
    """(network evaluations per sample, value) from a run's ``quality_vs_steps.json``."""
    path = _inside(bench_dir, run / "quality_vs_steps.json")
    if path is None:
        return []
    return sorted((p["nfe"], p[metric]) for p in json.loads(path.read_text()))


def _curves(bench_dir: Path, rows: list[dict[str, Any]], read):
    """``{dataset: {model: [(x, value), ...]}}`` read from each model's first run by
    ``read(bench_dir, run_folder, metric)``, and ``{dataset: (metric, threshold)}``."""
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    targets: dict[str, tuple[str, float]] = {}
    for row in rows:
        if "quality_target" not in row or row["model"] in curves.get(row["dataset"], {}):
            continue
        metric, threshold = row["quality_target"].split(" <= ")
        # estimates at or below the floor (sampling noise of a near-perfect fit) sit on it
        points = [(x, max(v, CURVE_FLOOR)) for x, v in read(bench_dir, _run_path(row), metric)]
        if points:
            curves.setdefault(row["dataset"], {})[row["model"]] = points
            targets[row["dataset"]] = (metric, float(threshold))
    return curves, targets


def _sections(bench_dir: Path, rows, figures) -> list[tuple[str, Any]]:
    """The report as a list of (kind, content) blocks, rendered to Markdown or HTML."""
    blocks: list[tuple[str, Any]] = [("h1", "genzoo benchmark"), ("p", INTRO)]
    stepped = [r for r in rows if r.get("mode", "steps") == "steps"]
    timed = [r for r in rows if r.get("mode") == "seconds"]
    blocks.append(("h2", "Ratings"))
    if not stepped:
        blocks.append(("p", "Rated from the equal-time runs (--budget-seconds)."))
    table = ratings(stepped or timed)
    head = ["model", "family"] + [rule.name for rule in RULES]
    body = [
        [t["model"], t["family"]] + [f"{stars(t[r.name][0])} {t[r.name][1]}" for r in RULES]
        for t in table
    ]
    blocks.append(("table", (head, body)))
    blocks.append(("list", [f"**{rule.name}**: {rule.text}" for rule in RULES]))
    blocks += _conditional_tables(bench_dir, [r for r in stepped if r.get("condition")])
    blocks += _guidance_blocks(bench_dir, [r for r in stepped if r.get("condition")])
    swept = [r for r in rows if float(r.get("lr_factor", 1.0)) != 1.0]
    rows = [r for r in rows if float(r.get("lr_factor", 1.0)) == 1.0]
    references = _references(bench_dir)
    blocks += _dataset_tables([r for r in rows if r in stepped], references, "Dataset")
    for seconds in dict.fromkeys(r["budget_seconds"] for r in timed):
        blocks.append(("h2", f"Quality at equal training time: {seconds:g} s per cell"))
        blocks.append(("p", TIMED_TEXT))
        subset = [r for r in rows if r in timed and r["budget_seconds"] == seconds]
        blocks += _dataset_tables(subset, references, f"{seconds:g} s on", level="h3")
    if swept:
        blocks.append(("h2", "Learning-rate sweep (stability)"))
        head = ["model", "dataset", "seed", "lr factor", "status", "error"]
        body = [[r["model"], r["dataset"], str(r["seed"]), _fmt(float(r["lr_factor"])),
                 r.get("status", ""), r.get("error", "")[:120]] for r in swept]  # fmt: skip
        blocks.append(("table", (head, body)))
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        blocks.append(("h2", "Runs that failed or diverged"))
        blocks.append(("list", [f"{r['model']} on {r['dataset']}: {r.get('error', '')}"
                                for r in failed]))  # fmt: skip
    if figures:
        blocks.append(("h2", "Quality against training time and sampling steps"))
        blocks.append(("p", QUALITY_TEXT))
        blocks.append(("images", figures))
    blocks += _fast_sampler_blocks(bench_dir, [r for r in rows if r in stepped])
    blocks.append(("h2", "Samples (text samples as decoded), densities and loss curves"))
    for row in rows:
        pictures = _cell_pictures(bench_dir, row)
        samples = _inside(bench_dir, _run_path(row) / "samples.txt")
        if pictures or samples:
            blocks.append(("h3", f"{row['model']} on {row['dataset']} (seed {row['seed']})"))
        if samples:
            blocks.append(("pre", samples.read_text(encoding="utf-8")))
        if pictures:
            blocks.append(("images", pictures))
    return blocks


def _references(bench_dir: Path) -> dict[str, dict[str, Any]]:
    """The "held-out data" rows the runner measured, by dataset (``references.json``)."""
    path = bench_dir / REFERENCES_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _conditional_tables(bench_dir: Path, rows) -> list[tuple[str, Any]]:
    """The "Conditional generation" section: per conditioned cell (summarised over seeds),
    the conditional NLL, Bayes-rule accuracy and sample class accuracy, with each dataset's
    LogisticRegression reference."""
    rows = [r for r in rows if float(r.get("lr_factor", 1.0)) == 1.0]
    if not rows:
        return []
    texts = [r for r in rows if _text_conditioned(r["dataset"])]
    rows = [r for r in rows if r not in texts]
    blocks: list[tuple[str, Any]] = [("h2", "Conditional generation")]
    if rows:
        blocks += [("p", CONDITIONAL_TEXT), _class_conditional_table(bench_dir, rows)]
    if texts:
        for row in texts:  # nats per output position, from the bits the row already holds
            bits = row.get("bits_per_token", row.get("bits_per_dim"))
            if isinstance(bits, (int, float)):
                row["nll_per_position"] = bits * math.log(2)
        body = [[_cell(r, k) for k, _ in TEXT_CONDITIONAL_COLUMNS] for r in summarise(texts)]
        blocks += [
            ("h3", "Given a text input"),
            ("p", TEXT_CONDITIONAL_TEXT),
            ("table", ([t for _, t in TEXT_CONDITIONAL_COLUMNS], body)),
        ]
    return blocks


def _text_conditioned(dataset: str) -> bool:
    """Whether ``dataset`` carries a text input as its condition (kind ``"tokens"``)."""
    try:
        condition = dataset_info(dataset).condition
    except GenzooError:  # a user's file gone since the bench ran: not a text input
        return False
    return condition is not None and condition.kind == "tokens"


def _class_conditional_table(bench_dir: Path, rows) -> tuple[str, Any]:
    """The table of the models given a class or a vector, with the LogisticRegression rows."""
    path = bench_dir / CONDITIONAL_REFERENCES_FILE
    references = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    body = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        subset = summarise([r for r in rows if r["dataset"] == dataset])
        if references.get(dataset):
            condition = subset[0].get("condition", "")
            subset.append({"dataset": dataset, "condition": condition, **references[dataset]})
        body += [[_cell(r, k) for k, _ in CONDITIONAL_COLUMNS] for r in subset]
    return ("table", ([t for _, t in CONDITIONAL_COLUMNS], body))


def _first_runs(bench_dir: Path, rows, name: str):
    """``(row, parsed file)`` of each model's first finished run per dataset holding
    ``name`` (a JSON file in its run folder)."""
    seen = set()
    for row in rows:
        key = (row["model"], row["dataset"])
        if row.get("status") != "ok" or float(row.get("lr_factor", 1.0)) != 1.0 or key in seen:
            continue
        path = _inside(bench_dir, _run_path(row) / name)
        if path is not None:
            seen.add(key)
            yield row, json.loads(path.read_text(encoding="utf-8"))


def _fast_sampler_blocks(bench_dir: Path, rows) -> list[tuple[str, Any]]:
    """The few-step samplers' quality against network evaluations: a table per dataset
    (rows: model and sampler; columns: NFE) and one figure, from ``fast_samplers.json``."""
    from genzoo.plotting import plot_quality_curves

    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    targets: dict[str, tuple[str, float]] = {}
    tables: dict[str, list[tuple[str, str, dict[float, float]]]] = {}
    for row, points in _first_runs(bench_dir, rows, "fast_samplers.json"):
        if not points or "quality_target" not in row:
            continue
        metric, threshold = row["quality_target"].split(" <= ")
        targets[row["dataset"]] = (metric, float(threshold))
        for sampler in dict.fromkeys(p["sampler"] for p in points):
            mine = [p for p in points if p["sampler"] == sampler]
            label = f"{row['model']} {sampler}"
            curves.setdefault(row["dataset"], {})[label] = [
                (p["nfe"], max(p[metric], CURVE_FLOOR)) for p in mine
            ]
            values = {p["nfe"]: p[metric] for p in mine}
            tables.setdefault(row["dataset"], []).append((row["model"], sampler, values))
    if not tables:
        return []
    blocks: list[tuple[str, Any]] = [("h2", "Few-step samplers: quality against network "
                                            "evaluations"), ("p", FAST_SAMPLERS_TEXT)]  # fmt: skip
    for dataset, entries in tables.items():
        nfes = sorted({n for _, _, values in entries for n in values})
        metric = targets[dataset][0]
        head = ["model", "sampler"] + [f"{metric} @ {n:g} NFE" for n in nfes]
        body = [[model, sampler] + [_fmt(values[n]) if n in values else "" for n in nfes]
                for model, sampler, values in entries]  # fmt: skip
        blocks += [("h3", f"Few-step samplers: {dataset}"), ("table", (head, body))]
    path = plot_quality_curves(curves, targets, bench_dir / "fast_samplers.png",
                               xlabel="network evaluations per sample")  # fmt: skip
    blocks.append(("images", [str(path.relative_to(bench_dir))]))
    return blocks


def _guidance_blocks(bench_dir: Path, rows) -> list[tuple[str, Any]]:
    """The guidance sweep of each class-conditional score model (``guidance.json`` and
    ``guidance.png`` of its first run per dataset): a table and the figure."""
    blocks: list[tuple[str, Any]] = []
    for row, sweep in _first_runs(bench_dir, rows, "guidance.json"):
        if not blocks:
            blocks += [("h3", "Classifier-free guidance"), ("p", GUIDANCE_TEXT)]
        blocks.append(("h3", f"Guidance: {row['model']} on {row['dataset']} (seed "
                             f"{row['seed']}; data's diversity "
                             f"{_fmt(sweep['data_diversity'])}, chance "
                             f"{_fmt(sweep['chance'])})"))  # fmt: skip
        head = ["guidance scale w", "class accuracy ↑", "diversity", "NFE"]
        body = [[_fmt(r["guidance"]), _fmt(r["accuracy"]), _fmt(r["diversity"]),
                 _fmt(r["nfe"])] for r in sweep["rows"]]  # fmt: skip
        blocks.append(("table", (head, body)))
        picture = _inside(bench_dir, _run_path(row) / "guidance.png")
        if picture is not None:
            blocks.append(("images", [str(_run_path(row) / "guidance.png")]))
    return blocks


def _dataset_tables(rows, references, title: str, level: str = "h2") -> list[tuple[str, Any]]:
    """One table per dataset: models summarised over seeds, ranked by NLL and by C2ST."""
    blocks: list[tuple[str, Any]] = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        blocks.append((level, f"{title}: {dataset}"))
        subset = summarise([r for r in rows if r["dataset"] == dataset])
        for key, target, column in (("nll", None, "nll_rank"), ("c2st_accuracy", 0.5, "c2st_rank")):
            for i, shown in rank(subset, key, target).items():
                subset[i][column] = shown
        if dataset in references:
            subset.insert(0, {"model": REFERENCE_NAME, **references[dataset]})
        columns = [(k, t) for k, t in DATASET_COLUMNS if any(k in r for r in subset)]
        body = [[_cell(r, k) for k, _ in columns] for r in subset]
        blocks.append(("table", ([t for _, t in columns], body)))
    return blocks


def _markdown(blocks) -> str:
    """The report as Markdown; text from result files is escaped, so an error message or a
    model's samples holding HTML show as text, never as markup."""

    def esc(text: str) -> str:
        return html.escape(text, quote=False)

    out: list[str] = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            out += ["#" * int(kind[1]) + " " + esc(content), ""]
        elif kind == "p":
            out += [esc(content), ""]
        elif kind == "list":
            out += [f"- {esc(item)}" for item in content] + [""]
        elif kind == "table":
            head, body = content
            out.append("| " + " | ".join(map(esc, head)) + " |")
            out.append("|" + "---|" * len(head))
            out += ["| " + " | ".join(esc(c).replace("|", "/") for c in r) + " |" for r in body]
            out.append("")
        elif kind == "images":
            out += [" ".join(f"![{Path(p).stem}]({p})" for p in content), ""]
        elif kind == "pre":  # a fence longer than any run of backticks inside
            fence = "`" * max(3, 1 + max((len(r) for r in re.findall("`+", content)), default=0))
            out += [fence, content.rstrip("\n"), fence, ""]
    return "\n".join(out)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html(bench_dir: Path, blocks) -> str:
    esc = html.escape
    parts = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{esc(content)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{esc(content)}</p>")
        elif kind == "list":
            items = "".join(f"<li>{esc(item).replace('**', '')}</li>" for item in content)
            parts.append(f"<ul>{items}</ul>")
        elif kind == "table":
            head, body = content
            th = "".join(f"<th>{esc(h)}</th>" for h in head)
            trs = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body)
            parts.append(f"<table><tr>{th}</tr>{trs}</table>")
        elif kind == "pre":
            parts.append(f"<pre>{esc(content)}</pre>")
        elif kind == "images":
            parts.append("<div>" + "".join(
                f'<img alt="{esc(p)}" src="{_data_uri(bench_dir / p)}">' for p in content
            ) + "</div>")  # fmt: skip
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;font-size:90%}img{height:260px;margin:4px}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>genzoo benchmark</title>"
        f"<style>{style}</style><script>{IMAGE_CHECK}</script></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )
