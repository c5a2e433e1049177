"""RealNVP: a normalizing flow of affine coupling layers, for vectors and for images.

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017
    (arXiv:1605.08803).
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
    checkerboard_mask,
)
from genzoo.models.flows.multiscale import MultiScale, Squeeze, check_multiscale_shape, squeezed
from genzoo.models.flows.transforms import Compose, Flatten, Logit, Standardize, Transform
from genzoo.registry import register_model


@register_model("realnvp", family="flow")
class RealNVP(Flow):
    """RealNVP flow: affine coupling layers over a standard normal base (exact density).

    ``forward`` maps data ``x`` to noise ``z = f(x)``; by the change of variables (eq. 3),
    ``log p(x) = log N(z; 0, I) + log|det df/dx|``. Sampling inverts ``f`` on base noise.

    Vectors (and any example that is not an image ``(c, h, w)``) are flattened to size
    ``d``; a fixed standardisation (data mean and standard deviation, set by ``initialize``,
    its log-det included) precedes ``n_layers`` coupling layers with alternating masks.

    Images ``(c, h, w)`` with values in ``[0, 1]`` (dequantised, e.g. ``digits``) go through
    the paper's multi-scale architecture when ``multiscale`` is true (section 3.6): the logit
    pre-processing with ``alpha`` (section 4.1, log-det included, so the density is on
    ``[0, 1]^D``), then at each scale 3 checkerboard couplings, a squeeze and 3 channel
    couplings before half the channels are factored out; the last scale has 4 checkerboard
    couplings. The paper's ResNet conditioners and batch normalisation are replaced by a
    3-layer CNN (``hidden`` channels); ``n_layers`` and ``depth`` apply to vectors only.

    Arguments:
        data_shape: shape of one example; at least 2 scalars.
        n_layers: number of coupling layers for vectors (>= 2; masks alternate).
        hidden: width of each conditioner's hidden layers (MLP units or CNN channels).
        depth: number of hidden layers in each vector conditioner MLP.
        scale_bound: soft bound on each log-scale, ``s = b * tanh(s_raw / b)``.
        activation: the conditioners' activation, by name.
        multiscale: use the multi-scale image architecture for ``(c, h, w)`` data.
        n_levels: number of scales of the image architecture.
        alpha: the logit pre-processing's margin for images, in ``[0, 0.5)``; 0 keeps the
            density on ``[0, 1]^D`` exactly normalised (the paper's 0.05 loses some mass).
        n_classes: ``K`` > 0 makes it a class-conditional flow ``p(x | c)``, ``c`` in
            ``0..K-1``: every conditioner also reads the class (one-hot; constant channels
            for images), as in the conditional couplings of Winkler et al. 2019.
        condition_dim: ``C`` > 0 conditions it on a vector of ``C`` numbers instead
            (standardised, then read by every conditioner like the class).

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("moons", n=1000)
        >>> flow = genzoo.create("realnvp", data=x, n_layers=4, hidden=32)
        >>> flow.log_prob(x[:5]).shape, flow.sample(3).shape
        (torch.Size([5]), torch.Size([3, 2]))
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        n_layers: int = 8,
        hidden: int = 128,
        depth: int = 2,
        scale_bound: float = 3.0,
        activation: str = "relu",
        multiscale: bool = True,
        n_levels: int = 2,
        alpha: float = 0.0,
        n_classes: int = 0,
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data_shape)
        context = self.setup_flow_condition(n_classes, condition_dim)
        d = self.data_dim
        if d < 2:
            raise DataError(
                f"RealNVP needs examples with at least 2 scalars to split between coupling "
                f"halves; got data_shape {self.data_shape}. For 1-D data use a mixture model "
                "or a flow with elementwise transforms instead"
            )
        if n_layers < 2:
            raise ValueError(
                f"RealNVP needs n_layers >= 2 so that every dimension is transformed; "
                f"got {n_layers}"
            )
        if depth < 0 or hidden < 1:
            raise ValueError(f"need depth >= 0 and hidden >= 1; got {depth=}, {hidden=}")
        self.image = bool(multiscale) and len(self.data_shape) == 3
        if self.image:
            problem = check_multiscale_shape(self.data_shape, n_levels)
            if problem:
                raise DataError(f"RealNVP: {problem}, or pass multiscale=False")

            def level(i: int, shape, last: bool) -> tuple[list[Transform], tuple]:
                def coupling(mask):
                    return ConvAffineCoupling(
                        mask, hidden, activation, scale_bound, context_features=context
                    )

                if last:
                    return [coupling(checkerboard_mask(shape, p % 2)) for p in range(4)], shape
                steps = [coupling(checkerboard_mask(shape, p % 2)) for p in range(3)]
                steps.append(Squeeze())
                shape = squeezed(shape)
                steps += [coupling(channel_mask(shape, p % 2)) for p in range(3)]
                return steps, shape

            self.transform = Compose([Logit(alpha), MultiScale(self.data_shape, n_levels, level)])
        else:
            widths = (int(hidden),) * int(depth)
            layers = [
                AffineCoupling(mask, widths, activation, scale_bound, context_features=context)
                for mask in alternating_masks(d, int(n_layers))
            ]
            self.transform = Compose([Flatten(self.data_shape), Standardize(d), *layers])

    @property
    def standardize(self) -> Standardize:
        """The fixed standardisation applied before the vector coupling layers."""
        for module in self.transform.transforms:
            if isinstance(module, Standardize):
                return module
        raise AttributeError("the multi-scale image architecture has no standardisation")
