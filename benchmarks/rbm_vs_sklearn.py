"""Time genzoo's Bernoulli RBM against scikit-learn's BernoulliRBM; score both the same way.

Two cases:

- ``digits``: ``genzoo.load_dataset("digits-binary")`` flattened to 64 visible units; fitted on
  the train split (1000 rows), scored on the test split (447 rows).
- ``mnist-scale``: 784 visible units, 60,000 synthetic binary training rows (and held-out
  rows for scoring) made from the 1797 scikit-learn digits: upsampled to 28x28, randomly
  shifted, blurred/noised and thresholded. Nothing is downloaded.

Both libraries get the same hidden units, learning rate, batch size and number of epochs, and
the same training algorithm: PCD-1 with ``batch_size`` persistent chains whose state is the
hidden layer (a sweep is ``h -> v -> h``, as in scikit-learn), plain SGD (genzoo:
``momentum=0``), no weight decay, initial weights N(0, 0.01^2). genzoo is timed on its classical
loop ``model.fit_cd(data, epochs, batch_size, lr)`` (in place, no autograd, no optimiser); its
general ``genzoo.Trainer`` path (the same update through ``loss`` and ``torch.optim.SGD``, with
``steps = epochs * n / batch_size`` batches drawn *with replacement*) is reported as
``genzoo-trainer`` for transparency, and the same update applied by ``model.sgd_step`` (in
place, closed-form gradient, no autograd or optimiser; batches drawn with replacement as the
Trainer's) as ``genzoo sgd_step loop``: what the Trainer path costs once it hands plain-SGD
steps of closed-form models to ``sgd_step``. A third genzoo row, ``genzoo fit_cd bf16 matmuls``,
runs the same ``fit_cd`` with ``matmul_dtype="bfloat16"``: mixed precision, the products'
operands cast to bfloat16 with float32 accumulation, everything else (parameters, biases,
probabilities, updates) in float32; its speed depends on native bfloat16 support
(AVX512-BF16/AMX on CPUs) and on layer size (at 64 x 64 the casts cost more than the products
save).
Remaining differences, stated rather than hidden:

- ``fit_cd`` sweeps ``ceil(n / batch_size)`` shuffled mini-batches per epoch; scikit-learn sweeps
  the same number of fixed, unshuffled slices.
- genzoo initialises the visible bias to ``logit(data mean)`` and its chains from
  Bernoulli(data mean); scikit-learn starts both biases at 0 and its chains' hiddens at 0.
- both compute in float32: scikit-learn keeps the float32 it is given (``components_``, biases
  and products in float32; only its uniform random numbers are float64). genzoo's ``fit_cd``
  also checks once that the data are 0/1, scikit-learn that they are finite.
- per step both do the same five products of size ``batch x D x H`` (scikit-learn: two for
  the hidden means, one for the visible means, two for the update; genzoo: one for the visible
  means, one for both phases' hidden means stacked, one for both phases' update stacked), so
  at MNIST scale both are bound by single-thread SGEMM and the ratio is set by what surrounds it.

Both run on one thread: ``torch.set_num_threads(1)`` for genzoo, ``threadpoolctl`` limiting
numpy's BLAS/OpenMP to one thread for scikit-learn. ``--repeats`` runs each fit several times,
interleaved (one fit of each library in turn), and reports the median wall-clock and the median
process CPU time (``time.process_time``); on a shared machine the CPU time is the steadier of
the two, since one thread's CPU time does not grow while it waits for a core.

Pseudo-likelihood. scikit-learn's ``score_samples`` flips one random bit per row, so it is a
stochastic estimate. Here both models are scored by one exact, deterministic function,
:func:`pseudo_log_likelihood`: for each held-out row ``v`` the *sum over all D visible units*
``sum_i log p(v_i | v_-i) = sum_i log sigmoid(F(v with bit i flipped) - F(v))`` with
``F(v) = -b.v - sum_j softplus(c_j + (v W)_j)``, computed in float64 and averaged over rows
(not divided by D; this is the quantity whose unbiased estimate scikit-learn's score is).
Higher is better.

Run by hand (not by pytest):
    python benchmarks/rbm_vs_sklearn.py
    python benchmarks/rbm_vs_sklearn.py --cases digits --epochs 50 --lr 0.05 --repeats 5
    python benchmarks/rbm_vs_sklearn.py --cases mnist-scale --mnist-epochs 2 --profile
    python benchmarks/rbm_vs_sklearn.py --no-trainer   # skip the (slow) Trainer path
    python benchmarks/rbm_vs_sklearn.py --no-bf16      # skip the bfloat16-matmul row
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.neural_network import BernoulliRBM
from threadpoolctl import threadpool_limits

import genzoo


@dataclass
class Params:
    """An RBM's parameters as float64 arrays: W (D, H), visible bias b (D,), hidden bias c (H,)."""

    weight: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray


