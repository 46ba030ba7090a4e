"""Keras-vocabulary layers on torch: write a model as the textbooks do, get a ``torch.nn.Module``.

Two ways to write a model, as in Keras::

    from cnnkit.layers import *

    model = Sequential([
        Input((1, 28, 28)),                                   # (C, H, W): channels first
        Conv2D(32, 4, padding="same", activation="relu"),
        MaxPooling2D(2),
        Flatten(),
        Dense(10),                                            # logits: the head
    ])

    x = Input((3, 32, 32))
    y = Conv2D(16, 3, padding="same")(x)
    y = Add()([y, Conv2D(16, 1)(x)])
    model = Model(x, Dense(10)(GlobalAveragePooling2D()(y)))

Shapes are worked out layer by layer at build time; a shape a layer cannot take fails at once
with a :class:`~cnnkit.errors.ModelError` naming the layer, the shape it expects and the shape
it got. Weights start as Keras's do (Glorot-uniform kernels, zero biases);
:func:`cnnkit.layers.init.initialize` switches to the textbook's normal(0.1) or torch's own.
The same models load from YAML/JSON specs (:mod:`cnnkit.layers.spec`).
"""

from __future__ import annotations

from cnnkit.layers.base import ACTIVATIONS, Input, InputLayer, Layer, SymbolicTensor
from cnnkit.layers.conv import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    Conv1D,
    Conv2D,
    Conv3D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from cnnkit.layers.core import (
    Activation,
    Add,
    BatchNormalization,
    Concatenate,
    Dense,
    Dropout,
    Flatten,
    Reshape,
)
from cnnkit.layers.model import Graph, Model, Sequential

#: every layer class by its Keras name: what specs may use
LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (
        InputLayer,
        Reshape,
        Conv1D,
        Conv2D,
        Conv3D,
        MaxPooling1D,
        MaxPooling2D,
        MaxPooling3D,
        AveragePooling1D,
        AveragePooling2D,
        AveragePooling3D,
        GlobalAveragePooling1D,
        GlobalAveragePooling2D,
        GlobalMaxPooling1D,
        GlobalMaxPooling2D,
        Flatten,
        Dense,
        Dropout,
        BatchNormalization,
        Activation,
        Add,
        Concatenate,
    )
}

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "Activation",
    "Add",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "BatchNormalization",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Graph",
    "Input",
    "InputLayer",
    "Layer",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "Model",
    "Reshape",
    "Sequential",
    "SymbolicTensor",
]
