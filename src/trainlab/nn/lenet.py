"""LeNet-5 as in d2l (chapter "Convolutional Neural Networks"), with optional batch normalisation.

LeCun et al. (1998), "Gradient-based learning applied to document recognition", in d2l's form:
sigmoid activations, average pooling, a padded first convolution so that 28×28 Fashion-MNIST/MNIST
images fit. d2l's "Batch Normalization" chapter then inserts batch norm after every convolution
and fully connected layer except the last, before the sigmoid; ``bn="scratch"`` uses trainlab's
:class:`~trainlab.nn.batchnorm.BatchNorm` and ``bn="torch"`` PyTorch's. Both name their layers
alike, so a state dict moves between the two.

:func:`describe` prints each layer's output shape, as d2l does to show the network.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.nn.batchnorm import BatchNorm

BN_CHOICES = ("none", "scratch", "torch")


def _bn(kind: str, num_features: int, num_dims: int) -> nn.Module:
    if kind == "scratch":
        return BatchNorm(num_features, num_dims=num_dims)
    if num_dims == 4:
        return nn.BatchNorm2d(num_features)
    return nn.BatchNorm1d(num_features)


class LeNet(nn.Sequential):
    """LeNet-5: conv(6@5×5, pad 2) → sigmoid → avgpool 2 → conv(16@5×5) → sigmoid → avgpool 2 →
    flatten → 120 → sigmoid → 84 → sigmoid → ``num_classes``.

    Args:
        bn: ``"none"``, ``"scratch"`` (trainlab's BatchNorm) or ``"torch"`` (``nn.BatchNorm1d/2d``),
            inserted after each conv/linear layer but the last, before its sigmoid.
        num_classes: outputs of the last layer.
        in_channels: channels of the input images.
        input_size: height = width of the input images (28 for MNIST).
    """

    def __init__(
        self, bn: str = "none", num_classes: int = 10, in_channels: int = 1, input_size: int = 28
    ) -> None:
        if bn not in BN_CHOICES:
            raise ValueError(f"bn must be one of {BN_CHOICES}, got {bn!r}")
        # 28 -> conv pad 2 -> 28 -> pool -> 14 -> conv -> 10 -> pool -> 5
        side = (input_size // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for LeNet (need at least 12)")
        layers: list[tuple[str, nn.Module]] = []

        def block(i: int, layer: nn.Module, width: int, num_dims: int) -> None:
            layers.append((f"{'conv' if num_dims == 4 else 'fc'}{i}", layer))
            if bn != "none":
                layers.append((f"bn{i}", _bn(bn, width, num_dims)))
            layers.append((f"act{i}", nn.Sigmoid()))

        block(1, nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), 6, 4)  # (N, 6, 28, 28)
        layers.append(("pool1", nn.AvgPool2d(kernel_size=2, stride=2)))  # (N, 6, 14, 14)
        block(2, nn.Conv2d(6, 16, kernel_size=5), 16, 4)  # (N, 16, 10, 10)
        layers.append(("pool2", nn.AvgPool2d(kernel_size=2, stride=2)))  # (N, 16, 5, 5)
        layers.append(("flatten", nn.Flatten()))  # (N, 400)
        block(3, nn.Linear(16 * side * side, 120), 120, 2)
        block(4, nn.Linear(120, 84), 84, 2)
        layers.append(("fc5", nn.Linear(84, num_classes)))
        super().__init__(OrderedDict(layers))
        self.bn = bn
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.input_size = input_size

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for saving beside the weights (``LeNet(**config)``)."""
        return {
            "bn": self.bn,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": self.input_size,
        }


def lenet(
    bn: str = "none", num_classes: int = 10, in_channels: int = 1, input_size: int = 28
) -> LeNet:
    """Build :class:`LeNet` (see there for the arguments)."""
    return LeNet(bn=bn, num_classes=num_classes, in_channels=in_channels, input_size=input_size)


@torch.no_grad()
def describe(model: nn.Module, input_shape: Sequence[int]) -> str:
    """A table of every leaf layer's name, type, output shape and parameter count.

    Runs one forward pass of zeros in eval mode (so batch-norm running statistics stay untouched)
    and restores each module's mode afterwards.

    Args:
        model: any module.
        input_shape: shape of the input batch including the batch dimension, e.g. ``(1, 1, 28, 28)``.

    Returns:
        A printable multi-line string.
    """
    rows: list[tuple[str, str, str, int]] = []
    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
            shape = tuple(output.shape) if isinstance(output, Tensor) else "?"
            count = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append((name or type(module).__name__, type(module).__name__, str(shape), count))

        return hook

    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(make_hook(name)) for name, m in leaves]
    param = next(model.parameters(), None)
    x = torch.zeros(
        tuple(input_shape),
        dtype=param.dtype if param is not None else None,
        device=param.device if param is not None else None,
    )
    try:
        model.eval()
        model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    header = ("layer", "type", "output shape", "params")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    lines = [
        f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:<{widths[2]}}  {header[3]:>{widths[3]}}"
    ]
    lines.append("-" * len(lines[0]))
    for name, kind, shape, count in rows:
        lines.append(
            f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {shape:<{widths[2]}}  {count:>{widths[3]}}"
        )
    total = sum(p.numel() for p in model.parameters())
    lines.append(f"input {tuple(input_shape)}, {total} parameters in total")
    return "\n".join(lines)
