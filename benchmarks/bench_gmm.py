"""Time genzoo's EM against scikit-learn's GaussianMixture on the same data, K and start.

Both run a fixed number of EM iterations (tol=0) from the same initial parameters (genzoo's
k-means++ start, handed to scikit-learn as weights_init / means_init / precisions_init), so
they do the same work. scikit-learn's time also holds its own initialisation pass (with
init_params="random_from_data", the cheapest: one M-step over the data) and the final E-step
it runs after the loop, about one extra iteration in all; genzoo's time is the EM loop only.
scikit-learn computes in float64; genzoo is timed in each dtype given by --dtypes.

Run by hand (not by pytest):
    python benchmarks/bench_gmm.py
    python benchmarks/bench_gmm.py --iters 20 --cases 200000x2x8,50000x16x10 --device cuda
    python benchmarks/bench_gmm.py --threads 1
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

from genzoo.models.mixtures import GaussianMixture


def make_data(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """n points in d dimensions from a random K-component Gaussian mixture (float64)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    factors = rng.normal(scale=0.6, size=(k, d, d)) / np.sqrt(d) + 0.3 * np.eye(d)
    labels = rng.integers(k, size=n)
    noise = rng.normal(size=(n, d))
    return means[labels] + np.einsum("nij,nj->ni", factors[labels], noise)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def settle() -> None:
    """Let idle BLAS/OpenMP worker threads of the previous library stop spinning.

    Right after scikit-learn (numpy's BLAS) runs, its threads busy-wait for a while; on a
    2-core machine they then steal the cores torch's threads need (measured: 10x slower).
    """
    time.sleep(1.0)


def run_case(n, d, k, cov, iters, dtypes, device, seed):
    """Rows of the table for one (n, d, K, covariance type)."""
    data = make_data(n + n // 4, d, k, seed)
    train, test = data[:n], data[n:]
    init_model = GaussianMixture((d,), n_components=k, covariance_type=cov, seed=seed)
    init_model.double().initialize(torch.from_numpy(train))
    start = init_model.state_dict()

    sk = SkGaussianMixture(
        n_components=k,
        covariance_type=cov,
        tol=0.0,
        reg_covar=1e-6,
        max_iter=iters,
        init_params="random_from_data",
        random_state=seed,
        **init_model.sklearn_init(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        settle()
        t0 = time.perf_counter()
        sk.fit(train)
        sk_time = time.perf_counter() - t0
    sk_ll = float(sk.score(test))

    rows = []
    for dtype in dtypes:
        model = GaussianMixture((d,), n_components=k, covariance_type=cov, tol=0.0, seed=seed)
        model = model.to(device=device, dtype=dtype)
        model.load_state_dict(start)
        x = torch.from_numpy(train).to(device=device, dtype=dtype)
        xt = torch.from_numpy(test).to(device=device, dtype=dtype)
        model.fit_step(x[:1000])  # warm-up (kernels, allocator); then restore the start
        model.load_state_dict(start)
        sync(device)
        settle()
        t0 = time.perf_counter()
        for _ in range(iters):
            model.fit_step(x)
        sync(device)
        gz_time = time.perf_counter() - t0
        gz_ll = float(model.log_prob(xt).double().mean())
        rows.append(
            (n, d, k, cov, str(dtype).removeprefix("torch."), sk_time, gz_time, sk_ll, gz_ll)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cases",
        default="200000x2x8,50000x16x10",
        help="comma-separated NxDxK cases (default: %(default)s)",
    )
    parser.add_argument("--covariance-types", default="full,diag")
    parser.add_argument("--iters", type=int, default=30, help="EM iterations (tol=0)")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and scikit-learn's BLAS (default: torch's default)",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    header = (
        f"{'n':>7} {'d':>3} {'K':>3} {'cov':>4} {'dtype':>7} {'sklearn s':>10} "
        f"{'genzoo s':>9} {'sk/gz':>6} {'sk test ll':>11} {'gz test ll':>11}"
    )
    print(header)
    print("-" * len(header))
    for case in args.cases.split(","):
        n, d, k = (int(v) for v in case.split("x"))
        for cov in args.covariance_types.split(","):
            for row in run_case(n, d, k, cov, args.iters, dtypes, args.device, args.seed):
                n_, d_, k_, c_, dt, sk_t, gz_t, sk_ll, gz_ll = row
                print(
                    f"{n_:>7} {d_:>3} {k_:>3} {c_:>4} {dt:>7} {sk_t:>10.3f} {gz_t:>9.3f} "
                    f"{sk_t / gz_t:>6.2f} {sk_ll:>11.5f} {gz_ll:>11.5f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
