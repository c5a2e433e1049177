"""Conditional density models as classifiers (Bayes' rule) against LogisticRegression.

A class-conditional density ``p(x | c)`` with the training class frequencies ``p(c)``
classifies by ``argmax_c p(x | c) p(c)``: the generative classifier. This script fits genzoo's
class-conditional ``gmm`` (one mixture per class) on the tables' training splits and reports
its test accuracy beside scikit-learn's ``LogisticRegression`` (a discriminative model) on the
same split, for several split seeds (min and mean), and the accuracy of always guessing the
majority class.

Run by hand (not by pytest):
    python benchmarks/generative_classifiers.py
    python benchmarks/generative_classifiers.py --datasets wine iris --seeds 10 --components 1 2
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

import genzoo


def accuracies(name: str, seed: int, components: list[int], covariance: str) -> dict[str, float]:
    """Test accuracies of one split: the gmms (per K), LogisticRegression and the majority."""
    x, c = genzoo.load_dataset(name, "train", seed=seed, condition=True)
    x_test, c_test = genzoo.load_dataset(name, "test", seed=seed, condition=True)
    out = {"majority": float(torch.bincount(c_test).max()) / len(c_test)}
    logistic = LogisticRegression(max_iter=5000).fit(x.numpy(), c.numpy())
    out["logistic"] = float(logistic.score(x_test.numpy(), c_test.numpy()))
    for k in components:
        gmm = genzoo.create(
            "gmm", data=x, condition=c, n_components=k, covariance_type=covariance, seed=seed
        )
        genzoo.Trainer(steps=200, batch_size=len(x), progress=False).fit(gmm, x, condition=c)
        out[f"gmm K={k}"] = float((gmm.predict_class(x_test) == c_test).double().mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["wine", "iris", "breast-cancer"])
    parser.add_argument("--seeds", type=int, default=5, help="split seeds 0..N-1")
    parser.add_argument("--components", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--covariance", default="full", help="the gmms' covariance_type")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    print(f"test accuracy over split seeds 0..{args.seeds - 1}: min / mean ({args.covariance})")
    for name in args.datasets:
        rows = [
            accuracies(name, seed, args.components, args.covariance) for seed in range(args.seeds)
        ]
        cells = []
        for key in rows[0]:
            values = np.array([row[key] for row in rows])
            cells.append(f"{key} {values.min():.3f} / {values.mean():.3f}")
        print(f"{name:<14} " + "; ".join(cells))


if __name__ == "__main__":
    main()
