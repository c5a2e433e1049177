"""The report: ``report.md`` and ``report.html`` made from a bench folder's files alone."""

from __future__ import annotations

import csv
import html
from pathlib import Path

from genzoo.io import atomic_write

TABLE_COLUMNS = [
    ("model", "model"),
    ("family", "family"),
    ("dataset", "dataset"),
    ("measure", "what the number is"),
    ("nll", "test NLL (nats)"),
    ("bits_per_dim", "bits/dim"),
    ("gap_to_entropy", "NLL - true entropy"),
    ("train_seconds", "train s"),
    ("sample_ms_per_1k", "ms / 1k samples"),
    ("status", "status"),
]
PICTURES = ("samples.png", "density.png", "loss.png")


def _fmt(value: str) -> str:
    try:
        return f"{float(value):.3f}"
    except ValueError:
        return value


def read_results(bench_dir: str | Path) -> list[dict[str, str]]:
    """The rows of ``results.csv``."""
    path = Path(bench_dir) / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `genzoo bench --out {bench_dir}` first")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_report(bench_dir: str | Path) -> list[Path]:
    """Write ``report.md`` and ``report.html`` beside ``results.csv``; return their paths."""
    bench_dir = Path(bench_dir)
    rows = read_results(bench_dir)
    md = _markdown(bench_dir, rows)
    page = _html(bench_dir, rows)
    paths = [bench_dir / "report.md", bench_dir / "report.html"]
    for path, text in zip(paths, (md, page), strict=True):
        atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
    return paths


def _pictures(bench_dir: Path, row: dict[str, str]) -> list[str]:
    run = Path("runs") / f"{row['model']}__{row['dataset']}__{row['seed']}"
    return [str(run / name) for name in PICTURES if (bench_dir / run / name).exists()]


def _markdown(bench_dir: Path, rows: list[dict[str, str]]) -> str:
    lines = [
        "# genzoo benchmark",
        "",
        "Held-out negative log-likelihood in nats per example (lower is better); bits/dim on "
        "the discrete scale for image data. 'NLL - true entropy' is the gap to the best any "
        "model can do on a toy whose true density is known. The 'what the number is' column "
        "says whether it is an exact likelihood, a bound or an estimate.",
        "",
        "| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(key, "")) for key, _ in TABLE_COLUMNS) + " |")
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {r['model']} on {r['dataset']}: {r.get('error', '')}" for r in failed]
    lines += ["", "## Pictures", ""]
    for row in rows:
        pictures = _pictures(bench_dir, row)
        if pictures:
            lines.append(f"### {row['model']} on {row['dataset']} (seed {row['seed']})")
            lines.append("")
            lines.append(" ".join(f"![{Path(p).stem}]({p})" for p in pictures))
            lines.append("")
    return "\n".join(lines) + "\n"


def _html(bench_dir: Path, rows: list[dict[str, str]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(title)}</th>" for _, title in TABLE_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(_fmt(r.get(k, '')))}</td>" for k, _ in TABLE_COLUMNS) + "</tr>"
        for r in rows
    )
    figures = "".join(
        f"<h3>{esc(r['model'])} on {esc(r['dataset'])} (seed {esc(r['seed'])})</h3>"
        + "".join(f'<img src="{esc(p)}" height="260">' for p in _pictures(bench_dir, r))
        for r in rows
        if _pictures(bench_dir, r)
    )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>genzoo benchmark</title>"
        f"<style>{style}</style></head><body><h1>genzoo benchmark</h1>"
        f"<p>Held-out NLL in nats per example; bits/dim on the discrete scale for images.</p>"
        f"<table><tr>{head}</tr>{body}</table><h2>Pictures</h2>{figures}</body></html>\n"
    )
