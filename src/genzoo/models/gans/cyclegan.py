"""CycleGAN: unpaired translation between two domains with cycle consistency.

References:
    Zhu, Park, Isola & Efros, "Unpaired image-to-image translation using cycle-consistent
    adversarial networks", ICCV 2017.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genzoo.errors import DataError
from genzoo.models.gans.base import AdversarialModel
from genzoo.models.gans.losses import generator_loss
from genzoo.models.gans.nets import (
    OUTPUTS,
    Discriminator,
    check_gan_shape,
    check_sizes,
    is_image,
    make_features,
    resolve_output,
)
from genzoo.models.nn import MLP, get_activation
from genzoo.registry import register_model
from genzoo.validation import check_shape


class ResidualBlock(nn.Module):
    """``x + conv(act(conv(x)))``, 3x3 convolutions keeping the resolution."""

    def __init__(self, channels: int, activation: str) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            get_activation(activation),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def make_translator(
    shape: Sequence[int], hidden: int, depth: int, activation: str, output: str
) -> nn.Module:
    """A map from one domain to the other: MLP for vectors, conv + residual blocks for images."""
    if is_image(shape):
        channels = shape[0]
        return nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            get_activation(activation),
            *(ResidualBlock(hidden, activation) for _ in range(depth)),
            nn.Conv2d(hidden, channels, 3, padding=1),
            OUTPUTS[output](),
        )
    return nn.Sequential(MLP(shape[0], shape[0], (hidden,) * depth, activation), OUTPUTS[output]())


class Translators(nn.Module):
    """The two generators: ``G: A -> B`` (``ab``) and ``F: B -> A`` (``ba``)."""

    def __init__(self, ab: nn.Module, ba: nn.Module) -> None:
        super().__init__()
        self.ab, self.ba = ab, ba

    def forward(self, x: Tensor, direction: str) -> Tensor:
        return self.ab(x) if direction == "AB" else self.ba(x)


@register_model("cyclegan", family="gan")
class CycleGAN(AdversarialModel):
    """CycleGAN (Zhu et al. 2017): unpaired translation A <-> B with cycle consistency.

    Data: unpaired examples of the two domains concatenated along axis 1 (features of
    vectors, channels of images), as ``genzoo.data.domains.load_domain_pair`` returns them;
    each row holds an A example and an unrelated B example.

    Two translators ``G: A -> B`` and ``F: B -> A`` and two discriminators ``D_A``, ``D_B``.
    The objective (eq. 3) is ``L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc(G, F)`` with the
    least-squares adversarial loss the paper uses (§4), the cycle loss (eq. 2)
    ``E|F(G(a)) - a| + E|G(F(b)) - b|`` and the identity loss of §5.2
    ``E|G(b) - b| + E|F(a) - a|`` (weight ``identity_weight``, 0.5 lambda in the paper).
    L1 distances are averaged over elements.

    ``sample(n)`` translates random examples of a bank of training examples (``bank_size``
    rows kept as a buffer by ``initialize``, so they are saved with the weights): it returns
    ``[F(b) | G(a)]``, a fake A beside a fake B, shaped like the data. Use ``translate`` to
    map given examples.

    Arguments:
        data_shape: ``(2d,)`` or ``(2C, H, W)``: both domains, concatenated.
        hidden: MLP width (vectors) or channels (images) of translators and discriminators.
        depth: hidden layers of the MLPs / residual blocks of the image translators.
        cycle_weight: lambda (10 in the paper).
        identity_weight: weight of the identity loss (5 = 0.5 lambda; 0 turns it off).
        loss: ``"least-squares"`` (the paper's) or ``"non-saturating"``.
        bank_size: training examples kept for ``sample``.
        activation, output: as :class:`genzoo.models.gans.GAN`.
        penalty, penalty_weight, n_critic, ema_decay: those of every GAN (forwarded to
            :class:`AdversarialModel`), as :class:`genzoo.models.gans.GAN`.
    """

    data_kinds = ("pair",)  # two unpaired domains side by side

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: int = 64,
        depth: int = 2,
        cycle_weight: float = 10.0,
        identity_weight: float = 5.0,
        loss: str = "least-squares",
        activation: str = "leaky_relu",
        output: str = "auto",
        bank_size: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, **kwargs)  # translators take no noise: latent_dim stays 1
        self.set_loss(loss, ("least-squares", "non-saturating"))
        check_gan_shape(self.data_shape)
        check_sizes(hidden=hidden, depth=depth, bank_size=bank_size)
        if self.data_shape[0] % 2:
            raise DataError(
                f"cyclegan takes two domains concatenated on axis 1, which must be even; got "
                f"examples shaped {self.data_shape} (see genzoo.data.domains.load_domain_pair)"
            )
        if cycle_weight < 0 or identity_weight < 0:
            raise ValueError(f"need cycle_weight >= 0 and identity_weight >= 0; got "
                             f"{cycle_weight}, {identity_weight}")  # fmt: skip
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)
        self.domain_shape = (self.data_shape[0] // 2, *self.data_shape[1:])
        out = resolve_output(output, self.domain_shape)
        self.generator = Translators(
            make_translator(self.domain_shape, hidden, depth, activation, out),
            make_translator(self.domain_shape, hidden, depth, activation, out),
        )
        self.discriminator = nn.ModuleDict({
            d: Discriminator(make_features(self.domain_shape, hidden, depth, activation))
            for d in ("A", "B")
        })  # fmt: skip
        self.register_buffer("bank", torch.zeros(bank_size, *self.data_shape))
        self.init_ema()

    def initialize(self, data: Tensor) -> None:
        """Keep the first ``bank_size`` training examples (repeated if fewer) for ``sample``."""
        data = self.check_input(data)
        repeats = -(-self.bank.shape[0] // data.shape[0])
        self.bank.copy_(data.repeat(repeats, *(1,) * (data.ndim - 1))[: self.bank.shape[0]])

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(n, *data_shape)`` -> A ``(n, *domain_shape)`` and B ``(n, *domain_shape)``."""
        k = self.domain_shape[0]
        return x[:, :k], x[:, k:]

    def translate(self, x: Tensor, direction: str = "AB") -> Tensor:
        """Map examples ``(n, *domain_shape)`` of A to B (``"AB"``) or of B to A (``"BA"``)."""
        if direction not in ("AB", "BA"):
            raise ValueError(f"direction must be 'AB' or 'BA'; got {direction!r}")
        check_shape(x, self.domain_shape, f"examples of domain {direction[0]}")
        with torch.no_grad():
            x = x.to(device=self.device, dtype=self.dtype)
            return self.run_generator(x, direction, ema=self.ema_decay > 0)

    @torch.no_grad()
    def cycle_error(self, batch: Tensor) -> float:
        """Mean L1 cycle error ``(|F(G(a)) - a| + |G(F(b)) - b|) / 2`` on a data batch."""
        a, b = self.split(self.check_input(batch))
        back_a = self.generator(self.generator(a, "AB"), "BA")
        back_b = self.generator(self.generator(b, "BA"), "AB")
        return float(0.5 * ((back_a - a).abs().mean() + (back_b - b).abs().mean()))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[F(b) | G(a)]`` ``(n, *data_shape)`` for bank examples a, b drawn by ``generator``."""
        idx = torch.randint(self.bank.shape[0], (2, n), generator=generator, device=self.device)
        a, _ = self.split(self.bank[idx[0]])
        _, b = self.split(self.bank[idx[1]])
        ema = self.ema_decay > 0
        fake_a = self.run_generator(b, "BA", ema=ema)
        fake_b = self.run_generator(a, "AB", ema=ema)
        return torch.cat([fake_a, fake_b], dim=1)

    def loss(self, batch: Tensor, player: str = "generator") -> dict[str, Tensor]:
        """Eq. (3): adversarial terms of both directions + lambda cycle + identity terms."""
        a, b = self.split(self.check_input(batch))
        G, D = self.generator, self.discriminator
        if player == "discriminator":
            with torch.no_grad():
                fake_b, fake_a = G(a, "AB"), G(b, "BA")
            t_a = self.discriminator_terms(a, fake_a, critic=lambda x: D["A"](x))
            t_b = self.discriminator_terms(b, fake_b, critic=lambda x: D["B"](x))
            return {
                k: t_a[k] + t_b[k] if not k.startswith("diag/") else 0.5 * (t_a[k] + t_b[k])
                for k in t_a
            } | self.grad_norm_diag(player)
        if player != "generator":
            raise ValueError(f"unknown player {player!r}; GANs have players {self.players}")
        fake_b, fake_a = G(a, "AB"), G(b, "BA")
        terms = {
            "adversarial": generator_loss(self.loss_kind, D["B"](fake_b))
            + generator_loss(self.loss_kind, D["A"](fake_a)),
            "cycle": self.cycle_weight
            * ((G(fake_b, "BA") - a).abs().mean() + (G(fake_a, "AB") - b).abs().mean()),
        }
        if self.identity_weight > 0:
            terms["identity"] = self.identity_weight * (
                (G(b, "AB") - b).abs().mean() + (G(a, "BA") - a).abs().mean()
            )
        return terms | self.grad_norm_diag(player)
