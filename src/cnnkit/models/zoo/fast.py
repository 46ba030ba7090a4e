"""Modern fast nets for 28x28 and 32x32 images: BatchNorm, residual blocks, global pooling.

In the spirit of KellerJordan/cifar10-airbench and the ResNet-9 of the DAWNBench era: a few
3x3 conv stages, each ``conv -> max-pool 2x2 -> BatchNorm -> GELU`` followed (optionally) by
a residual ``x + GELU(BN(conv(x)))``; global max-pooling; one dense head whose input is scaled
down (logit scaling) so large learning rates stay stable. No dropout, no huge dense layer:
they train to high accuracy in few epochs and run quickly on a CPU as well as a GPU.

``fastnet_tiny`` is for time-to-99% on MNIST on a CPU, ``fastnet`` for the best MNIST /
Fashion-MNIST accuracy in a minute, ``fastnet_cifar`` for CIFAR-10 (airbench-sized).
With ``tta_flip=True`` the model averages its logits over the image and its left-right
mirror in eval mode (test-time augmentation), so evaluation and prediction from the run
folder apply it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import ModelError
from cnnkit.models.classifier import Classifier
from cnnkit.models.registry import register_model


class Residual(nn.Module):
    """``x + body(x)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Scale(nn.Module):
    """Multiplies by a constant (the logit scale in front of the head)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class FastNet(Classifier):
    """A :class:`Classifier` that can average logits over a left-right flip in eval mode."""

    def __init__(self, features: nn.Module, head: nn.Linear, *, tta_flip: bool = False) -> None:
        super().__init__(features, head)
        self.tta_flip = tta_flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> logits ``(N, num_classes)``."""
        logits = self.head(self.features(x))
        if self.tta_flip and not self.training:
            logits = (logits + self.head(self.features(x.flip(3)))) / 2
        return logits


def _conv_bn(cin: int, cout: int, *, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return [*layers, nn.BatchNorm2d(cout), nn.GELU()]


def build_fastnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    widths: Sequence[int],
    residual: Sequence[bool],
    scale: float = 0.125,
    tta_flip: bool = False,
) -> FastNet:
    """Stages of ``conv -> pool -> BN -> GELU [+ residual conv]``, global max-pool, dense.

    Args:
        input_shape: ``(C, H, W)``; H and W must survive one 2x2 pool per stage.
        num_classes: output logits.
        widths: channels of each stage.
        residual: per stage, whether a residual conv block follows.
        scale: factor on the pooled features before the head (logit scaling).
        tta_flip: average logits over a left-right flip in eval mode.
    """
    channels, height, width = input_shape
    smallest = 2 ** len(widths)
    if height < smallest or width < smallest:
        raise ModelError(
            f"this fast net pools {len(widths)} times and needs images of at least "
            f"{smallest}x{smallest}, got {height}x{width}"
        )
    layers: list[nn.Module] = []
    previous = channels
    for stage_width, has_residual in zip(widths, residual, strict=True):
        layers += _conv_bn(previous, stage_width, pool=True)
        if has_residual:
            layers.append(Residual(nn.Sequential(*_conv_bn(stage_width, stage_width, pool=False))))
        previous = stage_width
    features = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), Scale(scale))
    return FastNet(features, nn.Linear(previous, num_classes), tta_flip=tta_flip)


@register_model(
    "fastnet_tiny",
    description="Fast net for time-to-99% on MNIST: 3 stages (16, 32, 64), BN, GELU",
    default_input_shape=(1, 28, 28),
)
def fastnet_tiny(
    *, input_shape: tuple[int, int, int], num_classes: int, tta_flip: bool = False
) -> FastNet:
    """Three conv stages without residual blocks: cheap enough for seconds per epoch on a CPU."""
    return build_fastnet(
        input_shape,
        num_classes,
        widths=(16, 32, 64),
        residual=(False, False, False),
        tta_flip=tta_flip,
    )


@register_model(
    "fastnet",
    description="Fast residual net for 28x28 / 32x32: 3 stages (32, 64, 128), BN, residuals",
    default_input_shape=(1, 28, 28),
)
def fastnet(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: int = 32,
    tta_flip: bool = False,
) -> FastNet:
    """Three stages (width, 2x, 4x) with residual blocks after the first and last.

    Args:
        width: channels of the first stage (the others are 2x and 4x).
    """
    if width < 1:
        raise ModelError(f"fastnet width must be >= 1, got {width}")
    return build_fastnet(
        input_shape,
        num_classes,
        widths=(width, 2 * width, 4 * width),
        residual=(True, False, True),
        tta_flip=tta_flip,
    )


@register_model(
    "fastnet_cifar",
    description="airbench-sized CIFAR-10 net: 3 stages (64, 256, 256), BN, residuals",
    default_input_shape=(3, 32, 32),
)
def fastnet_cifar(
    *, input_shape: tuple[int, int, int], num_classes: int, tta_flip: bool = True
) -> FastNet:
    """The CIFAR-10 speed-run net: test-time flip on by default."""
    return build_fastnet(
        input_shape,
        num_classes,
        widths=(64, 256, 256),
        residual=(True, False, True),
        tta_flip=tta_flip,
    )
