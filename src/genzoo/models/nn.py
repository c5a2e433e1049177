"""Network parts shared by every family: activations by name and a configurable MLP.

Hyper-parameters stay JSON-friendly, so activations are chosen by name (``"relu"``,
``"gelu"``, ...) rather than passed as classes.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from genzoo.errors import unknown_name

#: Activations a model config may name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
}


def get_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name``; unknown names get the closest suggestion."""
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """Multi-layer perceptron ``Linear -> act -> ... -> Linear``, ``(..., in) -> (..., out)``.

    Arguments:
        in_features: size of the input's last dimension.
        out_features: size of the output's last dimension.
        hidden: widths of the hidden layers; ``()`` gives a single affine layer.
        activation: name of the activation between layers (see ``ACTIVATIONS``).
        zero_last: initialise the last layer's weight and bias to zero, so the network
            starts as the constant 0 (a flow built from it then starts at the identity).

    Example:
        >>> import torch
        >>> net = MLP(3, 4, hidden=(16, 16), activation="gelu", zero_last=True)
        >>> net(torch.randn(5, 3)).abs().max().item()
        0.0
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (128, 128),
        activation: str = "relu",
        zero_last: bool = False,
    ) -> None:
        widths = [int(in_features), *(int(h) for h in hidden), int(out_features)]
        if any(w <= 0 for w in widths):
            raise ValueError(f"MLP layer widths must be positive; got {widths}")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            if i > 0:
                layers.append(get_activation(activation))
            layers.append(nn.Linear(a, b))
        super().__init__(*layers)
        self.in_features = widths[0]
        self.out_features = widths[-1]
        if zero_last:
            last = self[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
