"""``keras.utils``: ``to_categorical``, ``set_random_seed``, ``normalize``,
``image_dataset_from_directory``."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnkit.errors import DataError
from cnnkit.keras.backend import set_random_seed
from cnnkit.keras.directory import image_dataset_from_directory
from cnnkit.keras.unsupported import missing


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """Integer class labels ``(N,)`` or ``(N, 1)`` -> one-hot float32 rows ``(N, K)``, as Keras.

    Raises:
        DataError: labels that are not whole numbers, negative, or not below ``num_classes``.
    """
    labels = np.asarray(x)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.size and (labels.dtype.kind not in "biuf" or np.any(np.mod(labels, 1) != 0)):
        raise DataError(f"to_categorical takes whole-number class labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    count = int(labels.max()) + 1 if num_classes is None and labels.size else num_classes or 0
    if labels.size and (labels.min() < 0 or labels.max() >= count):
        raise DataError(f"labels {labels.min()}..{labels.max()} do not fit num_classes={count}")
    out = np.zeros((*labels.shape, count), dtype=np.float32)
    np.put_along_axis(out, labels[..., None], 1.0, axis=-1)
    return out


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """Scale ``x`` to unit ``order``-norm along ``axis`` (zeros stay zeros)."""
    values = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(values, ord=order, axis=axis, keepdims=True)
    return values / np.where(norm == 0, 1, norm)


__all__ = [
    "image_dataset_from_directory",
    "normalize",
    "set_random_seed",
    "to_categorical",
]

__getattr__ = missing(
    __name__,
    {
        "plot_model": "use model.summary()",
        "Sequence": "give fit arrays (x, y)",
        "PyDataset": "give fit arrays (x, y)",
        "load_img": "use cnnkit.load_image(path)",
        "img_to_array": "use numpy.asarray(image)",
        "get_file": "cnnkit reads its datasets offline: keras.datasets.mnist.load_data()",
    },
)
