"""Neural spline flows: rational-quadratic spline coupling or autoregressive layers.

References:
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019
    (arXiv:1906.04032).
"""

from __future__ import annotations

from collections.abc import Sequence

from genzoo.errors import DataError
from genzoo.models.flows.autoregressive import SplineAutoregressive
from genzoo.models.flows.base import Flow
from genzoo.models.flows.coupling import alternating_masks
from genzoo.models.flows.splines import SplineCoupling, SplineSettings
from genzoo.models.flows.transforms import Compose, Flatten, Reverse, Standardize, Transform
from genzoo.registry import register_model

KINDS = ("coupling", "autoregressive")


@register_model("nsf", family="flow")
class NSF(Flow):
    """Neural spline flow: monotone rational-quadratic splines with linear tails (exact density).

    Each layer transforms every dimension with a spline of ``bins`` bins on
    ``[-tail_bound, tail_bound]`` (identity outside), its widths, heights and inner
    derivatives computed by a network (section 3.1, eq. 4-5): from the other half of the
    features (``kind="coupling"``, NSF-C: density and sampling in one pass) or from the
    preceding dimensions through a MADE (``kind="autoregressive"``, NSF-AR: density in one
    pass, sampling in ``d``). Examples are flattened; a fixed standardisation set by
    ``initialize`` (its log-det included) puts the data where the splines act.

    Arguments:
        data_shape: shape of one example; at least 2 scalars.
        kind: ``"coupling"`` or ``"autoregressive"``.
        n_layers: number of spline layers (coupling: >= 2, masks alternate; autoregressive:
            the order is reversed between layers).
        hidden: width of the conditioners' hidden layers.
        depth: number of hidden layers of each conditioner.
        bins: number of spline bins ``K``.
        tail_bound: ``B``; the splines act on ``[-B, B]`` (in standardised units).
        min_bin_width: floor on each bin's width (fraction of ``2B``).
        min_bin_height: floor on each bin's height (fraction of ``2B``).
        min_derivative: floor on the derivative at the knots.
        activation: the conditioners' activation, by name.
        n_classes: ``K`` > 0 makes it a class-conditional flow ``p(x | c)``: every conditioner
            (coupling MLP or MADE) also reads the class, one-hot (Winkler et al. 2019; the
            MADE as MAF's context, Papamakarios et al. 2017).
        condition_dim: ``C`` > 0 conditions it on a vector of ``C`` numbers instead.

    Example:
        >>> import genzoo
        >>> x = genzoo.load_dataset("checkerboard", n=1000)
        >>> flow = genzoo.create("nsf", data=x, n_layers=2, hidden=16, bins=4)
        >>> flow.log_prob(x[:5]).shape
        torch.Size([5])
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        kind: str = "coupling",
        n_layers: int = 4,
        hidden: int = 128,
        depth: int = 2,
        bins: int = 8,
        tail_bound: float = 3.0,
        min_bin_width: float = 1e-3,
        min_bin_height: float = 1e-3,
        min_derivative: float = 1e-3,
        activation: str = "relu",
        n_classes: int = 0,
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data_shape)
        context = self.setup_flow_condition(n_classes, condition_dim)
        d = self.data_dim
        if d < 2:
            raise DataError(
                f"NSF needs examples with at least 2 scalars (one to condition on); got "
                f"data_shape {self.data_shape}"
            )
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        minimum = 2 if kind == "coupling" else 1
        if n_layers < minimum:
            raise ValueError(f"NSF ({kind}) needs n_layers >= {minimum}; got {n_layers}")
        if depth < 0 or hidden < 1:
            raise ValueError(f"need depth >= 0 and hidden >= 1; got {depth=}, {hidden=}")
        settings = SplineSettings(
            int(bins), float(tail_bound), min_bin_width, min_bin_height, min_derivative
        )
        widths = (int(hidden),) * int(depth)
        layers: list[Transform] = [Flatten(self.data_shape), Standardize(d)]
        if kind == "coupling":
            for mask in alternating_masks(d, int(n_layers)):
                layers.append(SplineCoupling(mask, widths, settings, activation, context))
        else:
            for i in range(int(n_layers)):
                if i > 0:
                    layers.append(Reverse())
                layers.append(SplineAutoregressive(d, widths, settings, activation, context))
        self.transform = Compose(layers)
