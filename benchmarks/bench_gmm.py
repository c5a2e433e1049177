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
    python benchmarks/bench_gmm.py --memmap            # EM over a 10-million-row .npy file
    python benchmarks/bench_gmm.py --memmap --memmap-rows 1000000 --memmap-d 64 --threads 1
    python benchmarks/bench_gmm.py --memmap --memmap-rows 100000000 --memmap-dir /big/disk

--memmap writes N x D float32 points (D = --memmap-d, 2 by default) to a .npy file (chunk by
chunk, with plain writes so the writer's memory stays small), then times ``fit_gmm_memmap``
on it and reports the peak resident memory during the fit (Linux: VmHWM after resetting it
through clear_refs; elsewhere resource.getrusage's peak for the whole process, imports
included) next to the file size: the fit's extra memory should not grow with N. Unless
--no-sklearn, scikit-learn's GaussianMixture is then run on the whole file loaded in memory
(float32, as stored), from the same initial parameters (genzoo's initialisation on the
file, handed over as weights_init / means_init / precisions_init) for the same number of
EM iterations (tol=0), with its time, peak memory and final mean train log-likelihood; it is
skipped when the file is larger than --sklearn-max-mb.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

from genzoo.models.gmm_files import fit_gmm_memmap
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


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (ru_maxrss: KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def current_rss_mb() -> float:
    """Resident memory now, in MB (Linux /proc; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark VmHWM (Linux: write 5 to clear_refs); True if done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def vm_hwm_mb() -> float:
    """Peak resident memory since the last ``reset_peak``, in MB (Linux /proc; else NaN)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def write_npy(path: Path, n: int, d: int, k: int, seed: int, chunk: int = 1_000_000) -> None:
    """n x d float32 points from a random K-component mixture, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    factors = rng.normal(scale=0.6, size=(k, d, d)) / np.sqrt(d) + 0.3 * np.eye(d)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {**header, "shape": (n, d)})
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            labels = rng.integers(k, size=m)
            rows = rng.normal(size=(m, d))  # noise, mapped through its component's factor
            for j in range(k):
                sel = labels == j
                rows[sel] = means[j] + rows[sel] @ factors[j].T
            rows.astype("<f4").tofile(f)


def run_memmap(args) -> None:
    """Time EM over a .npy file read in chunks, and report peak memory (and scikit-learn's)."""
    n, d, k = args.memmap_rows, args.memmap_d, args.memmap_k
    with tempfile.TemporaryDirectory(dir=args.memmap_dir) as tmp:
        path = Path(tmp) / "points.npy"
        t0 = time.perf_counter()
        write_npy(path, n, d, k, args.seed)
        write_s = time.perf_counter() - t0
        size_mb = os.path.getsize(path) / 2**20
        now = current_rss_mb()
        reset = reset_peak()  # else the peak below is the whole process's (imports too)
        t0 = time.perf_counter()
        model = fit_gmm_memmap(
            path,
            k,
            max_iter=args.memmap_iters,
            chunk_rows=args.chunk_rows,
            tol=0.0,
            seed=args.seed,
            device=args.device,
        )
        sync(args.device)
        fit_s = time.perf_counter() - t0
        peak = vm_hwm_mb() if reset else peak_rss_mb()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
        print(
            f"memmap EM: n={n} d={d} K={k} full float32, file {size_mb:.0f} MB "
            f"(written in {write_s:.1f} s), chunk_rows={args.chunk_rows}"
        )
        print(
            f"  genzoo init + {int(model.n_iter_)} EM iterations: {fit_s:.2f} s, "
            f"train ll {float(model.log_likelihood_):.5f} (before the last M-step)",
            flush=True,
        )
        what = "during the fit" if reset else "of the process (could not reset the mark)"
        print(
            f"  RSS at fit start {now:.0f} MB; peak RSS {what} {peak:.0f} MB "
            f"(+{peak - now:.0f} MB, for a {size_mb:.0f} MB file)",
            flush=True,
        )
        if args.no_sklearn:
            return
        if size_mb > args.sklearn_max_mb:
            print(
                f"  scikit-learn skipped: the file is over --sklearn-max-mb={args.sklearn_max_mb}"
            )
            return
        start = fit_gmm_memmap(path, k, max_iter=0, chunk_rows=args.chunk_rows, seed=args.seed)
        init = start.double().sklearn_init()
        del start
        settle()
        now = current_rss_mb()
        reset = reset_peak()
        t0 = time.perf_counter()
        x = np.load(path)  # in memory: scikit-learn needs the whole array
        sk = SkGaussianMixture(
            n_components=k,
            covariance_type="full",
            tol=0.0,
            reg_covar=1e-6,
            max_iter=args.memmap_iters,
            init_params="random_from_data",
            random_state=args.seed,
            **init,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.fit(x)
        sk_s = time.perf_counter() - t0
        sk_peak = vm_hwm_mb() if reset else peak_rss_mb()
        print(
            f"  scikit-learn {sk.n_iter_} EM iterations (load + fit, same start): {sk_s:.2f} s, "
            f"train ll {sk.lower_bound_:.5f} (before the last M-step); "
            f"peak RSS +{sk_peak - now:.0f} MB",
            flush=True,
        )


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
    parser.add_argument(
        "--memmap", action="store_true", help="only the out-of-memory case (see above)"
    )
    parser.add_argument("--memmap-rows", type=int, default=10_000_000)
    parser.add_argument("--memmap-d", type=int, default=2, help="dimension of the file's rows")
    parser.add_argument("--memmap-k", type=int, default=8, help="components (data and fit)")
    parser.add_argument("--memmap-iters", type=int, default=5)
    parser.add_argument("--no-sklearn", action="store_true", help="--memmap: genzoo only")
    parser.add_argument("--sklearn-max-mb", type=float, default=2048)
    parser.add_argument("--memmap-dir", default=None, help="where the .npy file is written")
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    if args.memmap:
        run_memmap(args)
        return

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
