"""Held-out negative log-likelihoods in nats, bits on the discrete scale, and the KL gap to the
truth, each labelled for what it is: exact, a bound, or an estimate.

Discrete data (digits: 17 grey levels) seen by a continuous model go through uniform
dequantisation: with ``u ~ U[0, 1)^D``, ``p_L(x + u) = p_model((x + u) / L) L^-D`` is a density on
the cells of the levels, and by Jensen's inequality

    log P(x) >= E_{u_1..u_k} [ log (1/k) sum_i p_L(x + u_i) ]

for every ``k``: ``k = 1`` is the dequantisation bound of Theis, van den Oord & Bethge (2016);
``k > 1`` is the importance-weighted dequantisation bound with a uniform proposal (Ho, Chen,
Srinivas, Duan & Abbeel 2019, "Flow++", section 3.1; the importance-weighted bound of Burda,
Grosse & Salakhutdinov 2016), which tightens as ``k`` grows and reaches ``log P(x)`` as
``k -> inf``. The NLL reported from it is therefore an *upper bound* on the discrete NLL, and is
labelled so, never called a likelihood.

A model whose ``log_prob`` is unnormalised (``-E(x)`` of a deep energy model in more than two
dimensions) has no NLL at all: shifting the energy by a constant leaves the model unchanged but
would shift such a number, so none is computed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from genzoo.errors import DensityUnavailable
from genzoo.models.base import GenerativeModel

#: What a model's log-density really is, as the report names it.
DENSITY_LABELS = {
    "exact": "NLL",
    "bound": "-ELBO (upper bound on NLL)",
    "estimate": "estimated NLL",
    "unnormalized": "energy (unnormalised)",
    "none": "no density",
}

#: ``evaluate``'s ``note`` for models whose ``log_prob`` has no normalising constant.
UNNORMALIZED_NOTE = "no normalised density: log_prob is -E(x) up to an unknown constant"


def to_model_scale(x: Tensor, model: GenerativeModel, levels: int | None) -> Tensor:
    """Data on the scale the model was trained on: a continuous model of discrete levels saw
    ``(x + u) / L``, so it gets the bin centres ``(x + 0.5) / L``; others get ``x``."""
    if levels is not None and model.data_kind == "continuous":
        return (x + 0.5) / levels
    return x


def on_levels(samples: Tensor, model: GenerativeModel, levels: int) -> Tensor:
    """Samples as integer levels: a continuous model's ``(x + u) / L`` maps back to ``x``."""
    if model.data_kind == "continuous":
        return (samples * levels).floor().clamp(0, levels - 1)
    return samples


