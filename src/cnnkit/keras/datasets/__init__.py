"""``keras.datasets``: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``.

``load_data()`` returns NumPy arrays exactly as Keras does (shapes, dtypes, label shapes), read
from cnnkit's sources: MNIST ships inside cnnkit; Fashion-MNIST and CIFAR are read from where
cnnkit finds them (``cnnkit data download ...`` or the Debian package), with cnnkit's "how to
get it" message when they are not there. Nothing is downloaded behind your back.
"""

from __future__ import annotations

from cnnkit.keras.datasets import cifar10, cifar100, fashion_mnist, mnist
from cnnkit.keras.unsupported import missing

__all__ = ["cifar10", "cifar100", "fashion_mnist", "mnist"]

__getattr__ = missing(
    __name__,
    {
        "imdb": "cnnkit.keras is for images: mnist, fashion_mnist, cifar10, cifar100",
        "reuters": "cnnkit.keras is for images: mnist, fashion_mnist, cifar10, cifar100",
        "boston_housing": "cnnkit.keras is for images: mnist, fashion_mnist, cifar10, cifar100",
        "california_housing": "cnnkit.keras is for images: mnist, fashion_mnist, cifar10, cifar100",
    },
)
