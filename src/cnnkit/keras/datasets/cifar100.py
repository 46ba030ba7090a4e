"""``keras.datasets.cifar100``: from cnnkit's data folders (``cnnkit data download cifar100``)."""

from __future__ import annotations

import numpy as np

from cnnkit.errors import ConfigError
from cnnkit.keras.datasets._arrays import Split, colour


def load_data(label_mode: str = "fine") -> tuple[Split, Split]:
    """``(x_train, y_train), (x_test, y_test)``: uint8 ``(50000, 32, 32, 3)``, int64 ``(50000, 1)``
    (100 fine or 20 coarse classes).

    Raises:
        DataNotFoundError: not on this machine; the message says how to get it.
    """
    from cnnkit.data.cifar import CIFAR100, CIFAR100_COARSE_SOURCE, load_cifar

    if label_mode not in ("fine", "coarse"):
        raise ConfigError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    return colour(
        load_cifar(CIFAR100 if label_mode == "fine" else CIFAR100_COARSE_SOURCE), np.int64
    )
