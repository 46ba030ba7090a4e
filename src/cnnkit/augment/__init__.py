"""Augmentation: one vocabulary of batched transforms, offline (files) and online (training).

- :mod:`~cnnkit.augment.transforms`: the per-image transforms (rotate, skew, distort, shear,
  zoom, crop, translate, flips, brightness, contrast, erase, cutout);
- :mod:`~cnnkit.augment.mixing`: mixup and cutmix (training only: they mix labels);
- :mod:`~cnnkit.augment.pipeline`: :class:`Pipeline`, transforms in order, recorded and
  replayable;
- :mod:`~cnnkit.augment.spec`: the spec format shared by Python, CLI flags and YAML;
- :mod:`~cnnkit.augment.source`: the images to augment, from a folder or a data source;
- :mod:`~cnnkit.augment.offline`: those images -> augmented PNGs + manifest, and back;
- :mod:`~cnnkit.augment.manifest`: reading and checking ``augment-manifest.json``;
- :mod:`~cnnkit.augment.preview`: a grid of originals next to their augmentations.
"""

from cnnkit.augment.mixing import CutMix, Mixing, Mixup
from cnnkit.augment.pipeline import Pipeline
from cnnkit.augment.spec import parse_augment
from cnnkit.augment.transforms import (
    Brightness,
    Contrast,
    Crop,
    Cutout,
    Distort,
    Erase,
    FlipLR,
    FlipTB,
    Rotate,
    Shear,
    Skew,
    Translate,
    Zoom,
)

__all__ = [
    "Brightness",
    "Contrast",
    "Crop",
    "CutMix",
    "Cutout",
    "Distort",
    "Erase",
    "FlipLR",
    "FlipTB",
    "Mixing",
    "Mixup",
    "Pipeline",
    "Rotate",
    "Shear",
    "Skew",
    "Translate",
    "Zoom",
    "parse_augment",
]
