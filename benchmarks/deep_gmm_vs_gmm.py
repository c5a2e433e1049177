"""Deep Gaussian mixture (Viroli & McLachlan 2019) against flat GMMs of the same size.

For each data set, a ``deep-gmm`` is fitted on the train split by stochastic EM (and, with
``--gradient``, by Adam on the exact log-likelihood), and flat ``gmm``s are fitted by EM (to
convergence, tol 1e-4, at most 300 steps) with full and with diagonal covariances, their K
chosen so that their number of free parameters is the closest to the deep model's. Every
model is scored by its exact held-out mean log-likelihood in nats (higher is better), over
``--seeds`` seeds (mean and standard deviation).

Data:

- ``digits``: scikit-learn's 8x8 digits flattened to 64 numbers, uniformly dequantised
  ((level + u) / 17, so a density on [0, 1)^64); train 1000 rows, test 447.
- ``wine`` (13 columns) and ``breast-cancer`` (30), standardised on the train split.

Run by hand (not by pytest):
    python benchmarks/deep_gmm_vs_gmm.py
    python benchmarks/deep_gmm_vs_gmm.py --datasets wine --seeds 5 --sem-steps 200 --gradient
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import genzoo
from genzoo.models.deep_gmm import DeepGaussianMixture
from genzoo.models.mixtures import GaussianMixture

#: Deep-GMM architecture per data set: k_l per layer and r_l per layer.
ARCH = {
    "digits": {"n_components": [4, 2], "latent_dims": [5, 1]},
    "wine": {"n_components": [3, 2], "latent_dims": [3, 1]},
    "breast-cancer": {"n_components": [3, 2], "latent_dims": [5, 1]},
}


def load(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test splits as float64 (n, d) matrices."""
    train = genzoo.load_dataset(name, split="train")
    test = genzoo.load_dataset(name, split="test")
    if name == "digits":
        g = torch.Generator().manual_seed(seed)
        train = genzoo.data.dequantize(train, 17, g)
        test = genzoo.data.dequantize(test, 17, g)
    return train.flatten(1).double(), test.flatten(1).double()


def matched_k(d: int, budget: int, covariance_type: str, n: int) -> int:
    """The K whose flat GMM parameter count is closest to ``budget`` (1 <= K <= n / 2)."""
    best = min(
        range(1, n // 2 + 1),
        key=lambda k: abs(GaussianMixture((d,), k, covariance_type).n_parameters - budget),
    )
    return best


@torch.no_grad()
def held_out(model, test: torch.Tensor) -> float:
    return float(model.log_prob(test).mean())


def run(name: str, seed: int, args) -> list[tuple[str, int, float, float]]:
    """Rows (model, n_parameters, held-out mean log-likelihood, seconds) for one seed."""
    train, test = load(name, seed)
    d = train.shape[1]
    rows = []
    t0 = time.perf_counter()
    deep = DeepGaussianMixture((d,), seed=seed, **ARCH[name]).double()
    deep.initialize(train)
    with torch.no_grad():
        for _ in range(args.sem_steps):
            deep.fit_step(train)
    label = f"deep-gmm SEM k={ARCH[name]['n_components']} r={ARCH[name]['latent_dims']}"
    rows.append((label, deep.n_parameters, held_out(deep, test), time.perf_counter() - t0))
    if args.gradient:
        t0 = time.perf_counter()
        grad = DeepGaussianMixture((d,), seed=seed, fit="gradient", **ARCH[name])
        grad.initialize(train)
        trainer = genzoo.Trainer(
            steps=args.grad_steps, batch_size=256, lr=args.lr, seed=seed, progress=False
        )
        trainer.fit(grad.double(), train, run_info=None)
        label = label.replace("SEM", "Adam")
        rows.append((label, grad.n_parameters, held_out(grad, test), time.perf_counter() - t0))
    for cov in ("full", "diag"):
        k = matched_k(d, deep.n_parameters, cov, train.shape[0])
        t0 = time.perf_counter()
        flat = GaussianMixture((d,), k, cov, tol=1e-4, reg_covar=1e-6, seed=seed).double()
        flat.initialize(train)
        flat.fit(train, max_iter=300)
        rows.append(
            (f"gmm {cov} K={k}", flat.n_parameters, held_out(flat, test), time.perf_counter() - t0)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits,wine,breast-cancer")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sem-steps", type=int, default=100)
    parser.add_argument("--gradient", action="store_true", help="also fit deep-gmm by Adam")
    parser.add_argument("--grad-steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seeds} seeds")
    for name in args.datasets.split(","):
        results: dict[str, list] = {}
        for seed in range(args.seeds):
            for label, n_params, ll, secs in run(name, seed, args):
                results.setdefault(label, []).append((n_params, ll, secs))
        print(f"\n{name}: held-out mean log-likelihood, nats (higher is better)")
        print(f"{'model':<40} {'params':>7} {'test ll':>10} {'sd':>7} {'s/fit':>7}")
        for label, values in results.items():
            lls = [v[1] for v in values]
            sd = statistics.stdev(lls) if len(lls) > 1 else 0.0
            secs = statistics.mean(v[2] for v in values)
            print(
                f"{label:<40} {values[0][0]:>7} {statistics.mean(lls):>10.3f} "
                f"{sd:>7.3f} {secs:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
