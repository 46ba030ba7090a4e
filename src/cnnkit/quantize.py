"""int8 ONNX files: static quantisation calibrated on a run's own training images.

:func:`quantize_onnx` turns the float32 ONNX file :mod:`cnnkit.export` wrote into an int8 one
with onnxruntime's static quantiser: weights int8 per output channel, activations uint8 with
ranges measured on calibration images (``QDQ`` format, which every onnxruntime build runs).
The calibration images are drawn from the run's *training* split, never from the split the
result is judged on; :func:`accuracy_check` then compares the int8 file's top-1 accuracy
with the float32 file's on the whole check split, and the export is kept only when it lost at
most :data:`MAX_DROP` points.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import ModelError

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 512  # training images whose activations set the int8 ranges
CALIBRATION_BATCH = 64
CALIBRATION_SEED = 0  # which training images: a fixed draw, so an export is reproducible
MAX_DROP = 0.5  # top-1 points an int8 file may lose against float32 on the check split


@dataclass(frozen=True)
class Int8Check:
    """How the int8 file's top-1 accuracy compares with the float32 file's.

    Attributes:
        file: the int8 file's name.
        split: the split of the run's data the accuracies are measured on.
        samples: how many images of it.
        fp32_accuracy: top-1 of the float32 ONNX file, as a fraction.
        int8_accuracy: top-1 of the int8 file, as a fraction.
        agreement: images on which both files give the same class, as a fraction.
        calibration_split: where the calibration images came from (``train``).
        calibration_images: how many calibration images set the activation ranges.
        max_drop: the largest loss in top-1 points accepted.
    """

    file: str
    split: str
    samples: int
    fp32_accuracy: float
    int8_accuracy: float
    agreement: float
    calibration_split: str
    calibration_images: int
    max_drop: float = MAX_DROP

    @property
    def drop(self) -> float:
        """Top-1 points lost (negative: the int8 file scored higher)."""
        return (self.fp32_accuracy - self.int8_accuracy) * 100

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop_points": self.drop, "passed": self.passed}


def calibration_sample(count: int, available: int) -> torch.Tensor:
    """Indices of ``count`` calibration images out of ``available``, a fixed random draw."""
    generator = torch.Generator().manual_seed(CALIBRATION_SEED)
    return torch.randperm(available, generator=generator)[: min(count, available)]


def quantize_onnx(
    source: Path,
    target: Path,
    inputs: torch.Tensor,
    *,
    input_name: str,
    metadata: dict[str, str],
) -> None:
    """Write ``target``: ``source`` statically quantised to int8, calibrated on ``inputs``.

    Args:
        source: a float32 ONNX file with one image input.
        target: where to write the int8 file.
        inputs: normalised float inputs ``(N, C, H, W)``, as the model receives them.
        input_name: the graph's input name.
        metadata: ``metadata_props`` to store in the int8 file (the float file's).

    Raises:
        ModelError: onnxruntime cannot quantise the graph.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [
        inputs[i : i + CALIBRATION_BATCH].float().contiguous().numpy()
        for i in range(0, len(inputs), CALIBRATION_BATCH)
    ]

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime is untyped
        def __init__(self) -> None:
            self.pending = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.pending, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="cnnkit-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared))
            quantize_static(
                str(prepared),
                str(target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        except Exception as exc:  # the quantiser raises many types for graphs it can't take
            raise ModelError(
                f"onnxruntime cannot quantise the model to int8 ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); export without --int8"
            ) from exc
    model = onnx.load(str(target))
    del model.metadata_props[:]
    for key, value in {**metadata, "cnnkit.precision": "int8"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))


def accuracy_check(
    file: str,
    fp32: Callable[[torch.Tensor], torch.Tensor],
    int8: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    split: str,
    calibration_images: int,
    max_drop: float = MAX_DROP,
) -> Int8Check:
    """Top-1 of the float32 and int8 files (uint8 images in, logits out) on labelled images."""
    fp32_pred = fp32(images).argmax(1)
    int8_pred = int8(images).argmax(1)
    count = len(labels)
    return Int8Check(
        file=file,
        split=split,
        samples=count,
        fp32_accuracy=float((fp32_pred == labels).sum()) / count,
        int8_accuracy=float((int8_pred == labels).sum()) / count,
        agreement=float((fp32_pred == int8_pred).sum()) / count,
        calibration_split="train",
        calibration_images=calibration_images,
        max_drop=max_drop,
    )
