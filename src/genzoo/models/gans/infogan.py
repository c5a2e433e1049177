"""InfoGAN: a GAN whose latent codes are kept recoverable from its samples.

References:
    Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel, "InfoGAN: Interpretable
    representation learning by information maximizing generative adversarial nets",
    NeurIPS 2016.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.models.gans.base import AdversarialModel
from genzoo.models.gans.losses import generator_loss
from genzoo.models.gans.nets import check_sizes, make_features, make_generator
from genzoo.models.nn import MLP
from genzoo.registry import register_model


class InfoDiscriminator(nn.Module):
    """Shared body with two heads: ``x -> (score (n,), Q's code outputs (n, K + m))``."""

    def __init__(self, body: nn.Module, n_codes: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.out_features, 1)
        self.q_head = MLP(body.out_features, n_codes, (hidden,), activation=activation)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(x)
        return self.head(h).squeeze(-1), self.q_head(h)


@register_model("infogan", family="gan")
class InfoGAN(AdversarialModel):
    """InfoGAN (Chen et al. 2016): GAN + mutual information between codes and samples.

    The generator sees noise ``z``, a categorical code ``c ~ Cat(K)`` (one-hot) and continuous
    codes ``c' ~ U(-1, 1)^m``. An auxiliary head ``Q`` on the discriminator's body predicts
    the codes; both players add ``-lambda L_I`` (eq. 5, Lemma 5.1), the variational lower
    bound ``L_I = E log Q(c | G(z, c)) + H(c) <= I(c; G(z, c))``, with ``Q(c'|x)`` a factored
    Gaussian of unit variance (so its term is half the squared error, up to constants).
    The adversarial part is the non-saturating GAN.

    Arguments:
        data_shape: ``(d,)`` vectors or ``(C, H, W)`` images.
        latent_dim: size of the incompressible noise ``z``.
        n_categories: K, values of the categorical code (10 for digits); 0 for none.
        n_continuous: m, number of continuous codes; 0 for none.
        info_weight: lambda (1 in the paper).
        hidden, depth, activation, output, betas: as :class:`genzoo.models.gans.GAN`.
        penalty, penalty_weight, n_critic, ema_decay: those of every GAN (forwarded to
            :class:`AdversarialModel`), as :class:`genzoo.models.gans.GAN`.

    Logged: ``info`` (the loss ``-L_I + H(c)``), ``diag/code_accuracy`` (Q's accuracy on
    the categorical code of the fakes) and ``diag/mi_lower_bound`` (nats, categorical part).

    On digits, a small noise (``latent_dim=4``, so the class must come from the code),
    ``hidden=32``, ``n_continuous=1``, ``ema_decay=0.99``, lr 1e-3, batch 64 and 3000 steps
    make each categorical value draw mostly one class (code purity 0.65 under the digits
    classifier, 9 of 10 classes; with the defaults but ``hidden=32``, at lr 2e-4 and 1500
    steps: 0.24 and 4 classes, Q recovering 30% of codes).
    ``benchmarks/bench_gan_modes.py --infogan-digits`` measures it with :meth:`code_purity`.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 16,
        n_categories: int = 10,
        n_continuous: int = 2,
        info_weight: float = 1.0,
        hidden: int = 128,
        depth: int = 2,
        activation: str = "leaky_relu",
        output: str = "auto",
        betas: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)  # the non-saturating GAN
        self.set_latent_dim(latent_dim)
        self.set_betas(betas)
        check_sizes(hidden=hidden, depth=depth)
        if n_categories < 0 or n_continuous < 0 or n_categories + n_continuous == 0:
            raise ValueError(f"InfoGAN needs at least one code: n_categories={n_categories}, "
                             f"n_continuous={n_continuous}")  # fmt: skip
        if n_categories == 1:
            raise ValueError("a categorical code needs n_categories >= 2 (or 0 for none)")
        if info_weight < 0:
            raise ValueError(f"info_weight must be >= 0; got {info_weight}")
        self.n_categories, self.n_continuous = int(n_categories), int(n_continuous)
        self.info_weight = float(info_weight)
        n_in = latent_dim + self.n_categories + self.n_continuous
        self.generator = make_generator(n_in, self.data_shape, hidden, depth, activation, output)
        body = make_features(self.data_shape, hidden, depth, activation)
        self.discriminator = InfoDiscriminator(
            body, self.n_categories + self.n_continuous, hidden, activation
        )
        self.init_ema()

    # -- codes --------------------------------------------------------------------------------
    def draw_codes(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Categorical codes ``(n,)`` (long) and continuous codes ``(n, m)`` in ``[-1, 1]``."""
        kw = {"generator": generator, "device": self.device}
        cat = torch.randint(max(self.n_categories, 1), (n,), **kw)
        cont = 2 * torch.rand(n, self.n_continuous, dtype=self.dtype, **kw) - 1
        return cat, cont

    def generate_with_codes(
        self, z: Tensor, categories: Tensor, continuous: Tensor, ema: bool = False
    ) -> Tensor:
        """``G(z, c, c')`` for noise ``(n, latent_dim)``, categories ``(n,)``, codes ``(n, m)``."""
        one_hot = F.one_hot(categories, self.n_categories) if self.n_categories else z[:, :0]
        one_hot = one_hot.to(z.dtype)
        return self.run_generator(torch.cat([z, one_hot, continuous], dim=1), ema=ema)

    def generate(
        self, n: int, generator: torch.Generator | None = None, ema: bool = False
    ) -> Tensor:
        """``n`` examples from random noise and codes."""
        z = self.draw_latent(n, generator)
        return self.generate_with_codes(z, *self.draw_codes(n, generator), ema=ema)

    def critic(self, x: Tensor) -> Tensor:
        return self.discriminator(x)[0]

    def predict_codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Q's categorical logits ``(n, K)`` and continuous means ``(n, m)`` for ``x``."""
        q = self.discriminator(self.check_input(x))[1]
        return q[:, : self.n_categories], q[:, self.n_categories :]

    @torch.no_grad()
    def code_accuracy(self, n: int = 1000, generator: torch.Generator | None = None) -> float:
        """Share of fakes whose categorical code Q recovers (chance: ``1 / n_categories``)."""
        cat, cont = self.draw_codes(n, generator)
        x = self.generate_with_codes(self.draw_latent(n, generator), cat, cont)
        return float((self.predict_codes(x)[0].argmax(1) == cat).float().mean())

    @torch.no_grad()
    def code_purity(
        self,
        classify: Callable[[Tensor], Tensor],
        n: int = 200,
        generator: torch.Generator | None = None,
    ) -> dict[str, float | int | list[int]]:
        """How well each categorical value picks one class of an external classifier.

        For each value ``k`` of the categorical code, ``n`` samples (random noise and
        continuous codes, EMA weights when kept) are labelled by ``classify`` (images
        ``(n, *data_shape)`` -> labels ``(n,)``). Returns ``purity`` (mean over k of the share
        in k's majority class; 1 when every code draws a single class), ``distinct``
        (how many different majority classes the K codes have) and ``majority`` (per code).
        Chen et al. (2016, Fig. 2a) get one digit class per code on MNIST.
        """
        if not self.n_categories:
            raise ValueError("code_purity needs a categorical code (n_categories >= 2)")
        shares, majority = [], []
        for k in range(self.n_categories):
            _, cont = self.draw_codes(n, generator)
            cat = torch.full((n,), k, dtype=torch.long, device=self.device)
            x = self.generate_with_codes(self.draw_latent(n, generator), cat, cont,
                                         ema=self.ema_decay > 0)  # fmt: skip
            counts = torch.bincount(torch.as_tensor(classify(x)).reshape(-1).long().cpu())
            majority.append(int(counts.argmax()))
            shares.append(float(counts.max()) / n)
        return {"purity": sum(shares) / len(shares), "distinct": len(set(majority)),
                "majority": majority}  # fmt: skip

    # -- the loss -----------------------------------------------------------------------------
    def info_terms(self, x: Tensor, cat: Tensor, cont: Tensor) -> dict[str, Tensor]:
        """``lambda * (-L_I + H(c))`` and diagnostics, for fakes ``x`` made with codes."""
        q_cat, q_cont = self.predict_codes(x)
        info = torch.zeros((), device=self.device, dtype=self.dtype)
        terms: dict[str, Tensor] = {}
        if self.n_categories:
            ce = F.cross_entropy(q_cat, cat)  # -E log Q(c|x)
            info = info + ce
            terms["diag/code_accuracy"] = (q_cat.argmax(1) == cat).to(x.dtype).mean()
            terms["diag/mi_lower_bound"] = (math.log(self.n_categories) - ce).detach()
        if self.n_continuous:
            info = info + 0.5 * (q_cont - cont).square().sum(1).mean()  # -E log N(c'; mu, 1)
        return {"info": self.info_weight * info} | terms

    def loss(self, batch: Tensor, player: str = "generator") -> dict[str, Tensor]:
        """Adversarial (+ penalty) + information terms of ``player`` on a real ``batch``."""
        real = self.check_input(batch)
        n = real.shape[0]
        cat, cont = self.draw_codes(n)
        z = self.draw_latent(n)
        if player == "discriminator":
            with torch.no_grad():
                fake = self.generate_with_codes(z, cat, cont)
            terms = self.discriminator_terms(real, fake)
            return terms | self.info_terms(fake, cat, cont)
        if player == "generator":
            fake = self.generate_with_codes(z, cat, cont)
            terms = {"adversarial": generator_loss(self.loss_kind, self.critic(fake))}
            return terms | self.info_terms(fake, cat, cont) | self.grad_norm_diag(player)
        raise ValueError(f"unknown player {player!r}; GANs have players {self.players}")
