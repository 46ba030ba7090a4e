"""The other architectures of the source material (SPEC §5 items 3-7), in Keras vocabulary.

Each builder takes ``input_shape`` ``(C, H, W)``, ``num_classes`` and ``init`` (``keras``
default, ``normal``, ``torch``); the output is logits from a Dense head, so every model swaps
its classifier with ``reset_classifier``. Where the source ends in a sigmoid or softmax, cnnkit
keeps logits and applies softmax cross-entropy (the sound choice, SPEC §5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cnnkit.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    Layer,
    MaxPooling2D,
    Model,
    Sequential,
    SymbolicTensor,
)
from cnnkit.layers.init import initialize
from cnnkit.models.registry import register_model

Shape = tuple[int, int, int]


LayerList = Callable[[], list[Layer]]


def _register_stack(
    name: str, description: str, default_input_shape: Shape
) -> Callable[[LayerList], Callable[..., Sequential]]:
    """Register ``Input -> layers() -> Dense(num_classes)`` (the logits head), named and
    initialised, as the model ``name``; the builder takes the docstring of ``layers``."""

    def decorate(layers: LayerList) -> Callable[..., Sequential]:
        def builder(*, input_shape: Shape, num_classes: int, init: str = "keras") -> Sequential:
            model = Sequential([Input(input_shape), *layers(), Dense(num_classes)], name=name)
            return initialize(model, init)

        builder.__name__ = builder.__qualname__ = layers.__name__
        builder.__doc__ = layers.__doc__
        register_model(name, description=description, default_input_shape=default_input_shape)(
            builder
        )
        return builder

    return decorate


@_register_stack("minimal", "Minimal Keras model: conv 32 3x3, dense 128, dense 10", (1, 28, 28))
def minimal() -> list[Layer]:
    """SPEC §5 item 3: Conv2D(32, 3x3, relu) -> Flatten -> Dense(128, relu) -> Dense(10)."""
    return [Conv2D(32, 3, activation="relu"), Flatten(), Dense(128, activation="relu")]


@_register_stack(
    "two_conv",
    "Two-conv CIFAR-10 net: 2x conv 50 3x3 same, max-pool, dense 512, dense 10",
    (3, 32, 32),
)
def two_conv() -> list[Layer]:
    """SPEC §5 item 4: 2x Conv2D(50, 3x3, same, relu) -> MaxPool 2x2/2 -> Dense(512) -> 10."""
    return [
        Conv2D(50, 3, padding="same", activation="relu"),
        Conv2D(50, 3, padding="same", activation="relu"),
        MaxPooling2D(2, 2),
        Flatten(),
        Dense(512, activation="relu"),
    ]


_VGG_BLOCKS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256))


def _vgg_layers(blocks: int, dropout: float | None) -> list[Layer]:
    """VGG-style CIFAR-10 net (SPEC §5 item 5): ``blocks`` blocks of 3x3 same convs + 2x2
    max-pool, then Dense(4096, relu) x2 (each followed by ``Dropout(dropout)`` if given)."""
    layers: list[Layer] = []
    for widths in _VGG_BLOCKS[:blocks]:
        layers += [Conv2D(w, 3, padding="same", activation="relu") for w in widths]
        layers.append(MaxPooling2D(2, 2))
    layers.append(Flatten())
    for _ in range(2):
        layers.append(Dense(4096, activation="relu"))
        if dropout:
            layers.append(Dropout(dropout))
    return layers


def _register_vgg(name: str, blocks: int, dropout: float | None, text: str) -> None:
    def layers() -> list[Layer]:
        return _vgg_layers(blocks, dropout)

    layers.__name__ = name
    layers.__doc__ = f"SPEC §5 item 5, model {name[-1]}: {text}."
    _register_stack(name, f"VGG-style CIFAR-10 model: {text}", (3, 32, 32))(layers)


_register_vgg("vgg1", 1, None, "block(64,64), dense 4096 x2, dense 10")
_register_vgg("vgg2", 2, None, "blocks (64,64), (128,128), dense 4096 x2")
_register_vgg("vgg3", 3, None, "blocks (64,64), (128,128), (256,256,256), dense 4096 x2")
_register_vgg("vgg4", 3, 0.5, "vgg3 with Dropout(0.5) after each dense 4096")


@_register_stack(
    "bn_cnn",
    "BatchNorm CIFAR-10 net: conv 64 9x9/2, conv 128 3x3, BN, dropout, dense 256/64",
    (3, 32, 32),
)
def bn_cnn() -> list[Layer]:
    """SPEC §5 item 6: Conv2D(64, 9x9, stride 2, valid, relu) -> MaxPool -> BatchNorm ->
    Conv2D(128, 3x3, relu) -> MaxPool -> BatchNorm -> Flatten -> Dropout(0.5) ->
    Dense(256, relu) -> Dropout(0.2) -> Dense(64, relu) -> Dropout(0.1) -> Dense(10)."""
    return [
        Conv2D(64, 9, strides=2, padding="valid", activation="relu"),
        MaxPooling2D(2),
        BatchNormalization(),
        Conv2D(128, 3, activation="relu"),
        MaxPooling2D(2),
        BatchNormalization(),
        Flatten(),
        Dropout(0.5),
        Dense(256, activation="relu"),
        Dropout(0.2),
        Dense(64, activation="relu"),
        Dropout(0.1),
    ]


@_register_stack(
    "video_seq",
    "Video lesson's Sequential CIFAR-10 net: conv 32/64/128 3x3, dense 64, dense 10",
    (3, 32, 32),
)
def video_seq() -> list[Layer]:
    """SPEC §5 item 7a: Conv2D(32, 3, valid, relu) -> MaxPool -> Conv2D(64, 3, relu) ->
    MaxPool -> Conv2D(128, 3, relu) -> Flatten -> Dense(64, relu) -> Dense(10) logits."""
    return [
        Conv2D(32, 3, padding="valid", activation="relu"),
        MaxPooling2D(),
        Conv2D(64, 3, activation="relu"),
        MaxPooling2D(),
        Conv2D(128, 3, activation="relu"),
        Flatten(),
        Dense(64, activation="relu"),
    ]


@register_model(
    "video_functional",
    description="Video lesson's functional net: conv -> BN -> ReLU blocks (32/3, 64/5, 128/3)",
    default_input_shape=(3, 32, 32),
)
def video_functional(*, input_shape: Shape, num_classes: int, init: str = "keras") -> Model:
    """SPEC §5 item 7b, in the functional style: Conv 32/3 -> BN -> ReLU -> MaxPool ->
    Conv 64/5 same -> BN -> ReLU -> Conv 128/3 -> BN -> ReLU -> Flatten -> Dense 64 relu ->
    Dense 10. (The lesson notes it overfits without regularisation.)"""
    inputs = Input(input_shape)
    x = _conv_bn_relu(inputs, 32, 3, "valid")
    x = MaxPooling2D()(x)
    x = _conv_bn_relu(x, 64, 5, "same")
    x = _conv_bn_relu(x, 128, 3, "valid")
    x = Flatten()(x)
    x = Dense(64, activation="relu")(x)
    outputs = Dense(num_classes)(x)
    return initialize(Model(inputs, outputs, name="video_functional"), init)


def _conv_bn_relu(
    x: SymbolicTensor, filters: int, kernel: int | Sequence[int], padding: str
) -> SymbolicTensor:
    x = Conv2D(filters, kernel, padding=padding)(x)
    x = BatchNormalization()(x)
    return Activation("relu")(x)
