"""``cnnkit.keras``: the textbooks' Keras programs on cnnkit, unchanged but for the import.

Replace ``import keras`` / ``from tensorflow import keras`` with ``from cnnkit import keras``
(and ``from keras.layers import ...`` with ``from cnnkit.keras.layers import ...``)::

    from cnnkit import keras
    from cnnkit.keras import layers

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train / 255.0, y_train, epochs=3, validation_split=0.1)

The models are cnnkit models (torch modules) and ``fit`` is cnnkit's training engine. Anything
Keras has that is not here raises a :class:`~cnnkit.keras.unsupported.UnsupportedFeature`
naming the nearest supported form. Where behaviour differs from Keras, the module docs say so
(see the README's "Coming from Keras").
"""

from __future__ import annotations

from cnnkit.keras import (
    activations,
    backend,
    callbacks,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    mixed_precision,
    models,
    optimizers,
    utils,
)
from cnnkit.keras.layers import Input
from cnnkit.keras.network import Model, Sequential
from cnnkit.keras.unsupported import UnsupportedFeature, missing

__all__ = [
    "Input",
    "Model",
    "Sequential",
    "UnsupportedFeature",
    "activations",
    "backend",
    "callbacks",
    "datasets",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "mixed_precision",
    "models",
    "optimizers",
    "utils",
]

__getattr__ = missing(
    __name__,
    {
        "ops": "use torch functions on tensors, or keras.layers inside a model",
        "regularizers": "use keras.optimizers.AdamW(weight_decay=...)",
        "constraints": "drop the constraint",
        "applications": "use `cnnkit transfer` / cnnkit.load_backbone for pretrained backbones",
        "preprocessing": "prepare arrays with NumPy before fit; augment with cnnkit.augment",
        "distribution": "use torchrun with `cnnkit train` for several GPUs",
        "saving": "use model.save / keras.models.load_model",
        "random": "use keras.utils.set_random_seed",
        "tree": "drop it",
    },
)