@dataclass
class Result:
    case: str
    library: str
    seconds_per_epoch: float
    cpu_per_epoch: float
    pseudo_ll: float


# -- the shared score -------------------------------------------------------------------------
@torch.no_grad()
def pseudo_log_likelihood(params: Params, v: np.ndarray, chunk: int = 64) -> float:
    """Mean over rows of the exact ``sum_i log p(v_i | v_-i)`` (summed over all D units).

    Flipping bit ``i`` changes the hidden input by ``(1 - 2 v_i) W_i`` and the visible term by
    ``(1 - 2 v_i) b_i``, so ``F(flip_i v) - F(v)`` is computed for every ``i`` at once per chunk.
    """
    w = torch.from_numpy(np.asarray(params.weight, dtype=np.float64))
    b = torch.from_numpy(np.asarray(params.visible_bias, dtype=np.float64))
    c = torch.from_numpy(np.asarray(params.hidden_bias, dtype=np.float64))
    x = torch.from_numpy(np.asarray(v, dtype=np.float64))
    total = 0.0
    for start in range(0, x.shape[0], chunk):
        rows = x[start : start + chunk]  # (n, D)
        pre = c + rows @ w  # (n, H)
        sign = 1.0 - 2.0 * rows  # +1 where the bit turns on, -1 where it turns off
        hidden = F.softplus(pre).sum(-1)  # (n,)
        flipped = pre[:, None, :] + sign[:, :, None] * w[None, :, :]  # (n, D, H)
        hidden_flipped = F.softplus(flipped).sum(-1)  # (n, D)
        # F(flip) - F(v) = -(b . flip - b . v) - (hidden_flipped - hidden)
        delta = -sign * b - (hidden_flipped - hidden[:, None])
        total += F.logsigmoid(delta).sum().item()
    return total / x.shape[0]


# -- data -------------------------------------------------------------------------------------
def digits_data() -> tuple[np.ndarray, np.ndarray]:
    train = genzoo.load_dataset("digits-binary", split="train")
    test = genzoo.load_dataset("digits-binary", split="test")
    flat = [t.reshape(t.shape[0], -1).numpy().astype(np.float32) for t in (train, test)]
    return flat[0], flat[1]


def mnist_like(n: int, seed: int) -> np.ndarray:
    """``n`` binary 28x28 images (flattened to 784) grown from the 8x8 scikit-learn digits.

    Each row: a random digit, bilinearly upsampled to 24x24, placed at a random offset in a
    28x28 frame, plus Gaussian noise (sd 0.15), thresholded at 0.5 after scaling to [0, 1].
    """
    gen = torch.Generator().manual_seed(seed)
    digits = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)[:, None]
    index = torch.randint(digits.shape[0], (n,), generator=gen)
    small = F.interpolate(digits, size=(24, 24), mode="bilinear", align_corners=False)
    out = torch.zeros(n, 28, 28)
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    for ox in range(5):
        for oy in range(5):
            rows = ((dx == ox) & (dy == oy)).nonzero().flatten()
            out[rows, oy : oy + 24, ox : ox + 24] = small[index[rows], 0]
    out += 0.15 * torch.randn(out.shape, generator=gen)
    return (out > 0.5).reshape(n, 784).numpy().astype(np.float32)


