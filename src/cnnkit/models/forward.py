"""Forward passes of a model over uint8 images: large batches, no gradients, fixed order.

The building block of scoring during training, evaluation, prediction and export parity;
:mod:`cnnkit.predict` is the front end that loads a saved run and answers for single images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.devices import prefers_channels_last

EVAL_BATCH = 1000  # images per forward pass when no gradients are kept


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    preprocessing: Preprocessing | Callable[[torch.Tensor], torch.Tensor],
    device: torch.device | str = "cpu",
    batch_size: int = EVAL_BATCH,
    autocast: torch.dtype | None = None,
) -> torch.Tensor:
    """Logits for uint8 images ``(N, C, H, W)``, in input order.

    The model is put in eval mode for the call and restored to its previous mode after.
    Image batches run channels-last where training would (a convolutional model on a CPU,
    or in reduced precision on a GPU), and the model's weights are moved to that layout:
    LeNet predicts about twice as fast that way on a CPU.
    ``autocast`` (``torch.bfloat16`` or ``torch.float16``) runs the model's matmuls and
    convolutions in that type, as training in reduced precision does; None keeps fp32.

    Returns:
        float32 logits ``(N, num_classes)`` on the CPU.
    """
    was_training = model.training
    model.eval()
    try:
        outputs = []
        device_type = torch.device(device).type
        precision = (
            torch.autocast(device_type, dtype=autocast) if autocast else contextlib.nullcontext()
        )
        fast = images.dim() == 4 and prefers_channels_last(
            model, torch.device(device), autocast is not None
        )
        if fast:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            if fast:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with precision:
                logits = model(preprocessing(batch))
            outputs.append(logits.float().cpu())
        if not outputs:
            return torch.empty(0, 0)
        return torch.cat(outputs)
    finally:
        model.train(was_training)


def loss_and_accuracy(
    model: nn.Module,
    dataset: Dataset,
    *,
    preprocessing: Preprocessing,
    device: torch.device | str = "cpu",
    batch_size: int = EVAL_BATCH,
) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy of ``model`` on ``dataset``."""
    logits = predict_logits(
        model, dataset.images, preprocessing=preprocessing, device=device, batch_size=batch_size
    )
    return score_logits(logits, dataset.labels)


def score_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy of logits ``(N, K)`` against labels ``(N,)``."""
    return {
        "loss": float(F.cross_entropy(logits, labels)),
        "accuracy": float((logits.argmax(1) == labels).float().mean()),
    }
