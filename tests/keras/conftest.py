"""Real MNIST subsets as Keras programs hold them (NumPy, channels last)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    """2,000 training and 500 test digits from the real MNIST, as ``load_data`` gives them."""
    from cnnkit.keras.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    return (x_train[:2000], y_train[:2000]), (x_test[:500], y_test[:500])


@pytest.fixture(scope="session")
def flat(digits):
    """The textbooks' preparation: float32 in [0, 1], flat 784 vectors, one-hot labels."""
    from cnnkit.keras.utils import to_categorical

    (x_train, y_train), (x_test, y_test) = digits
    return (
        (x_train.reshape(-1, 784).astype(np.float32) / 255, to_categorical(y_train, 10)),
        (x_test.reshape(-1, 784).astype(np.float32) / 255, to_categorical(y_test, 10)),
    )
