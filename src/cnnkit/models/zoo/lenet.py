"""The textbook LeNet for MNIST (SPEC §5 item 1).

Conv2D(32, 4x4, same, relu) -> MaxPool 2x2/2 -> Conv2D(64, 4x4, same, relu) -> MaxPool 2x2/2
-> Flatten -> Dense(1024, relu) -> Dense(num_classes). 3,255,914 parameters at 1x28x28.
"""

from __future__ import annotations

from torch import nn

from cnnkit.errors import ModelError
from cnnkit.models.classifier import Classifier
from cnnkit.models.init import initialize
from cnnkit.models.registry import register_model


@register_model(
    "lenet",
    description="Textbook LeNet: 2x(conv 4x4 same + max-pool), dense 1024, dense 10",
    default_input_shape=(1, 28, 28),
)
def lenet(
    *, input_shape: tuple[int, int, int], num_classes: int, init: str = "keras"
) -> Classifier:
    """Build the textbook LeNet.

    Args:
        input_shape: ``(C, H, W)``; H and W must be at least 4.
        num_classes: output logits.
        init: ``keras`` (Glorot-uniform, zero bias), ``normal`` (textbook TF: std 0.1
            weights, N(0, 1) biases) or ``torch``.
    """
    channels, height, width = input_shape
    if height < 4 or width < 4:
        raise ModelError(f"lenet needs images of at least 4x4, got {height}x{width}")
    flat = 64 * (height // 2 // 2) * (width // 2 // 2)
    # Keras "same" for an even 4x4 kernel pads 1 before and 2 after each spatial axis
    features = nn.Sequential(
        nn.ZeroPad2d((1, 2, 1, 2)),
        nn.Conv2d(channels, 32, kernel_size=4),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.ZeroPad2d((1, 2, 1, 2)),
        nn.Conv2d(32, 64, kernel_size=4),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(flat, 1024),
        nn.ReLU(),
    )
    return initialize(Classifier(features, nn.Linear(1024, num_classes)), init)
