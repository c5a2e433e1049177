"""The shared GAN machinery: two players, n critic steps, penalties, diagnostics, EMA.

Every registered GAN is a short recipe over :class:`AdversarialModel`: it builds
``self.generator`` and ``self.discriminator`` and picks a loss from :mod:`.losses`.

Training protocol (what the trainer sees):

- players ``("discriminator", "generator")``; ``schedule(step)`` returns ``n_critic``
  discriminator steps followed by one generator step, so one trainer step is one generator
  update (each player step draws its own batch).
- ``optimizer_settings`` gives the Adam betas of the paper (a class attribute ``betas``).
- ``after_step`` clips the critic's weights (WGAN), updates the generator's EMA weights
  (kept as buffers and used by ``sample``) and records the player's gradient norm, logged as
  ``diag/grad_norm`` at that player's next step.
- loss terms: ``adversarial`` (+ ``penalty``, + family terms); diagnostics ``diag/...``:
  the discriminator's accuracy on real and fake, the gradient norm, the Wasserstein estimate.

Class-conditional GANs (a variant built with ``n_classes = K``, see
:meth:`AdversarialModel.setup_class_condition`): ``loss(batch, player, c=classes)`` makes the
fakes of each step with the batch's own classes, ``G(z, y)``, and scores reals and fakes with
``D(x, y)``; every penalty (R1, R2, gp on interpolates) is taken with those same classes, so
an interpolate lies between a real and a fake of one class. ``sample(n, c=...)`` takes a
class, or one per sample.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call

from genzoo.errors import DensityUnavailable
from genzoo.models.base import GenerativeModel
from genzoo.models.conditioning import Context
from genzoo.models.ema import EMA
from genzoo.models.gans.losses import (
    LOSSES,
    PENALTIES,
    Critic,
    discriminator_accuracy,
    discriminator_loss,
    generator_loss,
    penalty,
)
from genzoo.models.gans.nets import resolve_output


class EMAWeights(EMA):
    """Deprecated: the generator's average is :class:`genzoo.models.ema.EMA`, the one genzoo
    keeps (score models and the Trainer's ``--ema`` use it too). This old spelling keeps
    working for one release, with a ``DeprecationWarning``: ``EMAWeights(module)`` (the decay
    given to each ``update(module, decay)``, without warm-up) and ``as_dict()``; the state-dict
    keys are the same.
    """

    def __init__(self, module: nn.Module) -> None:
        warnings.warn(
            "genzoo.models.gans.EMAWeights is deprecated and will be removed after the next "
            "release: use genzoo.models.ema.EMA(module, decay), its update(step) and state()",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(module, 0.5, warmup=False)  # the decay comes with each update

    def as_dict(self) -> dict[str, Tensor]:
        """``{parameter name: averaged tensor}`` (now :meth:`EMA.state`)."""
        return self.state()

    def update(self, module: nn.Module, decay: float) -> None:  # type: ignore[override]
        """``ema <- decay * ema + (1 - decay) * param`` for the parameters of ``module``, the
        one averaged (now ``EMA(module, decay).update()``)."""
        self.decay = float(decay)
        super().update()


class AdversarialModel(GenerativeModel):
    """Base class of the GANs (not registered): a generator against a discriminator.

    Subclasses set ``self.generator`` (``latent -> (n, *data_shape)``) and
    ``self.discriminator`` (``x -> scores (n,)``), then call ``self.init_ema()``. What a
    variant changes it declares and forwards the rest by ``**kwargs``: its objective is the
    class attribute ``loss_kind`` (or its ``loss`` argument, through ``set_loss``), its noise
    size ``latent_dim`` (``set_latent_dim``), ``clip_value`` and ``betas`` likewise. A
    class-conditional variant calls ``setup_class_condition(n_classes)`` first, gives its
    generator ``latent_dim + n_classes`` inputs and its discriminator a projection on the
    class (``nets.Discriminator(..., n_classes=K)``, scores ``D(x, y)``).

    Arguments (shared by every GAN):
        data_shape: shape of one example.
        penalty: one of ``PENALTIES``: R1 (real data), R2 (fakes), gp (interpolates).
        penalty_weight: gamma of R1/R2 (the term is ``gamma/2 E||grad D||^2``), lambda of gp.
        n_critic: discriminator steps per generator step.
        ema_decay: decay of the generator's weight EMA used by ``sample``; 0: off.
    """

    density = "none"
    players = ("discriminator", "generator")
    #: Adam betas of the paper, for both players.
    betas: ClassVar[tuple[float, float]] = (0.5, 0.999)
    #: The objective, one of ``LOSSES``.
    loss_kind: str = "non-saturating"
    #: Clamp the critic's weights to ``[-c, c]`` after each of its steps; 0: off (WGAN's).
    clip_value: float = 0.0
    #: Size of the generator's noise ``z ~ N(0, I)``.
    latent_dim: int = 1
    generator: nn.Module
    discriminator: nn.Module

    def __init__(
        self,
        data_shape: Sequence[int],
        penalty: str = "none",
        penalty_weight: float = 10.0,
        n_critic: int = 1,
        ema_decay: float = 0.0,
    ) -> None:
        super().__init__(data_shape)
        if penalty not in PENALTIES:
            raise ValueError(f"unknown penalty {penalty!r}; choose one of {PENALTIES}")
        if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
            raise ValueError(f"n_critic must be an integer >= 1; got {n_critic!r}")
        if penalty_weight < 0:
            raise ValueError(f"need penalty_weight >= 0; got {penalty_weight=}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1); got {ema_decay}")
        self.penalty_kind = penalty
        self.penalty_weight = float(penalty_weight)
        self.n_critic = n_critic
        self.ema_decay = float(ema_decay)
        self._grad_norms: dict[str, Tensor] = {}

    def set_loss(self, loss: str, choices: Sequence[str] = LOSSES) -> None:
        """Use the objective ``loss``, one of ``choices`` (those the variant offers)."""
        if loss not in choices:
            raise ValueError(f"unknown {self.name or 'GAN'} loss {loss!r}; choose one of "
                             f"{tuple(choices)}")  # fmt: skip
        self.loss_kind = loss

    def set_latent_dim(self, latent_dim: int) -> None:
        """Use noise ``z`` of ``latent_dim`` dimensions (a positive integer)."""
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer; got {latent_dim!r}")
        self.latent_dim = latent_dim

    def set_clip_value(self, clip_value: float) -> None:
        """Clamp the critic's weights to ``[-clip_value, clip_value]`` (0: off)."""
        if clip_value < 0:
            raise ValueError(f"need clip_value >= 0; got {clip_value=}")
        self.clip_value = float(clip_value)

    def set_betas(self, betas: Sequence[float] | None) -> None:
        """Adam betas of both players; ``None`` keeps the class's (the paper's)."""
        if betas is not None:
            if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
                raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
            self.betas = (float(betas[0]), float(betas[1]))  # shadows the class's default

    def setup_class_condition(self, n_classes: int) -> None:
        """Build the model for a class condition ``0..n_classes-1`` (0: none), as a
        class-conditional GAN (call it before building the networks; the class must list
        ``"discrete"`` in ``condition_kinds``). The generator then reads the one-hot class
        beside its noise (:meth:`generator_input`) and the discriminator must be a projection
        discriminator taking ``(x, y)``."""
        self.setup_condition(n_classes, 0)
        self.context = Context(self.n_classes)

    def generator_input(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """The generator's input: the noise ``z`` ``(n, latent_dim)``, and for a class ``c``
        ``(n,)`` its one-hot vector beside it, ``(n, latent_dim + n_classes)``; the first
        layer that reads it holds one learned embedding per class (Mirza & Osindero 2014)."""
        if c is None:
            return z
        if not self.n_classes:
            self.check_condition(c)  # the one-line refusal of a model built without one
        return torch.cat([z, self.context(c).to(z.dtype)], dim=1)

    def initialize(self, data: Tensor, c: Any = None) -> None:
        """Nothing to fit from the data; a class condition's frequencies set
        ``class_log_prior``."""
        if c is not None:
            self.set_class_prior(c)

    def init_ema(self) -> None:
        """Create the generator's EMA buffers when ``ema_decay > 0`` (call after building it):
        a :class:`genzoo.models.ema.EMA`, warmed up by the trainer's step."""
        if self.ema_decay > 0:
            self.generator_ema = EMA(self.generator, self.ema_decay)

    def own_weight_average(self) -> str | None:
        return "ema_decay" if self.ema_decay > 0 else None

    # -- the players --------------------------------------------------------------------------
    def schedule(self, step: int) -> Sequence[str]:
        """``n_critic`` discriminator steps, then one generator step, at every trainer step."""
        return ("discriminator",) * self.n_critic + ("generator",)

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        """The discriminator's or the generator's parameters."""
        module = {"discriminator": self.discriminator, "generator": self.generator}.get(player)
        if module is None:
            raise ValueError(f"unknown player {player!r}; GANs have players {self.players}")
        return list(module.parameters())

    def optimizer_settings(self, player: str) -> dict[str, Any]:
        """Adam betas of the paper (``self.betas``)."""
        return {"betas": tuple(self.betas)}

    @torch.no_grad()
    def after_step(self, player: str, step: int) -> None:
        """Record the gradient norm; clip the critic (WGAN); update the generator's EMA."""
        grads = [p.grad.norm() for p in self.player_parameters(player) if p.grad is not None]
        if grads:
            self._grad_norms[player] = torch.stack(grads).norm()
        if player == "discriminator" and self.clip_value > 0:
            for p in self.discriminator.parameters():
                p.clamp_(-self.clip_value, self.clip_value)
        if player == "generator" and self.ema_decay > 0:
            # warmed up by the step: early averages follow the weights closely
            self.generator_ema.update(step)

    # -- generating ---------------------------------------------------------------------------
    def draw_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Generator input ``z ~ N(0, I)`` shaped ``(n, latent_dim)``."""
        return torch.randn(
            n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype
        )

    def run_generator(self, *args: Any, ema: bool = False, **kwargs: Any) -> Tensor:
        """Call ``self.generator`` with its own weights or (``ema=True``) the averaged ones."""
        if ema and self.ema_decay > 0:
            return functional_call(self.generator, self.generator_ema.state(), args, kwargs)
        return self.generator(*args, **kwargs)

    def generate(
        self,
        n: int,
        generator: torch.Generator | None = None,
        ema: bool = False,
        c: Tensor | None = None,
    ) -> Tensor:
        """``n`` generated examples ``(n, *data_shape)``, differentiable unless under no_grad
        (of the checked classes ``c`` ``(n,)``, for a class-conditional GAN)."""
        return self.run_generator(self.generator_input(self.draw_latent(n, generator), c), ema=ema)

    def training_fakes(self, n: int, c: Tensor | None = None) -> Tensor:
        """The fakes of one training step (StyleGAN adds style mixing here), of the classes
        ``c`` for a class-conditional GAN."""
        return self.generate(n, c=c)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, c: Any = None) -> Tensor:
        """Draw ``n`` samples ``(n, *data_shape)`` (EMA weights when ``ema_decay > 0``); a
        class-conditional GAN's of the class ``c`` (an int, or ``(n,)`` one per sample)."""
        c = self.check_condition(c, n)
        return self.generate(n, generator, ema=self.ema_decay > 0, **_given(c))

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Not available: a GAN defines no density."""
        self.check_input(x)
        self.check_condition(c, len(x))
        raise DensityUnavailable(
            f"{self.name or type(self).__name__} is a GAN: it learns a sampler and defines no "
            "density (density='none'), so log_prob cannot be computed; compare it with "
            "sample-based metrics instead, e.g. genzoo.metrics.modes.mode_coverage on mixtures "
            "or MMD between samples and held-out data"
        )

    # -- the losses ---------------------------------------------------------------------------
    def critic(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The discriminator's scores ``(n,)`` for examples ``x`` (given their classes ``c``
        ``(n,)``, for a class-conditional GAN: the projection discriminator's ``D(x, c)``)."""
        scores = self.discriminator(x) if c is None else self.discriminator(x, c)
        return scores.reshape(x.shape[0])

    def loss(self, batch: Tensor, player: str = "generator", c: Any = None) -> dict[str, Tensor]:
        """The named terms of ``player``'s objective on a real ``batch`` (of the classes ``c``,
        for a class-conditional GAN: the fakes take the same classes)."""
        real = self.check_input(batch)
        c = self.check_condition(c, real.shape[0])
        critic = self.critic if c is None else functools.partial(self.critic, c=c)
        if player == "discriminator":
            with torch.no_grad():
                fake = self.training_fakes(real.shape[0], **_given(c))
            return self.discriminator_terms(real, fake, critic)
        if player == "generator":
            fake = self.training_fakes(real.shape[0], **_given(c))
            terms = {"adversarial": generator_loss(self.loss_kind, critic(fake))}
            return terms | self.grad_norm_diag(player)
        raise ValueError(f"unknown player {player!r}; GANs have players {self.players}")

    def discriminator_terms(
        self, real: Tensor, fake: Tensor, critic: Critic | None = None
    ) -> dict[str, Tensor]:
        """Adversarial term, penalty and diagnostics of the discriminator on one batch."""
        critic = critic or self.critic
        s_real, s_fake = critic(real), critic(fake)
        terms = {"adversarial": discriminator_loss(self.loss_kind, s_real, s_fake)}
        if self.penalty_kind != "none":
            terms["penalty"] = self.penalty_weight * penalty(self.penalty_kind, critic, real, fake)
        acc_real, acc_fake = discriminator_accuracy(self.loss_kind, s_real, s_fake)
        terms["diag/real_accuracy"] = acc_real
        terms["diag/fake_accuracy"] = acc_fake
        if self.loss_kind == "wasserstein":
            terms["diag/wasserstein"] = (s_real.mean() - s_fake.mean()).detach()
        return terms | self.grad_norm_diag("discriminator")

    def grad_norm_diag(self, player: str) -> dict[str, Tensor]:
        """``{"diag/grad_norm": norm}`` of ``player``'s gradient at its previous step."""
        norm = self._grad_norms.get(player)
        if norm is None:
            norm = torch.zeros((), device=self.device, dtype=self.dtype)
        return {"diag/grad_norm": norm}


class KarrasGAN(AdversarialModel):
    """Base of ``progan`` and ``stylegan`` (not registered): the settings Karras et al. share,
    a 32-dimensional latent, a generator EMA of decay 0.999 and Adam betas (0, 0.99).

    Arguments:
        data_shape: shape of one example.
        latent_dim: size of ``z ~ N(0, I)``.
        loss: one of ``LOSSES``.
        ema_decay: decay of the generator's weight EMA used by ``sample``; 0: off.
        output: generator output activation, resolved into ``self.output_kind`` (``"auto"``:
            sigmoid for images, identity for vectors).
        The other arguments are those of :class:`AdversarialModel`.
    """

    betas = (0.0, 0.99)

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 32,
        loss: str = "non-saturating",
        ema_decay: float = 0.999,
        output: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(data_shape, ema_decay=ema_decay, **kwargs)
        self.set_loss(loss)
        self.set_latent_dim(latent_dim)
        self.output_kind = resolve_output(output, self.data_shape)


def _given(c: Tensor | None) -> dict[str, Tensor]:
    """``{"c": c}`` for a class-conditional call, ``{}`` otherwise: the methods of the
    unconditional variants (StyleGAN's ``training_fakes``, ProGAN's ``generate``) take no ``c``."""
    return {} if c is None else {"c": c}
