"""The survey's table, filled in by measurement: 1-5 stars per property, from stated rules.

Each rule is a short function of the benchmark rows and is printed in the report next to
the stars, with the numbers it used. Only "architecture" is declared rather than measured
(it is a property of the model class, not of a run), and the report says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genzoo.bench.summary import TIE_Z, mean_and_stderr
from genzoo.bench.summary import number as _num

Row = dict[str, Any]

#: The survey's order of families.
FAMILY_ORDER = ("autoregressive", "flow", "vae", "gan", "energy", "score", "mixture")

DENSITY_STARS = {"exact": 5, "estimate": 4, "bound": 3, "unnormalized": 2, "none": 1}

#: Declared architectural freedom of each family: (stars, the constraint).
ARCHITECTURE = {
    "autoregressive": (3, "any network, but outputs must respect a fixed variable ordering"),
    "flow": (2, "invertible layers with a cheap Jacobian; latent size = data size"),
    "vae": (4, "any encoder/decoder; a tractable posterior family"),
    "gan": (5, "any generator and discriminator"),
    "energy": (5, "any scalar energy network; sampling by MCMC"),
    "score": (4, "any network with the data's shape as output, conditioned on noise"),
    "mixture": (1, "a fixed parametric form: K Gaussians"),
}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _thresholds(value: float | None, cuts: tuple[float, float, float, float]) -> int:
    """5 stars at or above ``cuts[0]``, 4 at ``cuts[1]``, ... 1 below ``cuts[3]``."""
    if value is None:
        return 0
    return 5 - sum(value < c for c in cuts)


@dataclass(frozen=True)
class Rule:
    """One column of the ratings table."""

    name: str
    text: str
    rate: Callable[[list[Row]], tuple[int, str]]


def _base(rows: list[Row]) -> list[Row]:
    """The runs at the budget's own learning rate (not the stability sweep)."""
    return [r for r in rows if float(r.get("lr_factor", 1.0)) == 1.0]


def _per_seed(rows: list[Row], key: str) -> tuple[float | None, float | None]:
    """Mean of ``key`` and its standard error over seeds (each seed: the mean over datasets);
    ``(None, None)`` when no row has it, ``(mean, None)`` with one seed."""
    by_seed: dict[Any, list[float]] = {}
    for r in rows:
        if (v := _num(r, key)) is not None:
            by_seed.setdefault(r.get("seed"), []).append(v)
    if not by_seed:
        return None, None
    return mean_and_stderr([sum(v) / len(v) for v in by_seed.values()])


def _with_spread(
    value: float, stderr: float | None, cuts: tuple[float, float, float, float]
) -> tuple[int, str]:
    """Stars of ``value`` and, with several seeds, ``± s.e.`` and the stars within 2 s.e.:
    models whose stars differ by less than that spread are tied."""
    got = _thresholds(value, cuts)
    if stderr is None:
        return got, ""
    low, high = _thresholds(value - TIE_Z * stderr, cuts), _thresholds(value + TIE_Z * stderr, cuts)
    if low == high:
        return got, f" ± {stderr:.2f}"
    return got, f" ± {stderr:.2f} ({low}-{high} stars within the spread: a tie there)"


def _density(rows: list[Row]) -> tuple[int, str]:
    rows = _base(rows)
    kinds = {r.get("density", "none") for r in rows}  # EBMs: exact in 2-D, else unnormalised
    kind = min(kinds, key=lambda k: DENSITY_STARS.get(k, 1))
    # only normalised densities have an NLL: an energy's would move with a constant shift
    rows = [r for r in rows if r.get("density") in ("exact", "bound", "estimate")]
    gaps = [g for r in rows if (g := _num(r, "gap_to_entropy")) is not None]
    bpd = [b for r in rows if (b := _num(r, "bits_per_dim")) is not None]
    parts = [" / ".join(sorted(kinds, key=lambda k: -DENSITY_STARS.get(k, 1)))]
    if gaps:
        parts.append(f"gap to entropy {_mean(gaps):.3f} nats")
    if bpd:
        parts.append(f"{_mean(bpd):.2f} bits/dim")
    return DENSITY_STARS.get(kind, 1), ", ".join(parts)


def _capacity(rows: list[Row]) -> tuple[int, str]:
    rows = _base(rows)
    value, stderr = _per_seed(rows, "coverage")
    precision, _ = _per_seed(rows, "precision")
    if value is None:
        return 0, "no samples measured"
    got, spread = _with_spread(value, stderr, (0.9, 0.75, 0.5, 0.25))
    return got, f"coverage {value:.2f}{spread}, precision {precision:.2f}"


