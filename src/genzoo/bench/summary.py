"""Rows of the benchmark summarised over seeds (mean ± standard error) and ranked with ties.

A cell is one seed; the tables and the ratings read these summaries, so every number shown
for several seeds carries its spread, and two models whose difference is within that spread
share a rank.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

Row = dict[str, Any]

#: Columns that identify a run rather than measure it.
KEYS = ("model", "family", "dataset", "condition", "mode", "budget_seconds", "lr_factor")
#: Two values tie when they differ by at most this many standard errors of their difference
#: (about a 95% interval).
TIE_Z = 2.0


def number(row: Row, key: str) -> float | None:
    """``row[key]`` as a finite float, else ``None``."""
    try:
        value = float(row.get(key, ""))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def mean_and_stderr(values: list[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (``None`` for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, statistics.stdev(values) / math.sqrt(len(values))


def summarise(rows: list[Row]) -> list[Row]:
    """One row per (model, dataset, mode, budget, learning-rate factor), in first-seen order:
    numbers as their mean over the seeds that finished, ``KEY_se`` their standard error
    (with two or more seeds), ``seeds`` the count, ``status`` "ok" or "k/n ok"."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in KEYS), []).append(row)
    out = []
    for members in groups.values():
        ok = [r for r in members if r.get("status") == "ok"]
        summary: Row = {k: members[0].get(k) for k in KEYS if k in members[0]}
        for key in ("measure", "density", "nll_kind", "nll_label", "quality_target", "n_modes"):
            if any(key in r for r in ok):
                summary[key] = next(r[key] for r in ok if key in r)
        summary["seeds"] = len(members)
        summary["status"] = "ok" if len(ok) == len(members) else f"{len(ok)}/{len(members)} ok"
        if len(ok) < len(members):
            summary["error"] = next(r.get("error", "") for r in members if r not in ok)
        numeric = dict.fromkeys(k for r in ok for k in r if k not in summary and k != "seed")
        for key in numeric:
            values = [v for r in ok if (v := number(r, key)) is not None]
            if values:
                summary[key], stderr = mean_and_stderr(values)
                if stderr is not None:
                    summary[f"{key}_se"] = stderr
        out.append(summary)
    return out


def spread(row: Row, key: str) -> float:
    """The standard error of ``row[key]``: over seeds where there are several, else the
    row's own sampling error where it has one (``nll_stderr`` over test examples)."""
    for name in (f"{key}_se", f"{key}_stderr"):
        if (value := number(row, name)) is not None:
            return value
    return 0.0


def rank(rows: list[Row], key: str, target: float | None = None) -> dict[int, str]:
    """Ranks of ``rows`` by ``key`` (lower is better; with ``target``, the excess over it:
    a two-sample accuracy below chance is chance),
    as ``{index: "1" | "=1" | ...}``. A row whose value is within ``TIE_Z`` standard errors
    of its group's best (``spread``) shares that rank, shown with "=" when shared."""
    scored = []
    for i, row in enumerate(rows):
        if (value := number(row, key)) is not None:
            scored.append(
                (max(value, target) - target if target is not None else value, spread(row, key), i)
            )
    scored.sort()
    ranks: dict[int, int] = {}
    best = None
    for position, (value, se, i) in enumerate(scored, start=1):
        if best is not None and value - best[0] <= TIE_Z * math.hypot(se, best[1]):
            ranks[i] = ranks[best[2]]
        else:
            ranks[i], best = position, (value, se, i)
    shared = Counter(ranks.values())
    return {i: ("=" if shared[r] > 1 else "") + str(r) for i, r in ranks.items()}
