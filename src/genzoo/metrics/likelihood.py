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

A conditional model is scored on ``log p(x | c)`` given each test example's condition
(``condition=``): a conditional NLL, labelled so.
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
def per_example_log_prob(
    model: GenerativeModel, x: Tensor, batch_size: int = 4096, condition: Tensor | None = None
) -> Tensor:
    """``model.log_prob`` over ``x`` in batches, on the model's device; returns CPU float64.
    ``condition``: a conditional model's ``c``, one per example (``log p(x | c)``)."""
    parts = []
    for i in range(0, x.shape[0], batch_size):
        chunk = x[i : i + batch_size].to(model.device)
        if condition is None:
            parts.append(model.log_prob(chunk).double().cpu())
        else:
            c = condition[i : i + batch_size].to(model.device)
            parts.append(model.log_prob(chunk, c=c).double().cpu())
    return torch.cat(parts)


def dequantized_log_prob(
    model: GenerativeModel,
    x: Tensor,
    levels: int,
    draws: int = 1,
    seed: int = 0,
    condition: Tensor | None = None,
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
        dequantized = (values + noise) / levels
        log_p = per_example_log_prob(model, dequantized, condition=condition)
        terms.append(log_p - dim * math.log(levels))
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
    condition: Tensor | None = None,
) -> dict[str, Any]:
    """Mean test NLL in nats per example, labelled for what it is, and bits on the data's scale.

    ``condition`` (one per example) scores a conditional model's ``-log p(x | c)``; the
    labels then say "conditional".

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
    dequantizes_itself = getattr(model, "dequantizes_itself", False)  # Glow, variational
    if dequantized:
        log_p = dequantized_log_prob(model, x, levels, n_dequantizations, seed, condition)
    else:  # a model whose log_prob draws (IWAE, AIS, variational dequantisation) gets the
        # same draws on every call from ``seed``, and the caller's random state is untouched
        draws = n_dequantizations if dequantizes_itself else 1
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            terms = [per_example_log_prob(model, x, condition=condition) for _ in range(draws)]
        # a model drawing its own dequantisation noise (one u ~ q(u | x) per call): the
        # log-mean-exp over calls is the importance-weighted bound (Ho et al. 2019, eq. 13)
        log_p = torch.logsumexp(torch.stack(terms), 0) - math.log(draws)
    nll = float(-log_p.mean())
    result: dict[str, Any] = {
        "nll": nll,
        "nll_stderr": float(log_p.std() / math.sqrt(len(log_p))) if len(log_p) > 1 else 0.0,
    }
    result.update(_nll_kind(model, n_dequantizations if dequantized else None))
    if not dequantized and dequantizes_itself:
        result["dequantization_draws"] = n_dequantizations
        result["nll_label"] += f"; log-mean-exp over k={n_dequantizations} draws of its noise"
    if condition is not None:
        result["nll_label"] = "conditional " + result["nll_label"] + ", -log p(x | c)"
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


def kl_gap(
    model: GenerativeModel, x: Tensor, true_log_prob: Tensor, condition: Tensor | None = None
) -> float:
    """Monte-Carlo ``KL(p || q) = E_p[log p - log q]`` in nats, from samples ``x ~ p`` (given
    their conditions ``c``: ``E_c KL(p(. | c) || q(. | c))``)."""
    model_log_prob = per_example_log_prob(model, x, condition=condition)
    return float((true_log_prob.double().cpu() - model_log_prob).mean())


@torch.no_grad()
def conditional_kl(model: GenerativeModel, condition: Tensor, true_probs: Tensor) -> float:
    """Exact ``E_c KL(P(. | c) || Q(. | c))`` in nats over the given conditions, for a model of
    one discrete value per example (data shape ``(1,)``, ``levels`` values): the sum over the
    values is done, so only the average over ``c`` is a sample mean.

    ``true_probs``: ``P(y = k | c)`` for each condition, ``(n, levels)``.
    """
    true_probs = true_probs.double().cpu()
    n, levels = true_probs.shape
    if tuple(model.data_shape) != (1,) or getattr(model, "levels", None) != levels:
        raise ValueError(
            f"conditional_kl sums over the {levels} values of a model of one discrete value "
            f"per example; {model.name} models examples shaped {tuple(model.data_shape)}"
        )
    log_q = torch.stack(
        [
            per_example_log_prob(model, torch.full((n, 1), float(k)), condition=condition)
            for k in range(levels)
        ],
        1,
    )
    log_ratio = true_probs.clamp_min(1e-300).log() - log_q
    terms = torch.where(true_probs > 0, true_probs * log_ratio, torch.zeros_like(log_ratio))
    return float(terms.sum(1).mean())


@torch.no_grad()
def bayes_accuracy(
    model: GenerativeModel, x: Tensor, labels: Tensor, levels: int | None = None
) -> float:
    """The accuracy of a class-conditional density model used as a classifier by Bayes'
    rule, ``argmax_k log p(x | k) + log p(k)`` (the class prior of its training data),
    against ``labels``: the generative classifier. A continuous model of discrete levels
    reads them at their bin centres (``to_model_scale``)."""
    from genzoo.models.conditioning import class_log_posterior

    x = to_model_scale(x, model, levels)
    parts = [class_log_posterior(model, part.to(model.device)).argmax(1) for part in x.split(4096)]
    predicted = torch.cat([p.cpu() for p in parts])
    return float((predicted == labels.cpu().long()).double().mean())
