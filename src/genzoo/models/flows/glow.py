"""Glow: ActNorm, invertible 1x1 convolution (LU) and affine coupling, over several scales.

References:
    Kingma & Dhariwal, "Glow: Generative flow with invertible 1x1 convolutions",
    NeurIPS 2018 (arXiv:1807.03039).
"""

from __future__ import annotations

from collections.abc import Sequence

from genzoo.errors import DataError
from genzoo.models.flows.base import Flow
from genzoo.models.flows.coupling import (
    AffineCoupling,
    ConvAffineCoupling,
    alternating_masks,
    channel_mask,
)
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
    ) -> None:
        super().__init__(data_shape)
        context = self.setup_flow_condition(n_classes, condition_dim)
        d = self.data_dim
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
                        ConvAffineCoupling(mask, hidden, activation, scale_bound, scale, context),
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
