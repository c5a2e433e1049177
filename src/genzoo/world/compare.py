"""The comparison of Azar et al. 2019 in small: random walk, prediction error and NDIGO, with
and without noise, over seeds; curves, heat maps of visits and a markdown summary.

Measured as the paper does (section 5): what a linear probe reads from the frozen belief (the
agent's position; each landmark's value while out of view, "map"), and how much of the maze the
agent visits per episode, over training, per agent; and how long it watches the screen.
Intervals are 95% Student-t intervals over seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from genzoo.world.agents import AGENTS, AgentConfig, run_agent

#: Share of the last iterations the final numbers average over.
TAIL = 0.2


def compare(
    base: AgentConfig,
    agents: Sequence[str] = AGENTS,
    noises: Sequence[str] = ("none", "white"),
    seeds: int = 3,
    progress: bool = True,
) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Run every agent in every noise setting for ``seeds`` seeds from the config ``base``."""
    runs = [(a, n, s) for n in noises for a in agents for s in range(seeds)]
    bar = tqdm(total=len(runs) * base.iterations, desc="world discovery", disable=not progress)
    results = {}
    for agent, noise, seed in runs:
        bar.set_postfix_str(f"{agent} noise={noise} seed={seed}")
        config = replace(base, agent=agent, noise=noise, seed=seed)
        results[(agent, noise, seed)] = run_agent(config, progress=bar)
    bar.close()
    return results


