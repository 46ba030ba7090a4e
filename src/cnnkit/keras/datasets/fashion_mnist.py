"""``keras.datasets.fashion_mnist``: where cnnkit finds it (apt, ``cnnkit data download``)."""

from __future__ import annotations

from cnnkit.keras.datasets._arrays import Split, grey


def load_data() -> tuple[Split, Split]:
    """``(x_train, y_train), (x_test, y_test)``: uint8 ``(60000, 28, 28)``, uint8 ``(60000,)``.

    Raises:
        DataNotFoundError: not on this machine; the message says how to get it.
    """
    from cnnkit.data.mnist import FASHION_MNIST, load_idx_source

    return grey(load_idx_source(FASHION_MNIST))
