"""cnnkit's datasets as Keras's ``load_data()`` arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnkit.data.dataset import Dataset

Split = tuple[np.ndarray, np.ndarray]


def grey(parts: dict[str, Dataset]) -> tuple[Split, Split]:
    """MNIST-like: images uint8 ``(N, 28, 28)``, labels uint8 ``(N,)``."""
    return tuple(  # type: ignore[return-value]
        (parts[s].images[:, 0].numpy(), parts[s].labels.numpy().astype(np.uint8))
        for s in ("train", "test")
    )


def colour(parts: dict[str, Dataset], label_dtype: Any) -> tuple[Split, Split]:
    """CIFAR: images uint8 ``(N, 32, 32, 3)``, labels ``(N, 1)``."""
    return tuple(  # type: ignore[return-value]
        (
            np.ascontiguousarray(parts[s].images.numpy().transpose(0, 2, 3, 1)),
            parts[s].labels.numpy().astype(label_dtype)[:, None],
        )
        for s in ("train", "test")
    )
