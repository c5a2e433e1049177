"""Every script in ``examples/`` runs: exit code 0, its results written into the folder it is
given (and nowhere else), and the lines it promises printed.

A new script is picked up by the glob with no edit here: it must accept ``--out DIR``, print
``wrote ...`` naming what it wrote, and finish in seconds with its default (small) step counts.
The scripts start together, one thread each and as many at once as there are cores, when the
first of them is tested, so the set takes about its total CPU time divided by the cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(path.name for path in EXAMPLES_DIR.glob("*.py"))
#: Seconds one script may take on a loaded 2-core machine (they take a few each).
TIMEOUT = 240

NUMBER = r"-?\d+\.\d+"
#: What each script must print, beyond the checks every script gets.
EXPECTED = {
    "autoregressive.py": [rf"categorical +density=exact +test NLL {NUMBER} nats",
                          rf"made +density=exact +test NLL {NUMBER} nats = {NUMBER} bits/pixel"],
    "compare_families.py": [rf"^{name} +{family} .* {NUMBER} +{NUMBER}$" for name, family in
                            [("gmm", "mixture"), ("realnvp", "flow"), ("vae", "vae"),
                             ("gan", "gan"), ("ddpm", "score")]],
    "conditional.py": [rf"categorical Q\(Y \| X\): KL\(P \|\| Q\) = {NUMBER} nats",
                       rf"class-conditional gmm by Bayes' rule {NUMBER} test accuracy, "
                       rf"LogisticRegression {NUMBER}",
                       rf"realnvp given the arm: test NLL {NUMBER} nats"],
    "energy.py": [rf"rbm density=estimate: AIS log Z {NUMBER} \+- {NUMBER}, .*"
                  rf"test log-likelihood {NUMBER} nats"],
    "estimator_pipeline.py": [rf"best \{{.*'density__n_components': \d.*\}}: held-out "
                              rf"log-likelihood {NUMBER} nats per row"],
    "fit_your_data.py": [r"demo\.csv: kind=tabular shape=\(3,\) levels=None",
                         rf"realnvp: held-out NLL {NUMBER} nats per row \(exact\)"],
    "flows.py": [rf"realnvp density=exact: test NLL {NUMBER} nats, true entropy 2\.39\d, "
                 rf"gap \(KL\) {NUMBER}"],
    "gans.py": [r"log_prob refused: .*no density", r"modes covered [0-8]/8, high-quality share"],
    "mixtures.py": [rf"gmm chose K=\d+ by BIC \({NUMBER}\); test NLL {NUMBER} nats \(exact\)",
                    r"reloaded model gives the same log_prob: True"],
    "sample_from_run.py": [r"config\.json, metrics\.jsonl, model\.safetensors",
                           r"realnvp \(flow\): \(1000, 2\) samples; same seed, same samples: True"],
    "score.py": [rf"ddpm steps= *{k} nfe={k} \(last_nfe {k}\): energy distance {NUMBER}, "
                 rf"modes [0-8]/8" for k in (5, 20, 100)],
    "world_discovery.py": [rf"ndigo +noise=white +coverage {NUMBER} \+- {NUMBER}"],
    "vae.py": [rf"vae density=estimate \(IWAE-50\): test ELBO {NUMBER} <= log p\(x\) ~ "
               rf"{NUMBER} nats"],
}  # fmt: skip


def _run(name: str, folder: Path) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """Run ``examples/name`` from an empty working folder with ``--out folder/out``."""
    cwd, out = folder / "cwd", folder / "out"
    cwd.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / name), "--out", str(out)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done, cwd, out


def _example_of(item: pytest.Item) -> str | None:
    """The example a collected test runs, if it is one of ``test_example_runs``."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("example") if callspec is not None else None


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> dict[str, Future]:
    """Start every selected example at once (bounded by the cores); a test waits for its own."""
    selected = sorted(
        {
            name
            for item in request.session.items
            if item.module is request.module and (name := _example_of(item))
        }
    )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {
            name: pool.submit(_run, name, tmp_path_factory.mktemp(Path(name).stem))
            for name in selected
        }
        yield futures
        for future in futures.values():
            future.cancel()


def test_there_is_an_example_per_family_and_each_expectation_has_its_script():
    families = {"autoregressive", "flows", "vae", "gans", "energy", "score", "mixtures"}
    assert families <= {Path(name).stem for name in EXAMPLES}
    assert set(EXPECTED) <= set(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs(example: str, runs: dict[str, Future]) -> None:
    done, cwd, out = runs[example].result()
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    assert not any(cwd.iterdir()), f"{example} wrote into its working folder"
    written = [path for path in out.rglob("*") if path.is_file() and path.stat().st_size > 0]
    assert written, f"{example} wrote nothing into --out {out}"
    assert re.search(r"^wrote ", done.stdout, re.M), f"{example} does not say what it wrote"
    for path in re.findall(re.escape(str(out)) + r"[^\s,;:)]*", done.stdout):
        assert Path(path).exists(), f"{example} printed {path}, which does not exist"
    for pattern in EXPECTED.get(example, []):
        assert re.search(pattern, done.stdout, re.M), f"{example}: no {pattern!r} in\n{done.stdout}"
