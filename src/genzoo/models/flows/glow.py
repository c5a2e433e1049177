"""Glow: ActNorm, invertible 1x1 convolution (LU) and affine coupling, over several scales.

References:
    Kingma & Dhariwal, "Glow: Generative flow with invertible 1x1 convolutions",
    NeurIPS 2018 (arXiv:1807.03039).
    Ho, Chen, Srinivas, Duan & Abbeel, "Flow++: Improving flow-based generative models with
    variational dequantization and architecture design", ICML 2019 (arXiv:1902.00275),
    section 3.1 (``dequantization="variational"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.errors import DataError
from genzoo.models.base import model_fact
from genzoo.models.flows.base import Flow
from genzoo.models.flows.coupling import (
    AffineCoupling,
    ConvAffineCoupling,
    alternating_masks,
    channel_mask,
)
from genzoo.models.flows.dequantization import VariationalDequantizer, variational_bound
from genzoo.models.flows.multiscale import MultiScale, Squeeze, check_multiscale_shape, squeezed
from genzoo.models.flows.transforms import ActNorm, Compose, Flatten, InvertibleLinear, Logit
from genzoo.registry import register_model


@register_model("glow", family="flow")
class Glow(Flow):
    """Glow flow: steps of ActNorm, invertible 1x1 conv and affine coupling (exact density).

    One step of flow (figure 2a, table 1) is ActNorm (data-dependent initialisation, set
    by ``initialize``), an invertible 1x1 convolution in LU form (eq. 10) and an affine
    coupling whose conditioner starts at zero. Images ``(c, h, w)`` with values in
    ``[0, 1]`` use the multi-scale architecture (figure 2b): ``n_levels`` times a squeeze,
    ``n_steps`` steps of flow and a split that factors out half the channels (to the standard
    normal; the paper's learned prior of the split is not used). The logit pre-processing
    with margin ``alpha`` is included with its log-det, so ``log_prob`` is a density on
    ``[0, 1]^D`` and bits/dim on dequantised data are exact. Vectors (2-D toys, tables) use
    ``n_steps`` steps with a full invertible linear map and an MLP coupling.
    ``sample(n, generator, temperature=T)`` samples the reduced-temperature model of
    section 5.5.

    Arguments:
        data_shape: shape of one example; at least 2 scalars.
        n_steps: steps of flow (per level for images).
        n_levels: number of scales for images (``h`` and ``w`` divisible by ``2**n_levels``).
        hidden: conditioner width (CNN channels for images, MLP units for vectors).
        depth: hidden layers of each vector conditioner MLP.
        scale: the coupling's scale, ``"sigmoid"`` (Glow's ``sigmoid(s_raw + 2)``) or
            ``"tanh"`` (a soft clamp of the log-scale to ``±scale_bound``).
        scale_bound: bound on the log-scale when ``scale="tanh"``.
        activation: the conditioners' activation, by name.
        multiscale: use the multi-scale image architecture for ``(c, h, w)`` data.
        alpha: the logit pre-processing's margin for images, in ``[0, 0.5)``; 0 keeps the
            density on ``[0, 1]^D`` exactly normalised (the paper's 0.05 loses some mass).
        n_classes: ``K`` > 0 makes it a class-conditional flow ``p(x | c)``: every coupling's
            network also reads the class (one-hot; constant channels for images), the
            conditional coupling of Winkler et al. 2019. ActNorm and the 1x1 convolutions
            stay unconditional.
        condition_dim: ``C`` > 0 conditions it on a vector of ``C`` numbers instead.
        dequantization: how integer-level images meet the continuous density.
            ``"uniform"`` (default): the model is a density on ``[0, 1]^D`` trained on
            ``(x + u) / L``, ``u ~ U[0, 1)^D``, and evaluation reports the uniform
            dequantisation bound (``genzoo.metrics.likelihood``). ``"variational"``: Flow++'s
            variational dequantisation (Ho et al. 2019, section 3.1): the model takes the
            integer levels themselves (``data_kind`` ``"discrete"``), learns a conditional
            flow ``q(u | x)`` for the noise beside the density, and ``log_prob(x)`` is a
            one-draw estimate of the bound ``log p((x + u) / L) - D log L - log q(u | x)``,
            ``u ~ q``, whose expectation is at most ``log P(x)``: its ``density`` is
            ``"bound"`` and evaluation labels it an upper bound on the NLL.
        levels: ``L``, the number of integer levels (variational dequantisation only; set
            from the dataset by ``genzoo train``).
        dequantizer_hidden: channels of ``q(u | x)``'s networks.
        dequantizer_couplings: coupling layers of ``q(u | x)``.
        dropout: dropout rate before the last layer of each image coupling's conditioner
            (training only; every dropout mask still gives an invertible coupling, and
            evaluation uses the whole network), against overfitting small image sets.
        weight_decay: Adam's L2 weight decay on every parameter.

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("moons", n=1000)
        >>> flow = genzoo.create("glow", data=x, n_steps=4, hidden=32)
        >>> flow.sample(3, temperature=0.7).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        n_steps: int = 8,
        n_levels: int = 2,
        hidden: int = 64,
        depth: int = 2,
        scale: str = "sigmoid",
        scale_bound: float = 3.0,
        activation: str = "relu",
        multiscale: bool = True,
        alpha: float = 0.0,
        n_classes: int = 0,
        condition_dim: int = 0,
        dequantization: str = "uniform",
        levels: int = 0,
        dequantizer_hidden: int = 32,
        dequantizer_couplings: int = 4,
        dropout: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(data_shape)
        context = self.setup_flow_condition(n_classes, condition_dim)
        d = self.data_dim
        if not (0 <= dropout < 1 and weight_decay >= 0):
            raise ValueError(f"need 0 <= dropout < 1 and weight_decay >= 0; got {dropout=}, "
                             f"{weight_decay=}")  # fmt: skip
        self.weight_decay = float(weight_decay)
        if dequantization not in DEQUANTIZATIONS:
            raise ValueError(
                f"dequantization must be one of {DEQUANTIZATIONS}; got {dequantization!r}"
            )
        if d < 2:
            raise DataError(
                f"Glow needs examples with at least 2 scalars for its coupling layers; got "
                f"data_shape {self.data_shape}"
            )
        if n_steps < 1 or hidden < 1 or depth < 0:
            raise ValueError(f"need n_steps >= 1, hidden >= 1, depth >= 0; got {n_steps=}, "
                             f"{hidden=}, {depth=}")  # fmt: skip
        self.image = bool(multiscale) and len(self.data_shape) == 3
        if self.image:
            problem = check_multiscale_shape(self.data_shape, n_levels)
            if problem:
                raise DataError(f"Glow: {problem}, or pass multiscale=False")

            def level(i: int, shape, last: bool):
                shape = squeezed(shape)
                steps = [Squeeze()]
                for k in range(n_steps):
                    c = shape[0]
                    mask = channel_mask(shape, k % 2)
                    steps += [
                        ActNorm(c),
                        InvertibleLinear(c),
                        _with_dropout(
                            ConvAffineCoupling(
                                mask, hidden, activation, scale_bound, scale, context
                            ),
                            dropout,
                        ),
                    ]
                return steps, shape

            self.transform = Compose([Logit(alpha), MultiScale(self.data_shape, n_levels, level)])
        else:
            widths = (int(hidden),) * int(depth)
            steps = [Flatten(self.data_shape)]
            for mask in alternating_masks(d, 2 * n_steps)[::2]:
                steps += [
                    ActNorm(d),
                    InvertibleLinear(d),
                    AffineCoupling(mask, widths, activation, scale_bound, scale, context),
                ]
            self.transform = Compose(steps)
        self.dequantizer = None
        if dequantization == "variational":
            if len(self.data_shape) != 3 or levels < 2:
                raise DataError(
                    "Glow: dequantization='variational' needs images (c, h, w) of integer "
                    f"levels and levels >= 2 (e.g. levels=17 for digits); got data_shape "
                    f"{self.data_shape}, levels={levels}. Use dequantization='uniform' for "
                    "continuous data"
                )
            self.dequantizer = VariationalDequantizer(
                self.data_shape, levels, dequantizer_hidden, dequantizer_couplings, activation
            )

    def optimizer_settings(self, player: str) -> dict[str, Any]:
        """Adam, with ``weight_decay`` when set."""
        return {"weight_decay": self.weight_decay} if self.weight_decay else {}

    @classmethod
    def data_kind_for(cls, data: Tensor, hparams: Mapping[str, Any]) -> str:
        """``"discrete"`` (raw integer levels, dequantised by the model's own ``q(u | x)``)
        with variational dequantisation, else ``"continuous"``."""
        variational = hparams.get("dequantization", "uniform") == "variational"
        return "discrete" if variational else "continuous"

    @model_fact("continuous")
    def data_kind(self) -> str:
        """``data_kind_for`` this model's dequantisation."""
        return "continuous" if self.dequantizer is None else "discrete"

    density_kinds = ("exact", "bound")

    @model_fact("exact")
    def density(self) -> str:
        """Exact on ``[0, 1]^D`` (or the reals); a bound with variational dequantisation."""
        return "exact" if self.dequantizer is None else "bound"

    @property
    def log_prob_is_flow_density(self) -> bool:
        """Uniform dequantisation: ``log_prob`` is the flow's density (``loss``'s fast path)."""
        return self.dequantizer is None

    @property
    def dequantizes_itself(self) -> bool:
        """Whether ``log_prob`` draws its own dequantisation noise ``u ~ q(u | x)`` (one draw
        per call): evaluation's ``dequantization_draws`` then averages the calls' likelihood
        ratios (the importance-weighted variational bound)."""
        return self.dequantizer is not None

    @property
    def density_method(self) -> str:
        if self.dequantizer is None:
            return ""
        return "variational dequantisation bound, u ~ q(u | x), Ho et al. 2019"

    def _levels_in_range(self, x: Tensor) -> Tensor:
        levels = self.dequantizer.levels
        if not bool(((x == x.round()) & (x >= 0) & (x <= levels - 1)).all()):
            raise DataError(
                f"Glow with variational dequantisation takes integer levels 0..{levels - 1} "
                "(the raw data, not dequantised or rescaled)"
            )
        return x

    def initialize(self, data: Tensor, max_examples: int = 4096, c: Any = None) -> None:
        """ActNorm's data-dependent initialisation; with variational dequantisation, on the
        levels uniformly dequantised (a fixed seed), as the density first sees them."""
        if self.dequantizer is not None:
            data = self._levels_in_range(self.check_input(data[:max_examples]))
            noise = torch.rand(data.shape, generator=torch.Generator().manual_seed(0))
            data = (data + noise.to(data)) / self.dequantizer.levels
        super().initialize(data, max_examples, c)

    def log_prob(self, x: Tensor, c: Any = None) -> Tensor:
        """Exact ``log p(x)`` in nats; with variational dequantisation, a one-draw estimate
        of the variational dequantisation bound on ``log P(x)`` of integer levels ``x``."""
        if self.dequantizer is None:
            return super().log_prob(x, c=c)
        x = self._levels_in_range(self.check_input(x))
        return variational_bound(lambda y: super(Glow, self).log_prob(y, c=c), x, self.dequantizer)

    def loss(self, batch: Tensor, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        """Maximum likelihood (``Flow.loss``); with variational dequantisation, the negative
        of the bound, minimised over the density and ``q(u | x)`` together (Flow++)."""
        if self.dequantizer is None:
            return super().loss(batch, player, c=c)
        return {"neg_bound": -self.log_prob(batch, c=c).mean()}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        c: Any = None,
    ) -> Tensor:
        """Samples on ``[0, 1]^D`` (see ``Flow.sample``); with variational dequantisation, the
        integer levels ``floor(L y)`` of the cells they fall in."""
        y = super().sample(n, generator=generator, temperature=temperature, c=c)
        if self.dequantizer is None:
            return y
        levels = self.dequantizer.levels
        return (y * levels).floor().clamp(0, levels - 1)


def _with_dropout(coupling: ConvAffineCoupling, rate: float) -> ConvAffineCoupling:
    """``coupling`` with dropout before its conditioner's last (zero-initialised) layer."""
    if rate > 0:
        layers = list(coupling.net)
        coupling.net = torch.nn.Sequential(*layers[:-1], torch.nn.Dropout(rate), layers[-1])
    return coupling


#: The ways ``Glow`` meets integer levels.
DEQUANTIZATIONS = ("uniform", "variational")
