"""Small ResNets for CIFAR-style 32x32 (and 28x28) inputs, after He et al. (2016), §4.2.

Depth 6n+2: a 3x3 stem conv with 16 filters, then three stages of n residual blocks with 16,
32 and 64 filters (the first block of stages 2 and 3 halves the resolution with stride 2),
global average pooling and a Dense head. Each block is conv-BN-ReLU-conv-BN plus a shortcut,
then ReLU; where the shape changes the shortcut is a 1x1 strided conv + BN (the paper's
projection option B, which Keras can build too). ``resnet110`` is the 110-layer network the
source material quotes at about 6.6% CIFAR-10 error. Written in the functional style.
"""

from __future__ import annotations

from cnnkit.errors import ModelError
from cnnkit.layers import (
    Activation,
    Add,
    BatchNormalization,
    Conv2D,
    Dense,
    GlobalAveragePooling2D,
    Input,
    Model,
    SymbolicTensor,
)
from cnnkit.layers.init import initialize
from cnnkit.models.registry import register_model

Shape = tuple[int, int, int]
STAGE_WIDTHS = (16, 32, 64)


def build_resnet(depth: int, input_shape: Shape, num_classes: int, *, init: str) -> Model:
    """The CIFAR ResNet of ``depth`` = 6n+2 layers (20, 32, 44, 56, 110, ...)."""
    if depth < 8 or (depth - 2) % 6:
        raise ModelError(f"a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110), got {depth}")
    blocks = (depth - 2) // 6
    inputs = Input(input_shape)
    x = Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = BatchNormalization(name="stem_bn")(x)
    x = Activation("relu", name="stem_relu")(x)
    for stage, width in enumerate(STAGE_WIDTHS, start=1):
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _residual_block(x, width, stride, f"s{stage}b{block}")
    x = GlobalAveragePooling2D(name="pool")(x)
    outputs = Dense(num_classes, name="fc")(x)
    return initialize(Model(inputs, outputs, name=f"resnet{depth}"), init)


def _residual_block(x: SymbolicTensor, width: int, stride: int, name: str) -> SymbolicTensor:
    y = Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = BatchNormalization(name=f"{name}_bn1")(y)
    y = Activation("relu", name=f"{name}_relu1")(y)
    y = Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = BatchNormalization(name=f"{name}_bn2")(y)
    shortcut = x
    if stride != 1 or x.shape[0] != width:
        shortcut = Conv2D(width, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = Add(name=f"{name}_add")([shortcut, y])
    return Activation("relu", name=f"{name}_out")(y)


def _register(depth: int, note: str) -> None:
    def builder(*, input_shape: Shape, num_classes: int, init: str = "keras") -> Model:
        return build_resnet(depth, input_shape, num_classes, init=init)

    builder.__doc__ = f"ResNet-{depth} for CIFAR-style inputs ({note})."
    register_model(
        f"resnet{depth}",
        description=f"CIFAR ResNet-{depth}: 3 stages x {(depth - 2) // 6} residual blocks ({note})",
        default_input_shape=(3, 32, 32),
    )(builder)


_register(20, "0.27M parameters")
_register(56, "0.86M parameters")
_register(110, "1.7M parameters; ~6.6% CIFAR-10 error in the paper")
