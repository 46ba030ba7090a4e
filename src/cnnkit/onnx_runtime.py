"""Running an exported ONNX file in onnxruntime, and finding a run's current export.

:class:`OnnxModel` is the reader of the files ``cnnkit export`` writes: uint8 images in,
logits out, normalised by the preprocessing stored inside the file. :func:`current_export`
tells whether a run's ``export/`` folder still matches the run's weights (``export.json``
records their SHA-256), so ``cnnkit predict`` and ``cnnkit serve`` can run the file instead
of the PyTorch model (several times faster on a CPU) without ever using a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ConfigError, ModelError, RunError
from cnnkit.models.forward import EVAL_BATCH

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EXPORT_METADATA = "export.json"  # in the export folder, beside the files
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}  # engine -> file


def require_onnx(*, export: bool = True) -> None:
    """Raise a ConfigError naming the extra when onnxruntime (and, to export, onnx and
    onnxscript) is missing."""
    names = ("onnxruntime", "onnx", "onnxscript") if export else ("onnxruntime",)
    for name in names:
        try:
            __import__(name)
        except ImportError as exc:
            action = "ONNX export" if export else "running an ONNX file"
            raise ConfigError(
                f"{action} needs the export extra ({name} is missing): pip install 'cnnkit[export]'"
            ) from exc


def onnxruntime_available() -> bool:
    try:
        require_onnx(export=False)
    except ConfigError:
        return False
    return True


def batched(function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``function`` applied to ``x`` in slices of :data:`EVAL_BATCH`, concatenated."""
    with torch.no_grad():
        return torch.cat([function(x[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])


def weights_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weights file: what ties an export to the weights it was made from."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_export(folder: Path, weights: Path, engine: str) -> Path | None:
    """The ONNX file of ``engine`` in ``folder`` when it was exported from ``weights`` as
    they are now; None when it is missing, unreadable or older than the weights."""
    file = folder / ONNX_FILES[engine]
    try:
        recorded = json.loads((folder / EXPORT_METADATA).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or not file.is_file() or not weights.is_file():
        return None
    return file if recorded.get("weights_sha256") == weights_digest(weights) else None


class OnnxModel:
    """An exported ONNX file in onnxruntime, with the preprocessing stored in it.

    Example:
        >>> model = OnnxModel("runs/lenet-mnist/export/model.onnx")
        >>> model.classes[int(model.logits(images_uint8).argmax(1)[0])]
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open ``path`` in onnxruntime (CPU) and read its cnnkit metadata.

        Raises:
            ConfigError: onnxruntime (the ``export`` extra) is not installed.
            ModelError: the file is not an ONNX model, or has no cnnkit metadata.
        """
        require_onnx(export=False)
        import onnxruntime

        self.path = Path(path)
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.path}: onnxruntime cannot load the file ({exc})") from exc
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.classes = tuple(json.loads(props["cnnkit.classes"]))
            self.preprocessing = Preprocessing.from_dict(json.loads(props["cnnkit.preprocessing"]))
        except (KeyError, ValueError, RunError) as exc:
            raise ModelError(
                f"{self.path}: no cnnkit metadata in the ONNX file ({exc}); export it with "
                "`cnnkit export RUN`"
            ) from exc

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"

    def logits_of_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` of normalised float inputs ``(N, C, H, W)``."""
        return batched(
            lambda batch: torch.from_numpy(
                self.session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]
            ),
            inputs.float().contiguous(),
        )

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` of uint8 images ``(N, C, H, W)``, normalised as in training."""
        return batched(lambda batch: self.logits_of_inputs(self.preprocessing(batch)), images)