@torch.no_grad()
def per_example_log_prob(model: GenerativeModel, x: Tensor, batch_size: int = 4096) -> Tensor:
    """``model.log_prob`` over ``x`` in batches, on the model's device; returns CPU float64."""
    parts = [
        model.log_prob(x[i : i + batch_size].to(model.device)).double().cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(parts)


def dequantized_log_prob(
    model: GenerativeModel, x: Tensor, levels: int, draws: int = 1, seed: int = 0
) -> Tensor:
    """Per-example importance-weighted dequantisation bound on ``log P(x)`` (float64, CPU).

    ``log (1/k) sum_i [log p_model((x + u_i) / L) - D log L]`` over ``k = draws`` uniform noise
    draws ``u_i`` (log-mean-exp; Ho et al. 2019, section 3.1, with a uniform ``q``). A lower
    bound on the discrete log-probability in expectation for every ``k``, tighter as ``k``
    grows; ``k = 1`` is the single-draw bound of Theis et al. (2016). The draws come from a
    CPU generator seeded with ``seed``, in order, so the first draw is the same for every ``k``.
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(
            f"the number of dequantisation draws must be an integer >= 1; got {draws!r}"
        )
    dim = math.prod(x.shape[1:])
    generator = torch.Generator().manual_seed(seed)
    values = x if x.is_floating_point() else x.double()
    terms = []
    for _ in range(draws):
        noise = torch.rand(values.shape, generator=generator, dtype=values.dtype)
        terms.append(
            per_example_log_prob(model, (values + noise) / levels) - dim * math.log(levels)
        )
    return torch.logsumexp(torch.stack(terms), 0) - math.log(draws)


def density_label(model: GenerativeModel) -> str:
    """What ``model.log_prob`` is, in words, naming its estimator: "estimated NLL (AIS)"."""
    method = model.density_method
    return DENSITY_LABELS[model.density] + (f" ({method})" if method else "")


def negative_log_likelihood(
    model: GenerativeModel,
    x: Tensor,
    levels: int | None = None,
    n_dequantizations: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean test NLL in nats per example, labelled for what it is, and bits on the data's scale.

    ``x`` holds the data as loaded: for image datasets, integer levels ``0..levels-1``. A
    continuous model scores them through uniform dequantisation with the importance-weighted
    bound over ``n_dequantizations`` noise draws (log-mean-exp, Ho et al. 2019; ``1`` is the
    bound of Theis et al. 2016; see :func:`dequantized_log_prob`); a discrete model scores the
    levels themselves.

    Returns:
        ``nll`` and ``nll_stderr`` (nats per example, the standard error over examples);
        ``nll_kind``: ``"exact"``, ``"bound"`` (an upper bound on the NLL: a dequantisation
        bound of an exact density, or a ``-ELBO``) or ``"estimate"`` (IWAE, AIS, ODE; if also
        dequantised, an estimate of the dequantisation bound); ``nll_label``: the same in words;
        ``dequantization_draws``: ``k``, only when dequantised. With ``levels`` (or a model that
        scores only some positions), bits: ``bits_per_token`` and ``scored_tokens`` for a model
        with a ``scored_positions(x)`` method (total nats / scored tokens / ln 2: a sentence
        model that does not score its ``<pad>``), else ``bits_per_dim`` (nats / D / ln 2);
        ``bits_label`` says which.

    Raises:
        DensityUnavailable: for models without a density or with an unnormalised one
        (``-E(x)`` up to a constant has no NLL).
    """
    if model.density in ("none", "unnormalized"):
        raise DensityUnavailable(
            f"{model.name or type(model).__name__} has density={model.density!r}: "
            + (UNNORMALIZED_NOTE if model.density == "unnormalized" else "no log_prob")
            + "; compare it with sample-based metrics instead"
        )
    dim = math.prod(x.shape[1:])
    dequantized = levels is not None and model.data_kind == "continuous"
    if dequantized:
        log_p = dequantized_log_prob(model, x, levels, n_dequantizations, seed)
    else:
        log_p = per_example_log_prob(model, x)
    nll = float(-log_p.mean())
    result: dict[str, Any] = {
        "nll": nll,
        "nll_stderr": float(log_p.std() / math.sqrt(len(log_p))) if len(log_p) > 1 else 0.0,
    }
    result.update(_nll_kind(model, n_dequantizations if dequantized else None))
    scored_positions = getattr(model, "scored_positions", None)
    if callable(scored_positions):
        tokens = int(torch.as_tensor(scored_positions(x)).sum())
        result["scored_tokens"] = tokens
        result["bits_per_token"] = float(-log_p.sum()) / (max(tokens, 1) * math.log(2))
        result["bits_label"] = "bits per scored token (padding is not scored)"
    elif levels is not None:
        result["bits_per_dim"] = nll / (dim * math.log(2))
        result["bits_label"] = f"bits per dimension (all D={dim} values of each example)"
    return result


def _nll_kind(model: GenerativeModel, draws: int | None) -> dict[str, Any]:
    """``nll_kind``, ``nll_label`` (and ``dequantization_draws``) of an NLL from ``model``."""
    if draws is None:
        return {"nll_kind": model.density, "nll_label": density_label(model)}
    bound = f"upper bound on the discrete NLL (uniform dequantisation, k={draws})"
    if model.density == "exact":
        kind, label = "bound", bound
    elif model.density == "bound":
        kind, label = "bound", f"{density_label(model)} of the dequantised data: {bound}"
    else:
        kind, label = (
            "estimate",
            f"{density_label(model)} of the dequantised data: estimates an {bound}",
        )
    return {"nll_kind": kind, "nll_label": label, "dequantization_draws": draws}


def kl_gap(model: GenerativeModel, x: Tensor, true_log_prob: Tensor) -> float:
    """Monte-Carlo ``KL(p || q) = E_p[log p - log q]`` in nats, from samples ``x ~ p``."""
    return float((true_log_prob.double().cpu() - per_example_log_prob(model, x)).mean())