def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t interval (0 for one value)."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), 0.0
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def summary_rows(results: dict[tuple[str, str, int], dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (noise, agent): final coverage, screen time, probe accuracies, model loss,
    each a (mean, 95% half-width) over seeds."""
    rows = []
    keys = sorted({(n, a) for a, n, _ in results}, key=lambda k: (k[0], AGENTS.index(k[1])))
    for noise, agent in keys:
        runs = [r for (a, n, _), r in results.items() if (a, n) == (agent, noise)]
        row: dict[str, Any] = {"noise": noise, "agent": agent, "seeds": len(runs)}
        for key in ("coverage", "screen_time", "model_loss"):
            row[key] = interval([_tail(r["curve"], key) for r in runs])
        for key in ("position", "map"):
            row[key] = interval([r["probes"][-1][key] for r in runs])
        rows.append(row)
    return rows


def _tail(curve: list[dict[str, float]], key: str) -> float:
    n = max(1, int(len(curve) * TAIL))
    return float(np.mean([row[key] for row in curve[-n:]]))


def plot_curves(results: dict[tuple[str, str, int], dict[str, Any]], path: Path) -> Path:
    """Coverage, screen time and the probes over environment steps, per noise (rows) and
    agent (lines: mean over seeds, band: 95% interval)."""
    import matplotlib.pyplot as plt

    from genzoo.plotting import save_figure

    noises = sorted({n for _, n, _ in results})
    panels = [
        ("coverage", "curve", "share of the floor visited per episode"),
        ("screen_time", "curve", "share of steps with the screen in view"),
        ("position", "probes", "position probe accuracy"),
        ("map", "probes", "map probe accuracy (landmarks out of view)"),
    ]
    fig, axes = plt.subplots(
        len(noises), len(panels), figsize=(4.2 * len(panels), 3.2 * len(noises)), squeeze=False
    )
    for i, noise in enumerate(noises):
        for j, (key, table, title) in enumerate(panels):
            ax = axes[i, j]
            for agent in AGENTS:
                runs = [r for (a, n, _), r in results.items() if (a, n) == (agent, noise)]
                if not runs:
                    continue
                steps = np.array([row["steps"] for row in runs[0][table]])
                values = np.array([[row[key] for row in r[table]] for r in runs], dtype=float)
                if table == "curve":
                    values = np.array([_smooth(v) for v in values])
                pairs = [interval(col) for col in values.T]
                mean = np.array([m for m, _ in pairs])
                half = np.array([h for _, h in pairs])
                ax.plot(steps, mean, label=agent)
                ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
            ax.set_title(f"{title}\nnoise={noise}", fontsize=9)
            ax.set_xlabel("environment steps")
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def _smooth(values: np.ndarray, width: int = 5) -> np.ndarray:
    """Moving average over ``width`` points, shorter at the ends (no padding bias)."""
    kernel = np.ones(min(width, len(values)))
    return np.convolve(values, kernel, "same") / np.convolve(np.ones(len(values)), kernel, "same")


def plot_visits(results: dict[tuple[str, str, int], dict[str, Any]], path: Path) -> Path:
    """Heat maps of the cells visited (share of all steps, seeds pooled, one colour scale):
    noise by rows, agent by columns; walls in grey, the screen's cells marked."""
    import matplotlib.pyplot as plt

    from genzoo.plotting import save_figure

    noises = sorted({n for _, n, _ in results})
    agents = [a for a in AGENTS if any(k[0] == a for k in results)]
    fig, axes = plt.subplots(
        len(noises), len(agents), figsize=(3.2 * len(agents), 3.2 * len(noises)), squeeze=False
    )
    maps = {}
    for noise in noises:
        for agent in agents:
            runs = [r for (a, n, _), r in results.items() if (a, n) == (agent, noise)]
            share = np.sum([r["visits"] for r in runs], 0) / np.sum(
                [r["visits"].sum() for r in runs]
            )
            maps[noise, agent] = (share, runs[0]["walls"], runs[0]["screen"])
    top = max(float(m[0].max()) for m in maps.values())
    for i, noise in enumerate(noises):
        for j, agent in enumerate(agents):
            share, walls, screen_mask = maps[noise, agent]
            ax = axes[i, j]
            ax.imshow(walls, cmap="Greys", vmin=0, vmax=2.5)
            shown = ax.imshow(np.ma.masked_where(walls, share), cmap="viridis", vmin=0, vmax=top)
            fig.colorbar(shown, ax=ax, fraction=0.046, label="share of steps")
            screen = np.argwhere(screen_mask)
            if len(screen):
                ax.scatter(screen[:, 1], screen[:, 0], marker="x", color="red", s=12)
            ax.set_title(f"{agent}, noise={noise}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)


def write_summary(
    rows: list[dict[str, Any]],
    path: Path,
    base: AgentConfig,
    seeds: int,
    seconds: float,
    figures: Sequence[Path] = (),
) -> Path:
    """The markdown summary: the setting, the table, the verdict on noise."""

    def fmt(pair: tuple[float, float]) -> str:
        mean, half = pair
        return "n/a" if math.isnan(mean) else f"{mean:.3f} ± {half:.3f}"

    lines = [
        "# World discovery: random walk, prediction-error curiosity and NDIGO",
        "",
        f"Maze `{base.layout}`, view {base.view}x{base.view}, {base.n_envs} episodes of "
        f"{base.episode_length} steps per iteration, {base.iterations} iterations "
        f"({base.iterations * base.n_envs * base.episode_length} environment steps) per run, "
        f"{seeds} seeds; NDIGO horizon k = {base.horizon}; {seconds / 60:.1f} minutes in all. "
        "Final numbers: coverage, screen time and model loss averaged over the last "
        f"{int(TAIL * 100)}% of iterations, probes at the end; mean ± 95% interval over seeds.",
        "",
        "| noise | agent | coverage | screen time | position probe | map probe | model loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['noise']} | {r['agent']} | {fmt(r['coverage'])} | "
            f"{fmt(r['screen_time'])} | {fmt(r['position'])} | {fmt(r['map'])} | "
            f"{fmt(r['model_loss'])} |"
        )
    lines += ["", verdict(rows), ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def verdict(rows: list[dict[str, Any]]) -> str:
    """Whether NDIGO beat prediction-error curiosity under noise, on each measure, in words."""
    by = {(r["noise"], r["agent"]): r for r in rows}
    noisy = sorted({r["noise"] for r in rows} - {"none"})
    parts = []
    for noise in noisy:
        nd, pe = by.get((noise, "ndigo")), by.get((noise, "prediction-error"))
        if nd is None or pe is None:
            continue
        for key, word in (
            ("coverage", "coverage"),
            ("map", "map probe"),
            ("position", "position probe"),
        ):
            (a, ha), (b, hb) = nd[key], pe[key]
            if math.isnan(a) or math.isnan(b):
                continue
            if a - ha > b + hb:
                how = "higher than"
            elif a + ha < b - hb:
                how = "lower than"
            else:
                how = "not distinguishable from"
            parts.append(
                f"with {noise} noise NDIGO's {word} ({a:.3f}) is {how} prediction error's ({b:.3f})"
            )
        (a, _), (b, _) = nd["screen_time"], pe["screen_time"]
        parts.append(f"NDIGO watches the screen {a:.1%} of steps, prediction error {b:.1%}")
    return (
        (
            "Verdict (95% intervals that do not overlap count as a difference): "
            + "; ".join(parts)
            + "."
        )
        if parts
        else ""
    )


def run_comparison(
    out: Path,
    base: AgentConfig,
    agents: Sequence[str] = AGENTS,
    noises: Sequence[str] = ("none", "white"),
    seeds: int = 3,
    progress: bool = True,
) -> dict[str, Any]:
    """Everything: the runs, ``summary.md``, ``curves.png``, ``visits.png`` and
    ``results.json`` in ``out``; returns the summary rows and the paths written."""
    from genzoo.io import write_json

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = compare(base, agents, noises, seeds, progress)
    seconds = time.perf_counter() - start
    rows = summary_rows(results)
    figures = [plot_curves(results, out / "curves.png"), plot_visits(results, out / "visits.png")]
    summary = write_summary(rows, out / "summary.md", base, seeds, seconds, figures)
    raw = {
        f"{a}/{n}/{s}": {"curve": r["curve"], "probes": r["probes"], "config": r["config"]}
        for (a, n, s), r in results.items()
    }
    write_json(out / "results.json", {"rows": rows, "runs": raw, "seconds": seconds})
    return {"rows": rows, "paths": [summary, *figures, out / "results.json"], "seconds": seconds}
