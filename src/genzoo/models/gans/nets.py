"""Generator and discriminator networks chosen from the data's shape.

Vectors ``(d,)`` get MLPs (:class:`genzoo.models.nn.MLP`); images ``(C, H, W)`` get
DCGAN-style convolutional networks (Radford, Metz & Chintala, "Unsupervised representation
learning with deep convolutional generative adversarial networks", ICLR 2016): strided
transposed convolutions up from a small base grid, strided convolutions down to it, leaky
ReLUs; no batch normalisation, so that gradient penalties and sampling stay per-example.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from genzoo.errors import DataError
from genzoo.models.nn import MLP, get_activation

#: Output activations a config may name; ``"auto"`` picks sigmoid for images, else identity.
OUTPUTS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def resolve_output(output: str, data_shape: Sequence[int]) -> str:
    """``"auto"`` -> ``"sigmoid"`` for images (data in [0, 1]) and ``"identity"`` for vectors."""
    if output == "auto":
        return "sigmoid" if len(data_shape) == 3 else "identity"
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose 'auto' or one of {sorted(OUTPUTS)}")
    return output


def is_image(data_shape: Sequence[int]) -> bool:
    """Whether examples are images ``(C, H, W)`` (else they are flattened to vectors)."""
    return len(data_shape) == 3


def image_pyramid(height: int, width: int) -> list[tuple[int, int]]:
    """Resolutions from the base grid up to ``(height, width)``, halving while both stay >= 4.

    ``(8, 8)`` gives ``[(4, 4), (8, 8)]``; ``(28, 28)`` gives ``[(7, 7), (14, 14), (28, 28)]``.
    """
    sizes = [(height, width)]
    while sizes[0][0] % 2 == 0 and sizes[0][1] % 2 == 0 and min(sizes[0]) >= 8:
        sizes.insert(0, (sizes[0][0] // 2, sizes[0][1] // 2))
    return sizes


class VectorGenerator(nn.Module):
    """``z (n, latent) -> x (n, *data_shape)`` through an MLP."""

    def __init__(
        self, in_features: int, data_shape: Sequence[int], hidden: int, depth: int,
        activation: str, output: str,
    ) -> None:  # fmt: skip
        super().__init__()
        self.data_shape = tuple(data_shape)
        d = 1
        for s in self.data_shape:
            d *= s
        self.net = MLP(in_features, d, (hidden,) * depth, activation=activation)
        self.out = OUTPUTS[output]()

    def forward(self, z: Tensor) -> Tensor:
        return self.out(self.net(z)).reshape(-1, *self.data_shape)


class ConvGenerator(nn.Module):
    """DCGAN generator: ``z -> (c, h0, w0) -> x2 upsamplings -> (C, H, W)``."""

    def __init__(
        self, in_features: int, data_shape: Sequence[int], hidden: int, activation: str,
        output: str,
    ) -> None:  # fmt: skip
        super().__init__()
        channels, height, width = data_shape
        sizes = image_pyramid(height, width)
        n_up = len(sizes) - 1
        width0 = hidden * 2**n_up
        self.base = (width0, *sizes[0])
        self.project = nn.Linear(in_features, width0 * sizes[0][0] * sizes[0][1])
        layers: list[nn.Module] = [get_activation(activation)]
        c = width0
        for _ in range(n_up):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1)]
            layers += [get_activation(activation)]
            c //= 2
        layers += [nn.Conv2d(c, channels, 3, padding=1), OUTPUTS[output]()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.project(z).reshape(-1, *self.base))


class ConvFeatures(nn.Module):
    """DCGAN discriminator body: ``(C, H, W) -> x2 strided convs -> flattened features``."""

    def __init__(self, data_shape: Sequence[int], hidden: int, activation: str) -> None:
        super().__init__()
        channels, height, width = data_shape
        sizes = image_pyramid(height, width)
        layers: list[nn.Module] = [nn.Conv2d(channels, hidden, 3, padding=1)]
        layers += [get_activation(activation)]
        c = hidden
        for _ in range(len(sizes) - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), get_activation(activation)]
            c *= 2
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        self.out_features = c * sizes[0][0] * sizes[0][1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class VectorFeatures(nn.Module):
    """MLP discriminator body: ``(n, *data_shape) -> (n, hidden)``."""

    def __init__(self, data_shape: Sequence[int], hidden: int, depth: int, activation: str):
        super().__init__()
        d = 1
        for s in data_shape:
            d *= s
        self.net = nn.Sequential(
            MLP(d, hidden, (hidden,) * max(depth - 1, 0), activation=activation),
            get_activation(activation),
        )
        self.out_features = hidden

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class Discriminator(nn.Module):
    """A body and a linear head: ``x (n, *data_shape) -> score (n,)``.

    ``bias=False`` for Wasserstein critics, whose objective ``E f(x) - E f(G(z))`` does not
    depend on a constant offset (its gradient would be exactly zero).

    With ``n_classes = K > 0`` it is the projection discriminator of Miyato & Koyama (2018,
    eq. 3 and Fig. 1d): ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``, the body ``phi``,
    the linear head ``psi`` and one learned vector per class (``embed``, Glorot-uniform
    initialised as in the authors' code) whose inner product with the features is the
    class's term; ``forward(x, y)`` then needs the classes ``y`` ``(n,)``.
    """

    def __init__(
        self, body: nn.Module, out_features: int = 1, bias: bool = True, n_classes: int = 0
    ) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.out_features, out_features, bias=bias)
        self.n_classes = int(n_classes)
        if self.n_classes:
            if out_features != 1:
                raise ValueError("a projection discriminator gives one score per example")
            self.embed = nn.Embedding(self.n_classes, body.out_features)
            nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.body(x)
        score = self.head(h).squeeze(-1)
        if not self.n_classes:
            if y is not None:
                raise ValueError("this discriminator was built without classes; got y")
            return score
        if y is None:
            raise ValueError(f"a projection discriminator needs the classes y of x "
                             f"(0..{self.n_classes - 1})")  # fmt: skip
        return score + self.projection(h, y)

    def projection(self, h: Tensor, y: Tensor) -> Tensor:
        """The class term ``<embed(y), phi(x)>`` ``(n,)`` for features ``h = phi(x)``."""
        return (self.embed(y.long()) * h).sum(-1)


def make_generator(
    in_features: int, data_shape: Sequence[int], hidden: int, depth: int, activation: str,
    output: str,
) -> nn.Module:  # fmt: skip
    """An MLP generator for vectors, a DCGAN generator for images ``(C, H, W)``."""
    check_gan_shape(data_shape)
    output = resolve_output(output, data_shape)
    if is_image(data_shape):
        return ConvGenerator(in_features, data_shape, hidden, activation, output)
    return VectorGenerator(in_features, data_shape, hidden, depth, activation, output)


def make_features(data_shape: Sequence[int], hidden: int, depth: int, activation: str) -> nn.Module:
    """A discriminator body with attribute ``out_features``, MLP or DCGAN by data shape."""
    check_gan_shape(data_shape)
    if is_image(data_shape):
        return ConvFeatures(data_shape, hidden, activation)
    return VectorFeatures(data_shape, hidden, depth, activation)


def check_gan_shape(data_shape: Sequence[int]) -> None:
    """Refuse example shapes that are neither vectors ``(d,)`` nor images ``(C, H, W)``."""
    if len(data_shape) not in (1, 3) or any(s < 1 for s in data_shape):
        raise DataError(
            f"GAN networks take vectors shaped (d,) or images shaped (C, H, W); got examples "
            f"shaped {tuple(data_shape)}: flatten or reshape the data first"
        )


def check_sizes(**sizes: int) -> None:
    """ValueError naming any width or depth that is not a positive integer."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
