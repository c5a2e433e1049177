"""``sentiment-synthetic``: labels drawn from a known ``P(Y | X)``, to check a learned ``Q(Y | X)``.

The survey starts from a conditional model: given an input ``X`` (a tweet), generate an output
``Y`` (its sentiment) with ``Q(Y | X)`` close to ``P(Y | X)``. Real tweets do not say what
``P(Y | X)`` is; this set does. ``X`` is a vector of :data:`N_FEATURES` numbers standing for a
tweet's features, ``X ~ N(0, I)``; ``Y`` in ``{0: negative, 1: neutral, 2: positive}`` is drawn
from

    P(Y | X = x) = softmax(W2 tanh(W1 x + b1) + b2),

a fixed small network (:func:`sentiment_probs`), so ``KL(P(Y | X) || Q(Y | X))`` of a trained
model is computed exactly, averaged over test inputs. As a genzoo dataset the modelled data
are the labels, ``(n, 1)`` with 3 levels, and the condition is ``X``, ``(n, 4)``:
``load_dataset("sentiment-synthetic", condition=True)`` gives ``(y, x)``. Every split is a
fresh draw of ``n`` examples (default 10,000) seeded from ``seed`` and the split, like the toys.
"""

from __future__ import annotations

import numpy as np
import torch

from genzoo.data._common import make_rng

NAME = "sentiment-synthetic"
N_FEATURES = 4
LABELS = ("negative", "neutral", "positive")
DEFAULT_N = 10_000

# The fixed network of P(Y | X): 4 features -> 6 tanh units -> 3 logits.
_W1 = np.array(
    [
        [1.5, -0.8, 0.3, 0.0],
        [-0.6, 1.2, 0.0, 0.9],
        [0.4, 0.5, -1.4, 0.2],
        [0.0, -1.0, 0.6, 1.1],
        [1.1, 0.3, 0.8, -0.7],
        [-0.9, 0.0, -0.5, -1.2],
    ]
)
_B1 = np.array([0.2, -0.1, 0.0, 0.3, -0.2, 0.1])
_W2 = np.array(
    [
        [-2.0, 1.0, 0.5, -1.5, -1.0, 1.5],
        [0.3, -0.4, 1.0, 0.2, 0.0, -0.3],
        [1.8, -0.9, -1.2, 1.4, 1.1, -1.3],
    ]
)
_B2 = np.array([0.0, 0.4, 0.0])


def sentiment_logits(features: np.ndarray) -> np.ndarray:
    """The logits of ``P(Y | X)``: ``(n, 4) -> (n, 3)``, float64."""
    return np.tanh(features @ _W1.T + _B1) @ _W2.T + _B2


def sentiment_probs(features: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The exact ``P(Y = k | X = x)`` for each row ``x``: ``(n, 4) -> (n, 3)`` float64."""
    x = torch.as_tensor(features).detach().cpu().double().numpy()
    return torch.as_tensor(sentiment_logits(x)).softmax(-1)


def load_sentiment(split: str, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels (n, 1), features (n, 4))`` of ``split``: ``x ~ N(0, I)``, ``y ~ P(Y | x)``,
    drawn from a generator seeded by ``seed`` and the split; labels in torch's default
    dtype (integer values 0..2), features too."""
    rng = make_rng(seed, NAME, split)
    n = n or DEFAULT_N
    features = rng.standard_normal((n, N_FEATURES))
    probs = np.exp(sentiment_logits(features))
    probs /= probs.sum(1, keepdims=True)
    below = rng.uniform(size=(n, 1)) > probs.cumsum(1)  # inverse-CDF draw
    labels = np.minimum(below.sum(1), len(LABELS) - 1)
    dtype = torch.get_default_dtype()
    y = torch.as_tensor(labels[:, None], dtype=dtype)
    return y, torch.as_tensor(features, dtype=dtype)
