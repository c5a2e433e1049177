"""Conditioning shared by every conditional model: the condition it is built for, the
context its networks read, the class prior and Bayes' rule.

A model of ``Q(x | c)`` is built for one condition, named in its config: ``n_classes = K``
(``c`` is a class ``0..K-1``: ``"discrete"``) or ``condition_dim = C`` (``c`` is a vector of
``C`` numbers: ``"continuous"``); both 0 is an unconditional model. A class says which kinds
it can take in ``condition_kinds`` (see :class:`genzoo.models.base.GenerativeModel`).

Networks read a condition through :class:`Context`: a class becomes its one-hot vector (the
first linear layer that reads it is then a learned class embedding, one per network), a
continuous condition is standardised with statistics fixed at initialisation, as the data are.
That vector is concatenated to a conditioner's input: the conditional coupling layers of
Winkler et al. 2019 ("Learning likelihoods with conditional normalizing flows",
arXiv:1912.00042) and the context of MAF (Papamakarios, Pavlakou & Murray 2017, section 3.4).

A model with a discrete condition also keeps the class frequencies of its training data
(``class_log_prior``, set by ``initialize``): with them its density is a generative
classifier, ``p(c | x) = p(x | c) p(c) / sum_k p(x | k) p(k)`` (:func:`class_log_posterior`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from genzoo.errors import DataError, DensityUnavailable

if TYPE_CHECKING:
    from genzoo.models.base import GenerativeModel

#: The kinds of condition: a class index, a vector of numbers, or a sequence of token ids (the
#: input a language model's output is conditioned on, read as a prefix: ``condition_len`` ids
#: of the model's own vocabulary; see :class:`genzoo.models.autoregressive.lm.SequenceLM`).
CONDITION_KINDS = ("discrete", "continuous", "tokens")


def condition_kind_of(n_classes: int, condition_dim: int) -> str | None:
    """``"discrete"``, ``"continuous"`` or ``None``, from ``n_classes`` and ``condition_dim``."""
    if n_classes:
        return "discrete"
    return "continuous" if condition_dim else None


def check_condition_config(
    model: str, n_classes: Any, condition_dim: Any, kinds: tuple[str, ...]
) -> None:
    """Refuse a condition the model class cannot take, or one that is not a count."""
    for key, value, low in (("n_classes", n_classes, 2), ("condition_dim", condition_dim, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or (value and value < low):
            raise ValueError(
                f"{key} of {model} must be 0 (no condition) or an integer >= {low}, got {value!r}"
            )
    if n_classes and condition_dim:
        raise ValueError(
            f"{model} takes one condition: a class (n_classes) or a vector (condition_dim), "
            "not both"
        )
    kind = condition_kind_of(n_classes, condition_dim)
    if kind is not None and kind not in kinds:
        can = f"only a {' or a '.join(kinds)} condition" if kinds else "no condition"
        raise DataError(f"{model} cannot be conditioned on a {kind} condition: it takes {can}")


def describe_condition(n_classes: int, condition_dim: int) -> str:
    """The condition in words: ``"a class 0..9"``, ``"a vector of 4 numbers"``."""
    if n_classes:
        return f"a class 0..{n_classes - 1}"
    return f"a vector of {condition_dim} numbers"


#: The id of ``<pad>`` in every token condition (:data:`genzoo.data.text.PAD`): a bag of
#: tokens skips it.
PAD_ID = 0


def check_token_input(name: str, c: Any, n: int | None, length: int, vocab: int) -> Tensor:
    """An input of token ids checked: ``(n, length)`` (or one ``(length,)`` for all ``n``)
    integer ids in ``0..vocab-1``, returned int64; anything else is a one-line ``DataError``
    saying what to give."""
    what = f"an input of {length} token ids 0..{vocab - 1}"
    if c is None:
        raise DataError(f"{name} is conditional on {what}: pass c=input_ids "
                        "(sample(n, c=...), log_prob(x, c=...); --condition TEXT)")  # fmt: skip
    if isinstance(c, (bool, int, float)):
        raise DataError(f"{name} is conditional on {what}, got the condition {c!r}")
    try:
        t = torch.as_tensor(c)
    except (TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"{name} is conditional on {what}; cannot read {c!r} ({err})") from err
    if t.ndim == 1 and n is not None and len(t) == length:
        t = t.expand(n, length)
    if t.ndim != 2 or t.shape[1] != length or (n is not None and len(t) != n):
        wanted = f"({n}, {length})" if n is not None else f"(n, {length})"
        raise DataError(f"{name} is conditional on {what}: give c shaped ({length},) or "
                        f"{wanted}, got shape {tuple(t.shape)}")  # fmt: skip
    if t.is_complex() or t.dtype == torch.bool:
        raise DataError(f"{name} is conditional on {what}; got a {t.dtype} condition")
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise DataError(f"{name} is conditional on {what}; got non-integer ids")
    if t.numel() and (t.min() < 0 or t.max() >= vocab):
        bad = int(t.min()) if t.min() < 0 else int(t.max())
        raise DataError(f"input token id {bad} is out of range: {name} was built for ids "
                        f"0..{vocab - 1}")  # fmt: skip
    return t.long()


class TokenBag(nn.Module):
    """An input of token ids as the mean of its tokens' learned embeddings, ``<pad>`` skipped:
    ``(n, M) -> (n, dim)``, the continuous bag of words of Mikolov et al. 2013 ("Efficient
    estimation of word representations in vector space", arXiv:1301.3781) read by a network,
    as in fastText's classifier (Joulin et al. 2017, "Bag of tricks for efficient text
    classification"). Word order is ignored; an input of padding only has no mean (the model
    refuses it as empty)."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, dim, mode="mean", padding_idx=PAD_ID)
        nn.init.normal_(self.bag.weight, std=dim**-0.5)
        with torch.no_grad():
            self.bag.weight[PAD_ID].zero_()

    def forward(self, ids: Tensor) -> Tensor:
        return self.bag(ids)


