"""A model behind an input adapter: any dataset's images in, a backbone's expected input out.

A pretrained backbone expects one input form — EfficientNet-Lite0: 3x224x224 RGB, normalised
with its own mean and std — while a dataset has its own (Fashion-MNIST: 1x28x28 grey). The
:class:`InputAdapter` sits in front of the backbone *inside the model*, as Keras's transfer
learning guide puts ``Resizing``/``Normalization`` layers inside the model: the saved model
then accepts the dataset's images as they are (scaled to 0..1 by the run's preprocessing),
so evaluation, prediction and export need no extra step and cannot forget one.

The adapter converts channels (grey replicated to RGB; RGB to grey by luminance), resizes with
:func:`resize_images` (the size rule of :mod:`cnnkit.data.images`, for batches of tensors)
and normalises with the backbone's mean and std.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.data.images import DEFAULT_FIT, FIT_MODES
from cnnkit.errors import ModelError
from cnnkit.layers.classifier import Classifier
from cnnkit.models.registry import build_model, register_model

# ITU-R BT.601 luma weights, used to turn RGB into grey
LUMA = (0.299, 0.587, 0.114)


def resize_images(
    images: torch.Tensor, size: tuple[int, int], fit: str = DEFAULT_FIT
) -> torch.Tensor:
    """The size rule of :mod:`cnnkit.data.images`, for a float batch ``(N, C, H, W)``.

    ``(N, C, H, W)`` -> ``(N, C, *size)``, by the same rule and arithmetic as
    :func:`cnnkit.data.images.fit_image` applies to one decoded picture: left alone when
    already of ``size``; ``pad`` scales to fit and centres on black (0), ``crop`` scales to
    cover and cuts the centre, ``stretch`` ignores the aspect ratio. Antialiased bilinear,
    pixel centres aligned as in Pillow. A square 28x28 or 32x32 image becomes a square
    224x224 one the same way under all three.
    """
    if fit not in FIT_MODES:
        raise ModelError(f"unknown fit {fit!r}; choose one of {', '.join(FIT_MODES)}")
    height, width = size
    in_h, in_w = int(images.shape[-2]), int(images.shape[-1])
    if (in_h, in_w) == (height, width):
        return images
    if fit == "stretch":
        new_h, new_w = height, width
    else:
        scale = (min if fit == "pad" else max)(width / in_w, height / in_h)
        new_w, new_h = max(1, round(in_w * scale)), max(1, round(in_h * scale))
        bound = min if fit == "pad" else max
        new_w, new_h = bound(new_w, width), bound(new_h, height)
    out = F.interpolate(
        images, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
    )
    if (new_h, new_w) == (height, width):
        return out
    if fit == "pad":
        left, top = (width - new_w) // 2, (height - new_h) // 2
        return F.pad(out, (left, width - new_w - left, top, height - new_h - top))
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return out[..., top : top + height, left : left + width]


class InputAdapter(nn.Module):
    """``(N, C_in, H, W)`` images scaled to 0..1 -> ``(N, C, H', W')`` normalised backbone input.

    Args:
        in_channels: channels of the incoming images (1 or 3, or equal to the backbone's).
        input_shape: ``(C, H', W')`` the backbone expects.
        mean: per-channel mean the backbone was trained with, on the 0..1 scale.
        std: per-channel standard deviation, on the 0..1 scale.
        fit: how the size changes (:func:`resize_images`): ``pad``, ``crop`` or ``stretch``.

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
        fit: str = DEFAULT_FIT,
    ) -> None:
        super().__init__()
        if fit not in FIT_MODES:
            raise ModelError(f"unknown fit {fit!r}; choose one of {', '.join(FIT_MODES)}")
        self.fit = fit
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
        return f"in_channels={self.in_channels}, input_shape={self.input_shape}, fit={self.fit}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, height, width = self.input_shape
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)  # grey replicated to R, G and B
        elif x.shape[1] == 3 and channels == 1:
            x = (x * self.luma).sum(1, keepdim=True)
        x = resize_images(x, (height, width), self.fit)
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
    fit: str = DEFAULT_FIT,
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
        fit: how images change size: ``pad``, ``crop`` or ``stretch`` (:func:`resize_images`).
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
        fit,
    )
    return AdaptedClassifier(adapter, network)
