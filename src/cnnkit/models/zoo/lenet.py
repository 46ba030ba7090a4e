"""The textbook LeNet (SPEC §5 items 1 and 2), written with cnnkit's Keras-vocabulary layers.

Conv2D(32, 4x4, same, relu) -> MaxPool 2x2/2 -> Conv2D(64, 4x4, same, relu) -> MaxPool 2x2/2
-> Flatten -> Dense(1024, relu) -> Dense(num_classes). 3,255,914 parameters at 1x28x28.
The CIFAR-10 variant adds Dropout after each pooling layer and after the 1024 dense layer.
"""

from __future__ import annotations

from cnnkit.layers import Conv2D, Dense, Dropout, Flatten, Input, Layer, MaxPooling2D, Sequential
from cnnkit.layers.init import initialize
from cnnkit.models.registry import register_model


def build_lenet(
    input_shape: tuple[int, int, int], num_classes: int, *, dropout: float | None, init: str
) -> Sequential:
    """LeNet, with ``Dropout(dropout)`` after both pools and the 1024 dense layer if given."""

    def drop() -> list[Layer]:
        return [Dropout(dropout)] if dropout else []

    model = Sequential(
        [
            Input(input_shape),
            Conv2D(32, 4, padding="same", activation="relu"),
            MaxPooling2D(2, 2),
            *drop(),
            Conv2D(64, 4, padding="same", activation="relu"),
            MaxPooling2D(2, 2),
            *drop(),
            Flatten(),
            Dense(1024, activation="relu"),
            *drop(),
            Dense(num_classes),
        ],
        name="lenet" if not dropout else "lenet_dropout",
    )
    return initialize(model, init)


@register_model(
    "lenet",
    description="Textbook LeNet: 2x(conv 4x4 same + max-pool), dense 1024, dense 10",
    default_input_shape=(1, 28, 28),
)
def lenet(
    *, input_shape: tuple[int, int, int], num_classes: int, init: str = "keras"
) -> Sequential:
    """Build the textbook LeNet (SPEC §5 item 1).

    Args:
        input_shape: ``(C, H, W)``; H and W must be at least 4.
        num_classes: output logits.
        init: ``keras`` (Glorot-uniform, zero bias), ``normal`` (textbook TF: std 0.1
            weights, N(0, 1) biases) or ``torch``.
    """
    return build_lenet(input_shape, num_classes, dropout=None, init=init)


@register_model(
    "lenet_dropout",
    description="LeNet for CIFAR-10 with Dropout after each pool and the dense 1024 layer",
    default_input_shape=(3, 32, 32),
)
def lenet_dropout(
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    dropout: float = 0.2,
    init: str = "keras",
) -> Sequential:
    """LeNet with dropout (SPEC §5 item 2; the Keras version's rate 0.2 by default)."""
    return build_lenet(input_shape, num_classes, dropout=dropout, init=init)
