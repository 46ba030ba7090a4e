"""Grad-CAM (Selvaraju et al., 2017): where in the image a convolution layer saw the class.

For a target class c and a conv layer with activations A (C maps), each map's weight is the
mean over positions of d(logit_c)/dA; the heat-map is ReLU(sum_k weight_k * A_k), scaled to
[0, 1] and resized to the input. Works on any model with a convolution layer (see
:mod:`cnnkit.models.probes`), by default the last one executed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ConfigError, ModelError
from cnnkit.models.probes import as_maps, capture_output, find_layer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM heat-maps for a batch of images.

    Attributes:
        heatmaps: float32 ``(N, H, W)`` in [0, 1], at the input's height and width.
        targets: the class each heat-map explains, ``(N,)``.
        probabilities: the model's softmax output, ``(N, K)``.
        layer: the layer explained, e.g. ``features.5 (+ReLU)``: a convolution is read after
            the batch norm and activation that directly follow it.
    """

    heatmaps: torch.Tensor
    targets: torch.Tensor
    probabilities: torch.Tensor
    layer: str


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    *,
    preprocessing: Preprocessing,
    layer: str | None = None,
    targets: int | Sequence[int] | None = None,
    device: torch.device | str = "cpu",
) -> GradCam:
    """Grad-CAM heat-maps of ``images`` for ``targets`` at ``layer``.

    Args:
        model: any classifier mapping ``(N, C, H, W)`` to logits ``(N, K)``; its weights and
            gradients are left untouched and its train/eval mode restored.
        images: uint8 ``(N, C, H, W)``.
        preprocessing: the run's input normalisation.
        layer: a module name (``features.4``); default the last convolution executed.
        targets: the class to explain, one for all or one per image; default each image's
            predicted class.
        device: where to compute.

    Raises:
        ModelError: no such layer, or the model has no convolution.
        ConfigError: a target class is out of range or the target count is wrong.
    """
    was_training = model.training
    model.eval()
    try:
        inputs = preprocessing(images.to(device))
        choice = find_layer(model, layer, example=inputs[:1])
        name = choice.label
        with torch.enable_grad(), capture_output(choice.module) as captured:
            logits = model(inputs)
            activation = captured.output
            if activation is None:
                raise ModelError(
                    f"layer {name!r} did not run in the forward pass; choose another --layer"
                )
            chosen = _targets(targets, logits)
            score = logits.gather(1, chosen[:, None]).sum()
            (gradient,) = torch.autograd.grad(score, activation)
        maps = as_maps(activation.detach(), name)
        grads = as_maps(gradient, name)
        weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1): importance of each map
        cam = F.relu((weights * maps).sum(dim=1, keepdim=True))  # (N, 1, h, w)
        cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
        cam = cam[:, 0]
        peak = cam.flatten(1).amax(dim=1)
        if bool((peak <= 0).any()):
            log.info(
                "Grad-CAM at %s finds no positive evidence for %d of %d images (blank "
                "heat-maps); a later layer usually explains better",
                name,
                int((peak <= 0).sum()),
                len(peak),
            )
        peak = peak.clamp_min(1e-12).view(-1, 1, 1)
        return GradCam(
            heatmaps=(cam / peak).clamp(0, 1).float().cpu(),
            targets=chosen.cpu(),
            probabilities=logits.detach().softmax(dim=1).float().cpu(),
            layer=name,
        )
    finally:
        model.train(was_training)


def _targets(targets: int | Sequence[int] | None, logits: torch.Tensor) -> torch.Tensor:
    count, classes = logits.shape
    if targets is None:
        return logits.detach().argmax(dim=1)
    values = [targets] * count if isinstance(targets, int) else list(targets)
    if len(values) != count:
        raise ConfigError(f"{len(values)} target classes given for {count} images")
    for value in values:
        if not 0 <= value < classes:
            raise ConfigError(
                f"target class {value} is out of range: the model has {classes} classes "
                f"(0..{classes - 1})"
            )
    return torch.tensor(values, dtype=torch.int64, device=logits.device)


def heatmap_overlay(
    image: np.ndarray, heatmap: np.ndarray, *, scale: int = 1, alpha: float = 0.5
) -> np.ndarray:
    """An image with its Grad-CAM heat-map laid over it, as one RGB picture.

    The same picture :func:`cnnkit.evaluate.plots.plot_gradcam` draws (jet colours, half
    transparent), made without a figure, e.g. for the web demo.

    Args:
        image: uint8 ``(C, H, W)`` with 1 or 3 channels.
        heatmap: float ``(H, W)`` in [0, 1].
        scale: enlarge by this integer factor: the image by repeating pixels, the heat-map
            bilinearly (so small inputs such as MNIST's 28x28 stay sharp but the heat is smooth).
        alpha: weight of the heat colours.

    Returns:
        uint8 ``(H * scale, W * scale, 3)``.
    """
    from matplotlib import colormaps

    if image.ndim != 3 or image.shape[0] not in (1, 3) or image.shape[1:] != heatmap.shape:
        raise ConfigError(
            f"heatmap_overlay needs an image (1 or 3, H, W) and a heat-map (H, W) of the same "
            f"size, got {image.shape} and {heatmap.shape}"
        )
    if scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale}")
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
    picture = rgb.transpose(1, 2, 0).astype(np.float32)
    picture = picture.repeat(scale, axis=0).repeat(scale, axis=1)
    heat = torch.as_tensor(heatmap, dtype=torch.float32)[None, None]
    if scale > 1:
        heat = F.interpolate(heat, scale_factor=scale, mode="bilinear", align_corners=False)
    colours = colormaps["jet"](heat[0, 0].clamp(0, 1).numpy())[..., :3] * 255.0
    blended = (1.0 - alpha) * picture + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