class Context(nn.Module):
    """A condition ``c`` as the context vector a conditional network reads, ``(n, features)``.

    Discrete (``n_classes = K``): the one-hot vector of the class, ``features = K``; the first
    linear layer reading it holds one learned embedding per class. Continuous
    (``condition_dim = C``): ``c`` standardised with the mean and standard deviation of the
    conditions seen at initialisation (``arm()``, then the next call fits them, as
    ``Standardize`` does for the data), ``features = C``. Unconditional: ``features = 0`` and
    the context is ``None``.
    """

    def __init__(self, n_classes: int = 0, condition_dim: int = 0) -> None:
        super().__init__()
        self.n_classes, self.condition_dim = int(n_classes), int(condition_dim)
        self.features = self.n_classes or self.condition_dim
        if self.condition_dim:
            self.register_buffer("mean", torch.zeros(self.condition_dim))
            self.register_buffer("std", torch.ones(self.condition_dim))
        self._armed = False

    def arm(self) -> None:
        """Fit the standardisation to the next conditions seen (continuous only)."""
        self._armed = bool(self.condition_dim)

    def forward(self, c: Tensor | None) -> Tensor | None:
        if c is None or not self.features:
            return None
        if self.n_classes:
            return nn.functional.one_hot(c.long(), self.n_classes).to(self._dtype())
        c = c.to(self._dtype())
        if self._armed:
            with torch.no_grad():
                self.mean.copy_(c.mean(0))
                std = c.std(0) if len(c) > 1 else torch.ones_like(self.std)
                self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
            self._armed = False
        return (c - self.mean) / self.std

    def _dtype(self) -> torch.dtype:
        return self.mean.dtype if self.condition_dim else torch.get_default_dtype()


def class_counts_log_prior(c: Tensor, n_classes: int) -> Tensor:
    """``log`` of the class frequencies in ``c`` (``(n,)`` classes), ``(n_classes,)``;
    a class absent from ``c`` gets ``-inf`` (it is never predicted by Bayes' rule)."""
    counts = torch.bincount(c.long().flatten().cpu(), minlength=n_classes).double()
    return (counts / counts.sum()).log()


def class_log_likelihoods(model: GenerativeModel, x: Tensor) -> Tensor:
    """``log p(x | c = k)`` for every class ``k``: ``(n, *data_shape) -> (n, K)``, nats."""
    k = model.n_classes
    if not k:
        raise DataError(
            f"{model.name} was not built for a class condition (n_classes=0): Bayes' rule "
            "needs a model conditioned on a class"
        )
    if model.density in ("none", "unnormalized"):
        raise DensityUnavailable(
            f"{model.name} has density={model.density!r}: Bayes' rule needs a normalised "
            "log p(x | c)"
        )
    columns = []
    for label in range(k):
        columns.append(model.log_prob(x, c=label))
    return torch.stack(columns, 1)


def class_log_posterior(model: GenerativeModel, x: Tensor) -> Tensor:
    """``log p(c = k | x)`` by Bayes' rule from ``log p(x | k)`` and the model's class prior
    (the training frequencies): ``(n, *data_shape) -> (n, K)`` float64, rows normalised."""
    joint = _log_joint(model, x)
    return joint - torch.logsumexp(joint, 1, keepdim=True)


def marginal_log_prob(model: GenerativeModel, x: Tensor) -> Tensor:
    """``log p(x) = log sum_k p(x | k) p(k)`` of a model with a class condition: ``(n,)``
    float64, nats."""
    return torch.logsumexp(_log_joint(model, x), 1)


def _log_joint(model: GenerativeModel, x: Tensor) -> Tensor:
    """``log p(x | k) + log p(k)``, ``(n, K)`` float64."""
    log_likelihoods = class_log_likelihoods(model, x).double()
    return log_likelihoods + model.class_log_prior.to(log_likelihoods)
