"""A model behind an input adapter: any dataset's images in, a backbone's expected input out.

A pretrained backbone expects one input form — EfficientNet-Lite0: 3x224x224 RGB, normalised
with its own mean and std — while a dataset has its own (Fashion-MNIST: 1x28x28 grey). The
:class:`InputAdapter` sits in front of the backbone *inside the model*, as Keras's transfer
learning guide puts ``Resizing``/``Normalization`` layers inside the model: the saved model
then accepts the dataset's images as they are (scaled to 0..1 by the run's preprocessing),
so evaluation, prediction and export need no extra step and cannot forget one.

The adapter converts channels (grey replicated to RGB; RGB to grey by luminance), resizes with
:func:`resize_images` (the one resize rule) and normalises with the backbone's mean and std.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ModelError
from cnnkit.models.classifier import Classifier
from cnnkit.models.registry import build_model, register_model

# ITU-R BT.601 luma weights, used to turn RGB into grey
LUMA = (0.299, 0.587, 0.114)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The one resize rule of transfer learning: float ``(N, C, H, W)`` -> ``(N, C, *size)``.

    Stretches to ``size`` (no crop, no pad: cnnkit datasets have one fixed shape, and
    28x28 or 32x32 images keep their aspect ratio at 224x224), bilinear, with antialiasing
    when shrinking; pixel centres aligned as in PIL (``align_corners=False``).
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


class InputAdapter(nn.Module):
    """``(N, C_in, H, W)`` images scaled to 0..1 -> ``(N, C, H', W')`` normalised backbone input.

    Args:
        in_channels: channels of the incoming images (1 or 3, or equal to the backbone's).
        input_shape: ``(C, H', W')`` the backbone expects.
        mean: per-channel mean the backbone was trained with, on the 0..1 scale.
        std: per-channel standard deviation, on the 0..1 scale.

    Raises:
        ModelError: the channel counts cannot be converted, or mean/std do not match ``C``.
    """

    mean: torch.Tensor
    std: torch.Tensor
    luma: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        input_shape: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        channels, height, width = (int(v) for v in input_shape)
        if in_channels != channels and (in_channels, channels) not in ((1, 3), (3, 1)):
            raise ModelError(
                f"cannot adapt {in_channels}-channel images to a backbone expecting {channels} "
                "channels; only grey->RGB (replicate) and RGB->grey (luminance) are supported"
            )
        if len(mean) != channels or len(std) != channels or any(s <= 0 for s in std):
            raise ModelError(
                f"the backbone needs {channels} means and {channels} positive stds, "
                f"got mean {list(mean)} and std {list(std)}"
            )
        self.in_channels = in_channels
        self.input_shape = (channels, height, width)
        # not persistent: the weights file holds only learned tensors; these are options
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, input_shape={self.input_shape}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, height, width = self.input_shape
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)  # grey replicated to R, G and B
        elif x.shape[1] == 3 and channels == 1:
            x = (x * self.luma).sum(1, keepdim=True)
        x = resize_images(x, (height, width))
        return (x - self.mean) / self.std


class AdaptedClassifier(Classifier):
    """A :class:`Classifier` whose features start with an :class:`InputAdapter`.

    ``features`` is ``Sequential(adapter=..., backbone=<the backbone's features>)`` and
    ``head`` the backbone's head, so the usual head swapping and feature reading work.
    """

    def __init__(self, adapter: InputAdapter, network: Classifier) -> None:
        super().__init__(
            nn.Sequential(OrderedDict(adapter=adapter, backbone=network.features)), network.head
        )

    @property
    def adapter(self) -> InputAdapter:
        return cast(InputAdapter, self.features.adapter)

    @property
    def backbone(self) -> nn.Module:
        """The backbone's feature extractor (layer names for freezing are relative to it)."""
        return cast(nn.Module, self.features.backbone)


@register_model(
    "adapted",
    description="Another registered model behind an input adapter (channels, resize, "
    "normalisation): what `cnnkit finetune` saves",
    default_input_shape=(1, 28, 28),
)
def adapted(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    backbone: str = "efficientnet_lite0",
    backbone_options: dict[str, Any] | None = None,
    backbone_input_shape: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> AdaptedClassifier:
    """Build the registered model ``backbone`` behind an :class:`InputAdapter`.

    Args:
        input_shape: ``(C, H, W)`` of the images the adapted model takes.
        num_classes: output logits.
        backbone: registry name of the inner model.
        backbone_options: its options.
        backbone_input_shape: ``(C, H, W)`` the inner model takes (default: its own default).
        mean: per-channel normalisation mean of the inner model (default 0).
        std: per-channel normalisation std of the inner model (default 1).
    """
    from cnnkit.models.registry import get_model_entry

    inner_shape = tuple(backbone_input_shape or get_model_entry(backbone).default_input_shape)
    if len(inner_shape) != 3:
        raise ModelError(f"backbone_input_shape must be (C, H, W), got {list(inner_shape)}")
    network = build_model(
        backbone,
        input_shape=inner_shape,  # type: ignore[arg-type]
        num_classes=num_classes,
        **(backbone_options or {}),
    )
    if not isinstance(network, Classifier):
        raise ModelError(f"model {backbone!r} has no swappable head (it is not a Classifier)")
    channels = inner_shape[0]
    adapter = InputAdapter(
        input_shape[0],
        inner_shape,
        mean if mean is not None else [0.0] * channels,
        std if std is not None else [1.0] * channels,
    )
    return AdaptedClassifier(adapter, network)
