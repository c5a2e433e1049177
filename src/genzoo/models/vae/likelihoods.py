"""The decoder distributions ``p(x | z)`` and the Gaussian maths of the posterior.

Each likelihood reads the decoder's output ``(batch, n_params, D)`` and scores flattened data
``(batch, D)`` in nats, summed over the ``D`` scalars (Kingma & Welling 2014, appendix C):

- ``bernoulli``: one logit per scalar, for binary data (``digits-binary``).
- ``gaussian``: a mean per scalar and a standard deviation that is ``"learned"`` (output by the
  decoder, per example), ``"shared"`` (one learned value per data dimension) or ``"fixed"``.
- ``categorical``: ``levels`` logits per scalar, for integer levels ``0..levels-1`` (digits'
  17 grey levels), which gives a discrete likelihood with no dequantisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LIKELIHOODS = ("auto", "bernoulli", "gaussian", "categorical")
VARIANCES = ("learned", "shared", "fixed")
#: Floor on the Gaussian decoder's standard deviation, so the likelihood stays bounded.
MIN_STD = 1e-3


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` per latent dimension, shaped like ``mu``.

    Kingma & Welling (2014), appendix B: ``-1/2 (1 + log s^2 - mu^2 - s^2)``.
    """
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)


class _ReparameterisedKL(torch.autograd.Function):
    """``z = mu + exp(logvar / 2) * eps`` and ``KL(N(mu, exp(logvar)) || N(0, 1))`` per
    dimension as one autograd node with the closed-form backward

        dz/dmu = 1,  dz/dlogvar = z_noise / 2 = exp(logvar / 2) * eps / 2,
        dKL/dmu = mu,  dKL/dlogvar = (exp(logvar) - 1) / 2,

    the same values and gradients as the nine small ops it replaces, for less per-step work
    in the training loop of small VAEs (issue 19)."""

    @staticmethod
    def forward(ctx, mu: Tensor, logvar: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        noise = (0.5 * logvar).exp().mul_(eps)  # s * eps
        var = logvar.exp()
        z = mu + noise
        kl = 0.5 * (mu.square() + var - 1.0 - logvar)
        ctx.save_for_backward(mu, noise, var)
        return z, kl

    @staticmethod
    def backward(ctx, grad_z: Tensor, grad_kl: Tensor):  # type: ignore[override]
        mu, noise, var = ctx.saved_tensors
        grad_mu = torch.addcmul(grad_z, grad_kl, mu)
        grad_logvar = grad_z * noise + grad_kl * (var - 1.0)
        return grad_mu, grad_logvar.mul_(0.5), None


def reparameterise_with_kl(mu: Tensor, logvar: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """``z = mu + exp(logvar / 2) * eps`` (Kingma & Welling 2014, eq. 10) and
    :func:`gaussian_kl` per dimension, in one autograd node (see ``_ReparameterisedKL``)."""
    return _ReparameterisedKL.apply(mu, logvar, eps)


def free_bits_kl(kl_dims: Tensor, free_bits: float) -> Tensor:
    """The KL term with free bits (Kingma et al. 2016, "Improved variational inference with
    inverse autoregressive flow", appendix C.8): ``sum_j max(lambda, E_batch[KL_j])``.

    ``kl_dims`` ``(batch, d)`` holds ``KL(q(z_j | x) || p(z_j))``; below ``lambda`` nats a latent
    dimension's KL costs nothing, so the optimiser has no gain in shutting it off (posterior
    collapse) and the decoder learns to use it. ``free_bits = 0`` gives the plain KL.
    """
    per_dim = kl_dims.mean(0)  # (d,)
    if free_bits > 0:
        per_dim = per_dim.clamp_min(free_bits)
    return per_dim.sum()


def diagonal_normal_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` summed over the last dimension, in nats."""
    return -0.5 * ((z - mu).square() / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


class Bernoulli(nn.Module):
    """``p(x | z) = prod_i Bernoulli(x_i; sigmoid(logit_i))`` for ``x`` in ``{0, 1}``."""

    n_params = 1

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """``(batch, D), (batch, 1, D) -> (batch,)``."""
        return -F.binary_cross_entropy_with_logits(params[:, 0], x, reduction="none").sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        """The pixel probabilities ``(batch, D)``."""
        return torch.sigmoid(params[:, 0])

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        """Binary draws ``(batch, D)``."""
        return torch.bernoulli(self.mean(params), generator=generator)


class Gaussian(nn.Module):
    """``p(x | z) = N(x; mean(z), diag(std^2))`` with the std learned, shared or fixed."""

    def __init__(self, dim: int, variance: str, std: float) -> None:
        super().__init__()
        self.variance, self.fixed_std = variance, float(std)
        self.n_params = 2 if variance == "learned" else 1
        if variance == "shared":  # softplus^-1 of the initial std 1
            self.raw_std = nn.Parameter(torch.full((dim,), math.log(math.e - 1)))

    def std(self, params: Tensor) -> Tensor:
        """The standard deviation, broadcastable to ``(batch, D)``."""
        if self.variance == "learned":
            return F.softplus(params[:, 1]) + MIN_STD
        if self.variance == "shared":
            return F.softplus(self.raw_std) + MIN_STD
        return params.new_tensor(self.fixed_std)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """``(batch, D), (batch, n_params, D) -> (batch,)``."""
        std = self.std(params).expand_as(x)
        z = (x - params[:, 0]) / std
        return -(0.5 * z.square() + std.log() + 0.5 * math.log(2 * math.pi)).sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        """The decoder's mean ``(batch, D)``."""
        return params[:, 0]

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        """``mean + std * eps``, ``(batch, D)``."""
        mean = self.mean(params)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.std(params) * eps


class Categorical(nn.Module):
    """``p(x | z) = prod_i Cat(x_i; softmax(logits_i))`` over levels ``0..levels-1``."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.n_params = self.levels = levels

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """``(batch, D), (batch, levels, D) -> (batch,)``."""
        log_p = F.log_softmax(params, dim=1)
        return log_p.gather(1, x.long().unsqueeze(1)).squeeze(1).sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        """The expected level ``(batch, D)``."""
        levels = torch.arange(self.levels, device=params.device, dtype=params.dtype)
        return (F.softmax(params, dim=1) * levels[:, None]).sum(1)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        """Levels drawn per scalar, as floats ``(batch, D)``."""
        probs = F.softmax(params, dim=1).transpose(1, 2).reshape(-1, self.levels)
        draws = torch.multinomial(probs, 1, generator=generator)
        return draws.reshape(params.shape[0], -1).to(params.dtype)


def make_likelihood(name: str, dim: int, variance: str, std: float, levels: int) -> nn.Module:
    """The likelihood module ``name`` (already resolved from ``"auto"``) for ``D = dim``."""
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(dim, variance, std)
    return Categorical(levels)


def resolve_likelihood(data: Tensor) -> str:
    """What ``likelihood="auto"`` becomes: ``"bernoulli"`` for 0/1 data, else ``"gaussian"``."""
    binary = bool(((data == 0) | (data == 1)).all())
    return "bernoulli" if binary else "gaussian"
