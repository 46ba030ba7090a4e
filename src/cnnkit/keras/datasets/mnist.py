"""``keras.datasets.mnist``: the copy that ships inside cnnkit."""

from __future__ import annotations

from cnnkit.keras.datasets._arrays import Split, grey


def load_data(path: str = "mnist.npz") -> tuple[Split, Split]:
    """``(x_train, y_train), (x_test, y_test)``: uint8 ``(60000, 28, 28)``, uint8 ``(60000,)``,
    and the 10,000 test images. ``path`` (Keras's cache name) is not used."""
    from cnnkit.data.mnist import MNIST, load_idx_source

    return grey(load_idx_source(MNIST))