def _stability(rows: list[Row]) -> tuple[int, str]:
    failed, total = sum(r.get("status") != "ok" for r in rows), len(rows)
    factors = sorted({float(r.get("lr_factor", 1.0)) for r in rows} - {1.0})
    sweep = f" (learning rate x1, {', '.join(f'x{f:g}' for f in factors)})" if factors else ""
    rows = _base(rows)
    osc = [o for r in rows if (o := _num(r, "loss_oscillation")) is not None]
    stars = 5 - 2 * (failed > 0)
    notes = [f"{failed}/{total} runs diverged or failed{sweep}"]
    if osc:
        mean_osc = _mean(osc)
        stars -= (mean_osc > 0.05) + (mean_osc > 0.3)
        notes.append(f"loss oscillation {mean_osc:.3f}")
    by_dataset: dict[str, list[float]] = {}
    for r in rows:
        if (c := _num(r, "coverage")) is not None:
            by_dataset.setdefault(r["dataset"], []).append(c)
    spreads = [statistics.stdev(v) for v in by_dataset.values() if len(v) > 1]
    if spreads:
        spread = _mean(spreads)
        stars -= spread > 0.05
        notes.append(f"coverage spread over seeds {spread:.3f}")
    return max(1, stars), ", ".join(notes)


def _speed(rows: list[Row]) -> tuple[int, str]:
    rows = _base(rows)
    rates = [s for r in rows if (s := _num(r, "samples_per_second")) is not None]
    train = [t for r in rows if (t := _num(r, "train_seconds")) is not None]
    if not rates:
        return 0, "not measured"
    rate = statistics.median(rates)
    sampling = _thresholds(rate, (1e6, 1e5, 1e4, 1e3))
    notes = [f"{rate:,.0f} samples/s"] + ([f"{_mean(train):.1f} s training"] if train else [])
    tracked = [r for r in rows if r.get("quality_target")]
    if not tracked:
        return sampling, ", ".join(notes)
    # a run that never met its target counts as slower than every cut
    seconds = [_num(r, "time_to_target") or math.inf for r in tracked]
    to_target = statistics.median(seconds)
    training = _thresholds(-to_target, (-2.0, -5.0, -15.0, -60.0))
    reached = sum(math.isfinite(s) for s in seconds)
    shown = f"{to_target:.1f} s" if math.isfinite(to_target) else "not met"
    notes.append(f"median time to target {shown} ({reached}/{len(seconds)} runs met it)")
    return round((sampling + training) / 2 + 1e-9), ", ".join(notes)


def _architecture(rows: list[Row]) -> tuple[int, str]:
    rows = _base(rows)
    stars, text = ARCHITECTURE.get(rows[0].get("family", ""), (0, "unknown family"))
    return stars, f"declared: {text}"


RULES = (
    Rule("stability", "5 stars, minus 2 if any run diverged or failed (the full preset also "
         "trains every cell at 10x the learning rate), minus 1 if the mean loss "
         "oscillation (relative step-to-step change over the second half) exceeds 0.05 and 1 "
         "more above 0.3, minus 1 if sample coverage varies over seeds by more than 0.05 (std)",
         _stability),
    Rule("capacity", "mean k-NN coverage of the test set by samples (Naeem et al. 2020): "
         "5 stars >= 0.9, 4 >= 0.75, 3 >= 0.5, 2 >= 0.25, else 1; with several seeds, "
         "± the standard error over seeds and the stars reached within 2 of them (models "
         "whose stars differ by less than that spread are tied)", _capacity),
    Rule("density", "what log_prob is: exact 5, estimate 4, bound 3, unnormalised 2, none 1; "
         "the measured gap to the true entropy and bits/dim beside it (normalised densities "
         "only: an unnormalised energy has no NLL)", _density),
    Rule("architecture", "declared, not measured: how freely the networks can be chosen",
         _architecture),
    Rule("speed", "the mean, rounded half up, of sampling stars (median samples per second: "
         "5 >= 1e6, 4 >= 1e5, 3 >= 1e4, 2 >= 1e3, else 1) and training stars (median "
         "training seconds until the samples met the dataset's quality target: 5 <= 2 s, "
         "4 <= 5 s, 3 <= 15 s, 2 <= 60 s, else or never met 1); sampling stars alone where "
         "no dataset has a target (text, digits-binary)", _speed),
)  # fmt: skip


def ratings(rows: list[Row]) -> list[dict[str, Any]]:
    """One entry per model, in the survey's family order: stars and notes per property."""
    by_model: dict[str, list[Row]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)

    def order(name: str) -> tuple[int, str]:
        family = by_model[name][0].get("family", "")
        rank = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
        return rank, name

    table = []
    for name in sorted(by_model, key=order):
        entry: dict[str, Any] = {"model": name, "family": by_model[name][0].get("family", "")}
        for rule in RULES:
            entry[rule.name] = rule.rate(by_model[name])
        table.append(entry)
    return table


def stars(n: int) -> str:
    """``★★★☆☆`` for 3; ``n/a`` for 0."""
    return "★" * n + "☆" * (5 - n) if n else "n/a"