def mnist_data(n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    data = mnist_like(n_train + n_test, seed)
    return data[:n_train], data[n_train:]


# -- the two fits -----------------------------------------------------------------------------
def settle() -> None:
    """Let idle BLAS/OpenMP worker threads of the previous library stop spinning."""
    time.sleep(0.5)


def _genzoo_model(x: torch.Tensor, args, n_hidden: int, seed: int):
    torch.manual_seed(seed)
    return genzoo.create(
        "rbm",
        data=x,
        n_hidden=n_hidden,
        cd_k=1,
        persistent=True,
        n_chains=args.batch_size,
        weight_decay=0.0,
        momentum=0.0,
        optimizer="sgd",
    )


def _params(model) -> Params:
    layer = model.rbm
    return Params(
        layer.weight.detach().double().numpy(),
        layer.visible_bias.detach().double().numpy(),
        layer.hidden_bias.detach().double().numpy(),
    )


def fit_genzoo(
    train: np.ndarray, args, epochs: int, n_hidden: int, seed: int, matmul_dtype: str = "float32"
):
    """Fit genzoo's ``rbm`` by its classical loop ``fit_cd``; return ((wall, CPU) s, Params)."""
    x = torch.from_numpy(train)
    model = _genzoo_model(x, args, n_hidden, seed)
    generator = torch.Generator().manual_seed(seed)
    tic, cpu = time.perf_counter(), time.process_time()
    model.fit_cd(
        x,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        generator=generator,
        matmul_dtype=matmul_dtype,
    )
    seconds = (time.perf_counter() - tic, time.process_time() - cpu)
    return seconds, _params(model)


def fit_genzoo_bf16(train: np.ndarray, args, epochs: int, n_hidden: int, seed: int):
    """``fit_genzoo`` with ``matmul_dtype="bfloat16"`` (bf16 operands, fp32 accumulation)."""
    return fit_genzoo(train, args, epochs, n_hidden, seed, matmul_dtype="bfloat16")


def fit_genzoo_trainer(train: np.ndarray, args, epochs: int, n_hidden: int, seed: int):
    """Fit genzoo's ``rbm`` with the general ``genzoo.Trainer``; return ((wall, CPU) s, Params)."""
    x = torch.from_numpy(train)
    model = _genzoo_model(x, args, n_hidden, seed)
    steps = max(1, round(epochs * train.shape[0] / args.batch_size))
    trainer = genzoo.Trainer(
        steps=steps, batch_size=args.batch_size, lr=args.lr, seed=seed, progress=False
    )
    tic, cpu = time.perf_counter(), time.process_time()
    trainer.fit(model, x)
    seconds = (time.perf_counter() - tic, time.process_time() - cpu)
    return seconds, _params(model)


def fit_genzoo_sgd_step(train: np.ndarray, args, epochs: int, n_hidden: int, seed: int):
    """The Trainer path's update without autograd or optimiser: ``model.sgd_step`` on the same
    number of batches drawn with replacement (what a Trainer hook for closed-form models would
    run); return ((wall, CPU) s, Params)."""
    x = torch.from_numpy(train).float().flatten(1)
    model = _genzoo_model(torch.from_numpy(train), args, n_hidden, seed)
    steps = max(1, round(epochs * train.shape[0] / args.batch_size))
    generator = torch.Generator().manual_seed(seed)
    tic, cpu = time.perf_counter(), time.process_time()
    index = torch.randint(len(x), (steps, args.batch_size), generator=generator)
    for rows in index:
        model.sgd_step(x.index_select(0, rows), args.lr)
    seconds = (time.perf_counter() - tic, time.process_time() - cpu)
    return seconds, _params(model)


def fit_sklearn(train: np.ndarray, args, epochs: int, n_hidden: int, seed: int):
    """Fit scikit-learn's BernoulliRBM; return ((wall, CPU) seconds, Params)."""
    model = BernoulliRBM(
        n_components=n_hidden,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        n_iter=epochs,
        random_state=seed,
    )
    tic, cpu = time.perf_counter(), time.process_time()
    model.fit(train)
    seconds = (time.perf_counter() - tic, time.process_time() - cpu)
    params = Params(
        model.components_.T.astype(np.float64),
        model.intercept_visible_.astype(np.float64),
        model.intercept_hidden_.astype(np.float64),
    )
    return seconds, params


def run_case(case, train, test, args, epochs, n_hidden) -> list[Result]:
    """Fit every library ``repeats`` times, interleaved (one fit of each in turn, so that a
    shared machine slows them alike); report the median wall-clock and CPU time."""
    fits = [("genzoo", fit_genzoo), ("scikit-learn", fit_sklearn)]
    if args.bf16:
        fits.insert(1, ("genzoo fit_cd bf16 matmuls", fit_genzoo_bf16))
    if args.trainer:
        fits.append(("genzoo-trainer", fit_genzoo_trainer))
        fits.append(("genzoo sgd_step loop", fit_genzoo_sgd_step))
    times: dict[str, list[tuple[float, float]]] = {library: [] for library, _ in fits}
    fitted: dict[str, Params] = {}
    for _ in range(args.repeats):
        for library, fit in fits:
            settle()
            seconds, params = fit(train, args, epochs, n_hidden, args.seed)
            times[library].append(seconds)
            fitted.setdefault(library, params)  # same seed every repeat: keep the first
    results = []
    for library, _ in fits:
        wall = float(np.median([t[0] for t in times[library]]))
        cpu = float(np.median([t[1] for t in times[library]]))
        pll = pseudo_log_likelihood(fitted[library], test)
        results.append(Result(case, library, wall / epochs, cpu / epochs, pll))
        print(
            f"  {case:12s} {library:27s} {wall / epochs:.4f} s/epoch "
            f"({cpu / epochs:.4f} CPU s/epoch)  PLL {pll:.3f}",
            flush=True,
        )
    return results


def profile_genzoo(train: np.ndarray, args, epochs: int, n_hidden: int) -> None:
    """Print where genzoo's training time goes (torch.profiler, CPU, top operators)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit_genzoo(train, args, epochs, n_hidden, args.seed)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def table(results: list[Result]) -> str:
    lines = [
        "| case | library | s/epoch (wall) | CPU s/epoch | held-out PLL (sum over D) "
        "| speed vs scikit-learn, wall (CPU) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case in dict.fromkeys(r.case for r in results):
        rows = {r.library: r for r in results if r.case == case}
        sk = rows["scikit-learn"]
        for r in rows.values():
            ratio = sk.seconds_per_epoch / r.seconds_per_epoch
            cpu_ratio = sk.cpu_per_epoch / r.cpu_per_epoch
            shown = "" if r is sk else f"{ratio:.2f} ({cpu_ratio:.2f})"
            lines.append(
                f"| {case} | {r.library} | {r.seconds_per_epoch:.4f} | {r.cpu_per_epoch:.4f} "
                f"| {r.pseudo_ll:.3f} | {shown} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="digits,mnist-scale")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD step (sklearn's default)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20, help="epochs for the digits case")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units, digits case")
    parser.add_argument("--mnist-epochs", type=int, default=1)
    parser.add_argument("--mnist-hidden", type=int, default=500)
    parser.add_argument("--mnist-train", type=int, default=60_000)
    parser.add_argument("--mnist-test", type=int, default=1_000, help="rows scored")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved fits, median")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="profile genzoo's fit too")
    parser.add_argument(
        "--no-bf16",
        dest="bf16",
        action="store_false",
        help="skip the fit_cd row with bfloat16 matrix products",
    )
    parser.add_argument(
        "--no-trainer",
        dest="trainer",
        action="store_false",
        help="skip timing the genzoo.Trainer path",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    results: list[Result] = []
    with threadpool_limits(limits=args.threads):
        for case in args.cases.split(","):
            if case == "digits":
                train, test = digits_data()
                epochs, hidden = args.epochs, args.hidden
            elif case == "mnist-scale":
                train, test = mnist_data(args.mnist_train, args.mnist_test, args.seed)
                epochs, hidden = args.mnist_epochs, args.mnist_hidden
            else:
                raise SystemExit(f"unknown case {case!r}: choose digits, mnist-scale")
            print(
                f"{case}: train {train.shape}, test {test.shape}, density {train.mean():.3f}, "
                f"{epochs} epochs, {hidden} hidden, batch {args.batch_size}, lr {args.lr}, "
                f"{args.threads} thread(s)",
                flush=True,
            )
            results += run_case(case, train, test, args, epochs, hidden)
            if args.profile:
                profile_genzoo(train, args, epochs, hidden)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
