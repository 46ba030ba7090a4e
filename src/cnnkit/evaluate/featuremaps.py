"""Feature maps: what one convolution layer outputs for one image."""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ModelError
from cnnkit.models.probes import as_maps, capture_output, find_layer


@torch.no_grad()
def feature_maps(
    model: nn.Module,
    image: torch.Tensor,
    *,
    preprocessing: Preprocessing,
    layer: str | None = None,
    device: torch.device | str = "cpu",
) -> tuple[str, torch.Tensor]:
    """The output of ``layer`` for one image.

    Args:
        model: any model with a convolution layer; its mode is restored afterwards.
        image: uint8 ``(C, H, W)``.
        preprocessing: the run's input normalisation.
        layer: a module name; default the last convolution executed.
        device: where to compute.

    Returns:
        The layer's label (``features.5 (+ReLU)``: a convolution is read after the batch
        norm and activation that directly follow it) and its maps, float32 ``(C', h, w)``
        on the CPU (1-D conv outputs come as ``(C', 1, L)``, 3-D ones averaged over depth).

    Raises:
        ModelError: no such layer, or the model has no convolution.
    """
    was_training = model.training
    model.eval()
    try:
        inputs = preprocessing(image[None].to(device))
        choice = find_layer(model, layer, example=inputs)
        with capture_output(choice.module) as captured:
            model(inputs)
        if captured.output is None:
            raise ModelError(
                f"layer {choice.name!r} did not run in the forward pass; choose another"
            )
        return choice.label, as_maps(captured.output, choice.name)[0].float().cpu()
    finally:
        model.train(was_training)
