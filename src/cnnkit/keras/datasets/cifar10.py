"""``keras.datasets.cifar10``: from cnnkit's data folders (``cnnkit data download cifar10``)."""

from __future__ import annotations

import numpy as np

from cnnkit.keras.datasets._arrays import Split, colour


def load_data() -> tuple[Split, Split]:
    """``(x_train, y_train), (x_test, y_test)``: uint8 ``(50000, 32, 32, 3)``, uint8 ``(50000, 1)``.

    Raises:
        DataNotFoundError: not on this machine; the message says how to get it.
    """
    from cnnkit.data.cifar import CIFAR10, load_cifar

    return colour(load_cifar(CIFAR10), np.uint8)
