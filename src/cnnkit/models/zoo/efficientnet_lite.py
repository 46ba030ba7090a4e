"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for mobile/edge inference).

Lite drops EfficientNet's squeeze-and-excitation blocks, uses ReLU6 instead of swish, and
keeps the stem (32 channels) and the top conv (1280 channels) fixed when scaling. Lite0 is the
base size: 224x224 RGB input, 16 mobile inverted-bottleneck (MBConv) blocks in 7 stages,
4,652,008 parameters with the 1000-class ImageNet head.

Padding is TensorFlow's ``SAME`` (the published weights were trained in TensorFlow): for a
stride-2 layer the extra pixel goes after the image, not before, which a symmetric torch
padding would get wrong by one pixel. BatchNorm uses TensorFlow's epsilon (1e-3) and
momentum (0.99, i.e. torch ``momentum=0.01``).

The ImageNet-pretrained weights live in :mod:`cnnkit.transfer.efficientnet_lite`; this module
is only the architecture, so a fine-tuned copy can be rebuilt from a run card.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ModelError
from cnnkit.layers.classifier import Classifier
from cnnkit.models.registry import register_model

BN_EPS = 1e-3  # TensorFlow's BatchNormalization epsilon
BN_MOMENTUM = 0.01  # torch convention: 1 - TensorFlow's 0.99
STEM_CHANNELS = 32
TOP_CHANNELS = 1280

# One row per stage: (repeats, kernel, first stride, expansion ratio, output channels)
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)


class SamePad(nn.Module):
    """Zero padding giving TensorFlow ``SAME`` output size ``ceil(n / stride)`` for any ``n``.

    The total padding ``max((ceil(n/s) - 1) * s + k - n, 0)`` is split with the odd pixel
    after the image, as TensorFlow does.
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _amount(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._amount(x.shape[-2])
        left, right = self._amount(x.shape[-1])
        return F.pad(x, (left, right, top, bottom))


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    activation: bool = True,
) -> nn.Sequential:
    """``pad -> conv (no bias) -> BatchNorm -> ReLU6``; named ``pad``, ``conv``, ``bn``, ``act``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["pad"] = SamePad(kernel_size, stride)
    layers["conv"] = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False
    )
    layers["bn"] = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
    if activation:
        layers["act"] = nn.ReLU6(inplace=True)
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand (1x1) -> depthwise (kxk) -> project (1x1) [+ input].

    ``(N, in_channels, H, W)`` -> ``(N, out_channels, ceil(H / stride), ceil(W / stride))``.
    The residual connection is used when the shape is unchanged.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int, expand: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.expand = conv_bn(in_channels, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self.project = conv_bn(hidden, out_channels, 1, activation=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


def efficientnet_lite_features(in_channels: int = 3, *, dropout: float = 0.2) -> nn.Sequential:
    """The feature extractor: ``(N, C, H, W)`` -> ``(N, 1280)``, named stem, blocks, top, ...

    Layer names (for ``--freeze until:LAYER``): ``stem``, ``blocks.0`` ... ``blocks.15``,
    ``top``.
    """
    blocks = []
    channels = STEM_CHANNELS
    for repeats, kernel, stride, expand, out in LITE0_STAGES:
        for i in range(repeats):
            blocks.append(
                MBConv(
                    channels,
                    out,
                    kernel_size=kernel,
                    stride=stride if i == 0 else 1,
                    expand=expand,
                )
            )
            channels = out
    return nn.Sequential(
        OrderedDict(
            stem=conv_bn(in_channels, STEM_CHANNELS, 3, stride=2),
            blocks=nn.Sequential(*blocks),
            top=conv_bn(channels, TOP_CHANNELS, 1),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            dropout=nn.Dropout(dropout),
        )
    )


def _init_weights(model: nn.Module) -> None:
    """He initialisation by fan-in (used when no pretrained weights are loaded).

    Fan-in, not EfficientNet's fan-out: a depthwise kernel's fan-in is just ``k*k``, so the
    signal keeps its scale through all 16 blocks even in eval mode with fresh BatchNorm
    statistics (fan-out shrinks it to ~1e-9, and every untrained output ties).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.out_features)
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)


@register_model(
    "efficientnet_lite0",
    description="EfficientNet-Lite0: 16 MBConv blocks, ReLU6, no SE; ImageNet-pretrained "
    "weights via `cnnkit transfer`",
    default_input_shape=(3, 224, 224),
)
def efficientnet_lite0(
    *, input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.2
) -> Classifier:
    """Build EfficientNet-Lite0 with fresh weights.

    Args:
        input_shape: ``(C, H, W)``; H and W of at least 32 (five stride-2 stages).
        num_classes: output logits (1000 for the ImageNet head).
        dropout: dropout rate before the classifier head.
    """
    channels, height, width = input_shape
    if height < 32 or width < 32:
        raise ModelError(
            f"efficientnet_lite0 needs images of at least 32x32, got {height}x{width}; "
            "resize the inputs (transfer learning does so to the backbone's 224x224)"
        )
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"efficientnet_lite0 dropout must be in [0, 1), got {dropout}")
    model = Classifier(
        efficientnet_lite_features(channels, dropout=dropout), nn.Linear(TOP_CHANNELS, num_classes)
    )
    _init_weights(model)
    return model
