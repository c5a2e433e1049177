"""The four classic GAN objectives as short recipes: GAN, WGAN, WGAN-GP, LSGAN.

Each takes an MLP (vectors) or DCGAN (images) generator and discriminator from
:mod:`.nets`, and any of the R1 / R2 / gp penalties (Mescheder et al. 2018) on top.

Built with ``n_classes = K`` (``genzoo.create(..., condition=labels)``, ``genzoo train ...
--condition label``) each is a class-conditional GAN: the generator ``G(z, y)`` reads the
one-hot class concatenated to its noise (its first layer, linear for the MLP and the DCGAN's
projection to the base grid alike, then holds a learned embedding per class, as in Mirza &
Osindero 2014; the networks have no batch normalisation, so there is no conditional
batch-norm to use), and the discriminator is the projection discriminator of Miyato &
Koyama (2018), ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``. At training the fakes of a
step take the classes of that step's real batch, the penalties too (``AdversarialModel``).

References:
    Mirza & Osindero, "Conditional generative adversarial nets", arXiv:1411.1784, 2014.
    Miyato & Koyama, "cGANs with projection discriminator", ICLR 2018.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.models.gans.base import AdversarialModel
from genzoo.models.gans.nets import Discriminator, check_sizes, make_features, make_generator
from genzoo.registry import register_model


class _MLPOrConvGAN(AdversarialModel):
    """An adversarial model whose two networks come from ``nets`` (not registered).

    It takes the arguments ``gan``, ``wgan``, ``wgan-gp`` and ``lsgan`` share (documented on
    :class:`GAN`) and forwards ``penalty``, ``penalty_weight``, ``n_critic`` and ``ema_decay``
    to :class:`AdversarialModel`; each variant sets its objective (``loss_kind``) and declares
    only what it changes. ``n_classes > 0`` makes it class-conditional (module docstring).
    """

    condition_kinds = ("discrete",)

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 16,
        hidden: int = 128,
        depth: int = 2,
        activation: str = "leaky_relu",
        output: str = "auto",
        n_classes: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)
        self.setup_class_condition(n_classes)
        self.set_latent_dim(latent_dim)
        check_sizes(hidden=hidden, depth=depth)
        self.generator = make_generator(
            self.latent_dim + self.n_classes, self.data_shape, hidden, depth, activation, output
        )
        self.discriminator = Discriminator(
            make_features(self.data_shape, hidden, depth, activation),
            bias=self.loss_kind != "wasserstein",  # a Wasserstein critic's bias cancels
            n_classes=self.n_classes,
        )
        self.init_ema()

    @torch.no_grad()
    def class_scores(self, x: Tensor) -> Tensor:
        """The discriminator's scores of ``x`` given every class, ``(n, n_classes)``: column
        ``k`` is ``D(x, k)``; the projection makes them differ by ``<embed(k) - embed(j),
        phi(x)>`` (a class-conditional GAN only)."""
        x = self.check_input(x)
        if not self.n_classes:
            self.check_condition(0)  # the one-line refusal of a model without a condition
        return torch.stack([self.critic(x, self.check_condition(k, len(x)))
                            for k in range(self.n_classes)], 1)  # fmt: skip


@register_model("gan", family="gan")
class GAN(_MLPOrConvGAN):
    """GAN (Goodfellow et al. 2014): minimax or non-saturating generator loss (density none).

    The discriminator maximises ``E log D(x) + E log(1 - D(G(z)))`` (eq. 1). The generator
    either minimises ``E log(1 - D(G(z)))`` (``loss="minimax"``, eq. 1 itself, whose gradient
    vanishes while D rejects the fakes) or maximises ``E log D(G(z))``
    (``loss="non-saturating"``, the paper's practical choice). ``penalty="r1"`` with
    ``penalty_weight`` gamma gives the R1-regularised GAN of Mescheder et al. (2018).

    Arguments (``loss`` and ``betas`` are its own, the others those every classic GAN shares):
        data_shape: ``(d,)`` vectors or ``(C, H, W)`` images.
        loss: ``"non-saturating"`` or ``"minimax"``.
        latent_dim: size of ``z ~ N(0, I)``.
        hidden: MLP width (vectors) or base channel count (images).
        depth: hidden layers of the MLPs (vectors only).
        activation: the networks' activation, by name.
        output: generator output activation; ``"auto"``: sigmoid for images (data in
            [0, 1]), identity for vectors.
        penalty: ``"none"``, ``"r1"``, ``"r2"`` or ``"gp"``.
        penalty_weight: gamma (R1/R2) or lambda (gp).
        n_critic: discriminator steps per generator step.
        ema_decay: generator weight EMA used for sampling; 0 turns it off.
        betas: Adam betas of both players; ``None``: DCGAN's ``(0.5, 0.999)``. ``(0, 0.99)``,
            StyleGAN's choice with R1 (Karras et al. 2019), makes the modes of
            ``25gaussians`` far sharper (``benchmarks/bench_gan_modes.py``).
        n_classes: ``K`` > 0 makes it class-conditional, ``G(z, y)`` against the projection
            discriminator ``D(x, y)``; ``c`` in ``0..K-1`` to ``loss`` and ``sample``.

    References:
        Goodfellow et al., "Generative adversarial nets", NeurIPS 2014.

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("8gaussians", n=512)
        >>> gan = genzoo.create("gan", data=x, penalty="r1", penalty_weight=1.0, hidden=32)
        >>> gan.sample(4).shape
        torch.Size([4, 2])
        >>> x, y = genzoo.load_dataset("8gaussians", n=512, condition=True)
        >>> cgan = genzoo.create("gan", data=x, condition=y, hidden=32)
        >>> cgan.n_classes, cgan.sample(4, c=3).shape
        (8, torch.Size([4, 2]))
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        loss: str = "non-saturating",
        betas: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)  # both losses keep the discriminator's bias
        self.set_loss(loss, ("minimax", "non-saturating"))
        self.set_betas(betas)


