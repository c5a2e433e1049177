"""GAN objectives and discriminator penalties as small pure functions of critic scores.

Scores are the discriminator's raw outputs ``(batch,)``: logits for the minimax and
non-saturating losses, values of a critic ``f`` for the Wasserstein loss, least-squares
outputs for LSGAN. Every function returns a scalar to *minimise*.

References:
    Goodfellow et al., "Generative adversarial nets", NeurIPS 2014.
    Arjovsky, Chintala & Bottou, "Wasserstein generative adversarial networks", ICML 2017.
    Gulrajani et al., "Improved training of Wasserstein GANs", NeurIPS 2017.
    Mao et al., "Least squares generative adversarial networks", ICCV 2017.
    Mescheder, Geiger & Nowozin, "Which training methods for GANs do actually converge?",
    ICML 2018.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

#: Adversarial objectives a GAN config may name.
LOSSES = ("minimax", "non-saturating", "wasserstein", "least-squares")
#: Discriminator penalties a GAN config may name (``"gp"``: WGAN-GP's two-sided penalty).
PENALTIES = ("none", "r1", "r2", "gp")

Critic = Callable[[Tensor], Tensor]


def discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's (critic's) objective from scores ``real`` and ``fake`` ``(batch,)``."""
    if kind in ("minimax", "non-saturating"):
        # Goodfellow eq. (1): max E log D(x) + E log(1 - D(G(z))), D = sigmoid(logit).
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "wasserstein":
        # Arjovsky eq. (3): max E f(x) - E f(G(z)) over (clipped / penalised) critics f.
        return fake.mean() - real.mean()
    if kind == "least-squares":
        # Mao eq. (9), 0-1 coding (a=0, b=1): 1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2.
        return 0.5 * (real - 1).square().mean() + 0.5 * fake.square().mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {LOSSES}")


def generator_loss(kind: str, fake: Tensor) -> Tensor:
    """The generator's objective from the scores ``fake`` ``(batch,)`` of its samples."""
    if kind == "minimax":
        # Goodfellow eq. (1): min E log(1 - D(G(z))) = -E softplus(logit); saturates early on.
        return -F.softplus(fake).mean()
    if kind == "non-saturating":
        # Goodfellow §3: max E log D(G(z)) instead, strong gradients when D rejects fakes.
        return F.softplus(-fake).mean()
    if kind == "wasserstein":
        return -fake.mean()
    if kind == "least-squares":
        # Mao eq. (9), c = 1: 1/2 E (D(G(z)) - 1)^2.
        return 0.5 * (fake - 1).square().mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {LOSSES}")


def input_gradient(critic: Critic, x: Tensor) -> Tensor:
    """``d critic(x) / dx`` per example, flattened ``(batch, dim)``, kept differentiable."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1)


def r1_penalty(critic: Critic, real: Tensor) -> Tensor:
    """Mescheder eq. (9): ``1/2 E_real ||grad_x D(x)||^2`` (multiply by gamma)."""
    return 0.5 * input_gradient(critic, real).square().sum(1).mean()


def r2_penalty(critic: Critic, fake: Tensor) -> Tensor:
    """Mescheder eq. (10): ``1/2 E_fake ||grad_x D(x)||^2`` (multiply by gamma)."""
    return 0.5 * input_gradient(critic, fake).square().sum(1).mean()


def gradient_penalty(
    critic: Critic, real: Tensor, fake: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Gulrajani eq. (3): ``E (||grad f(x_hat)|| - 1)^2`` on random interpolates (times lambda).

    ``x_hat = e x + (1 - e) x_fake`` with ``e ~ U[0, 1]`` per example.
    """
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    e = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = e * real.detach() + (1 - e) * fake.detach()
    norm = input_gradient(critic, x_hat).norm(dim=1)
    return (norm - 1).square().mean()


def penalty(kind: str, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
    """The unweighted penalty ``kind`` (one of ``PENALTIES`` other than ``"none"``)."""
    if kind == "r1":
        return r1_penalty(critic, real)
    if kind == "r2":
        return r2_penalty(critic, fake)
    if kind == "gp":
        return gradient_penalty(critic, real, fake)
    raise ValueError(f"unknown penalty {kind!r}; choose one of {PENALTIES}")


@torch.no_grad()
def discriminator_accuracy(kind: str, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Shares of ``real`` scored as real and of ``fake`` scored as fake.

    The decision threshold is 0 for logits, 0.5 for least squares, and for a Wasserstein
    critic (whose scores have no fixed scale) the midpoint of the two mean scores.
    """
    if kind == "least-squares":
        threshold = torch.tensor(0.5, device=real.device, dtype=real.dtype)
    elif kind == "wasserstein":
        threshold = 0.5 * (real.mean() + fake.mean())
    else:
        threshold = torch.zeros((), device=real.device, dtype=real.dtype)
    return (real > threshold).to(real.dtype).mean(), (fake <= threshold).to(real.dtype).mean()
