"""Reading single image files for the interpretation commands (feature maps, Grad-CAM)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cnnkit.errors import DataError, DataNotFoundError


def read_image(path: str | os.PathLike[str], input_shape: tuple[int, int, int]) -> torch.Tensor:
    """Decode an image file into a model input of ``input_shape``.

    The image becomes grey (1 channel) or RGB (3 channels) as ``input_shape`` asks, and is
    resized (bilinear) to its height and width when it differs. Colours are not inverted:
    MNIST-like models expect light digits on a dark background.

    Args:
        path: any format Pillow decodes (PNG, JPEG, ...).
        input_shape: ``(C, H, W)`` with C of 1 or 3.

    Returns:
        uint8 tensor ``(C, H, W)``.

    Raises:
        DataNotFoundError: no such file.
        DataError: the file is not a decodable image, or C is not 1 or 3.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    channels, height, width = input_shape
    if channels not in (1, 3):
        raise DataError(
            f"the model takes {channels}-channel images; only grey (1) or RGB (3) image files "
            "can be fed to it"
        )
    file = Path(path)
    if not file.is_file():
        raise DataNotFoundError(f"{file}: no such image file")
    try:
        with Image.open(file) as opened:
            image = ImageOps.exif_transpose(opened)
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            array = np.array(image, dtype=np.uint8)  # a writable copy
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"{file}: cannot be read as an image ({exc})") from exc
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