@register_model("wgan", family="gan")
class WGAN(_MLPOrConvGAN):
    """WGAN (Arjovsky et al. 2017): a weight-clipped critic, n critic steps (density none).

    The critic ``f`` maximises ``E f(x) - E f(G(z))`` (eq. 3) under weight clipping to
    ``[-clip_value, clip_value]`` (Algorithm 1), ``n_critic`` steps per generator step; the
    generator maximises ``E f(G(z))``. The paper's RMSProp is replaced by Adam with
    ``beta1 = 0`` (no momentum, as the paper advises), since the trainer uses Adam.

    Arguments:
        clip_value: bound of the critic's weights (0.01 in the paper).
        n_critic: critic steps per generator step (5 in the paper).
        The other arguments are those of :class:`GAN`, without ``loss`` and ``betas``.

    References:
        Arjovsky, Chintala & Bottou, "Wasserstein generative adversarial networks", ICML 2017.
    """

    betas = (0.0, 0.999)
    loss_kind = "wasserstein"

    def __init__(
        self, data_shape: Sequence[int], clip_value: float = 0.01, n_critic: int = 5, **kwargs: Any
    ) -> None:
        super().__init__(data_shape, n_critic=n_critic, **kwargs)
        self.set_clip_value(clip_value)


@register_model("wgan-gp", family="gan")
class WGANGP(_MLPOrConvGAN):
    """WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic with a gradient penalty.

    Instead of clipping, the critic's loss adds ``lambda E (||grad f(x_hat)|| - 1)^2`` on
    random interpolates ``x_hat`` between real and fake examples (eq. 3, Algorithm 1:
    lambda = 10, n_critic = 5, Adam with betas (0, 0.9)). No normalisation layers in the critic.

    Arguments:
        penalty: ``"gp"`` (the paper's), or another of :class:`GAN`'s.
        n_critic: critic steps per generator step (5 in the paper).
        The other arguments are those of :class:`GAN`, without ``loss`` and ``betas``.

    References:
        Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved training of Wasserstein
        GANs", NeurIPS 2017.
    """

    betas = (0.0, 0.9)
    loss_kind = "wasserstein"

    def __init__(
        self, data_shape: Sequence[int], penalty: str = "gp", n_critic: int = 5, **kwargs: Any
    ) -> None:
        super().__init__(data_shape, penalty=penalty, n_critic=n_critic, **kwargs)


@register_model("lsgan", family="gan")
class LSGAN(_MLPOrConvGAN):
    """LSGAN (Mao et al. 2017): least-squares discriminator and generator losses.

    With the 0-1 coding of eq. (9): the discriminator minimises
    ``1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2`` and the generator ``1/2 E (D(G(z)) - 1)^2``,
    which penalises fakes by their distance to the decision boundary.

    Arguments: those of :class:`GAN`, without ``loss`` and ``betas``.

    References:
        Mao, Li, Xie, Lau, Wang & Smolley, "Least squares generative adversarial networks",
        ICCV 2017.
    """

    loss_kind = "least-squares"
