"""Predicting the classes of new images with a trained run.

One module serves ``cnnkit predict``, the Python API (:class:`Predictor`) and the web demo
(``cnnkit serve``), so all three see an image the same way:

1. the file (a path or its bytes) is decoded by the run's input contract
   (:meth:`Preprocessing.load <cnnkit.data.preprocess.Preprocessing.load>`, recorded on its
   card) to exactly the run's input: its channels (grey or RGB), its size, and the resize
   rule its training images were read with (``pad`` unless a folder source said otherwise);
2. the uint8 pixels are normalised by the same :class:`~cnnkit.data.preprocess.Preprocessing`
   and run through the model in batches: by onnxruntime when the run has a current
   ``cnnkit export`` (``engine="auto"`` on a CPU, several times faster), else by PyTorch
   (:func:`cnnkit.models.forward.predict_logits`);
3. softmax probabilities give the top-k classes, by name.

Folders are read as training reads a class folder (:func:`cnnkit.data.folder.list_files`):
every non-hidden file at any depth, sorted; files that do not decode as images are skipped
and listed.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from cnnkit.atomic import atomic_open
from cnnkit.data.folder import list_files, map_threads
from cnnkit.data.images import ImageSource
from cnnkit.devices import resolve_device
from cnnkit.errors import ConfigError, DataError, RunError
from cnnkit.evaluate.gradcam import GradCam, grad_cam
from cnnkit.models.forward import EVAL_BATCH, predict_logits
from cnnkit.models.probes import conv_layers
from cnnkit.onnx_runtime import ONNX_FILES, OnnxModel, current_export, onnxruntime_available
from cnnkit.run import Run

log = logging.getLogger(__name__)

TOP_K = 5  # classes listed per image by default
CHUNK = 4096  # images decoded and predicted per step: bounds memory on large folders
OUTPUT_FORMATS = (".csv", ".json")
ENGINES = ("auto", "torch", *ONNX_FILES)  # what runs the model: see Predictor


@dataclass(frozen=True)
class ClassScore:
    """One class and its probability."""

    index: int
    name: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.name, "index": self.index, "probability": self.probability}


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, most probable first.

    Attributes:
        source: the file (as given) or a label for an image that was not a file.
        top: the ``k`` most probable classes, in decreasing probability.
    """

    source: str
    top: tuple[ClassScore, ...]

    @property
    def best(self) -> ClassScore:
        """The predicted class."""
        return self.top[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "predicted": self.best.name,
            "probability": self.best.probability,
            "top": [score.to_dict() for score in self.top],
        }


@dataclass(frozen=True)
class Skipped:
    """A file of a folder that was not predicted, and why."""

    path: str
    reason: str


@dataclass
class FilePredictions:
    """What predicting a list of files gave: predictions in file order, and skipped files."""

    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class Predictor:
    """A run's model, loaded once, that classifies image files.

    Safe to share between threads: model calls are serialised (a Grad-CAM pass hooks a
    layer, and must see only its own forward pass); decoding runs in parallel.

    Example:
        >>> predictor = Predictor("runs/lenet-mnist")
        >>> predictor.predict(["seven.png"], top_k=3)[0].best.name
        '7'
    """

    def __init__(
        self, run: Run | str | os.PathLike[str], *, device: str = "auto", engine: str = "auto"
    ) -> None:
        """Open ``run`` and load its model on ``device`` (``auto``, ``cpu``, ``cuda[:N]``).

        ``engine`` says what runs the model: ``torch``; ``onnx`` or ``onnx-int8``, the files
        ``cnnkit export RUN`` (``--int8``) wrote into ``RUN/export``, in onnxruntime on the
        CPU; ``auto`` takes ``onnx`` on a CPU when onnxruntime is installed and the export
        was made from the run's current weights, else ``torch``. Grad-CAM always uses the
        PyTorch model (loaded when first needed).

        Raises:
            RunError: not a run directory, its model cannot be rebuilt, or the export an
                ONNX engine needs is missing or older than the weights.
            ConfigError: an unknown engine, or an ONNX engine without onnxruntime.
        """
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.run = run if isinstance(run, Run) else Run.open(run)
        self.device = resolve_device(device)
        card = self.run.card
        self.preprocessing = card.preprocessing  # the input contract: decoding and normalising
        self.classes = card.classes
        self.onnx = self._open_export(engine)
        self.engine = "torch" if self.onnx is None else engine if engine != "auto" else "onnx"
        if self.onnx is None:
            self.model  # noqa: B018  (load it now: a broken run fails here, not mid-request)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.run.path)!r}, device={str(self.device)!r}, "
            f"engine={self.engine!r})"
        )

    @cached_property
    def model(self) -> torch.nn.Module:
        """The run's PyTorch model on :attr:`device` (for Grad-CAM, and the torch engine)."""
        return self.run.load_model(self.device)

    @cached_property
    def explainable(self) -> bool:
        """True when the model has a convolution layer, so Grad-CAM can explain it."""
        return bool(conv_layers(self.model))

    def _open_export(self, engine: str) -> OnnxModel | None:
        if engine == "torch" or (engine == "auto" and self.device.type != "cpu"):
            return None
        if engine == "auto" and not onnxruntime_available():
            return None
        wanted = "onnx" if engine == "auto" else engine
        folder = self.run.files.export
        file = current_export(folder, self.run.files.weights, wanted)
        if file is None:
            if engine == "auto":
                log.info("no current ONNX export in %s: predicting with torch", folder)
                return None
            raise RunError(
                f"{folder / ONNX_FILES[wanted]}: missing or older than the run's weights; run "
                f"`cnnkit export {self.run.path}{' --int8' if wanted == 'onnx-int8' else ''}` "
                "first, or use --engine torch"
            )
        if self.device.type != "cpu":
            raise ConfigError(f"--engine {engine} runs on the CPU; drop --device {self.device}")
        log.info("predicting with onnxruntime: %s", file)
        return OnnxModel(file)

    # -- decoding --------------------------------------------------------------------------

    def load(
        self, source: ImageSource, *, max_pixels: int | None = None, name: str | None = None
    ) -> torch.Tensor:
        """One image file (path or bytes) decoded as the model's input: uint8 ``(C, H, W)``."""
        return torch.tensor(self.preprocessing.load(source, max_pixels=max_pixels, name=name))

    # -- predicting ------------------------------------------------------------------------

    def logits(self, images: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> torch.Tensor:
        """Logits ``(N, K)`` of uint8 images ``(N, C, H, W)`` of the run's input shape."""
        if self.onnx is not None:
            return self.onnx.logits(images)  # onnxruntime sessions are thread-safe
        with self._lock:
            return predict_logits(
                self.model,
                images,
                preprocessing=self.preprocessing,
                device=self.device,
                batch_size=batch_size,
            )

    def predict_images(
        self,
        images: torch.Tensor,
        *,
        top_k: int = TOP_K,
        sources: Sequence[str] | None = None,
    ) -> list[Prediction]:
        """Top-k classes of uint8 images ``(N, C, H, W)``.

        Args:
            images: already decoded images of the run's input shape.
            top_k: classes listed per image (at most the number of classes).
            sources: one label per image (default ``image 0``, ``image 1``, ...).
        """
        k = self._check_top_k(top_k)
        labels = (
            list(sources) if sources is not None else [f"image {i}" for i in range(len(images))]
        )
        if len(labels) != len(images):
            raise ConfigError(f"{len(labels)} source labels given for {len(images)} images")
        if len(images) == 0:
            return []
        probabilities = self.logits(images).softmax(dim=1)
        if not bool(torch.isfinite(probabilities).all()):  # finite weights can still overflow
            raise RunError(
                f"{self.run.path}: the model's outputs overflow to NaN or infinity on these "
                "images; its weights are unusable (train again, with a lower --lr)"
            )
        values, indices = probabilities.topk(k, dim=1)
        return [
            Prediction(
                source=label,
                top=tuple(
                    ClassScore(int(i), self.classes[int(i)], float(p))
                    for p, i in zip(row_values, row_indices, strict=True)
                ),
            )
            for label, row_values, row_indices in zip(
                labels, values.tolist(), indices.tolist(), strict=True
            )
        ]

    def predict(self, sources: Sequence[ImageSource], *, top_k: int = TOP_K) -> list[Prediction]:
        """Top-k classes of image files (paths or bytes), in order.

        Raises:
            DataError: a file is missing or is not a readable image.
        """
        self._check_top_k(top_k)
        images = [self.load(source) for source in sources]
        if not images:
            return []
        labels = [
            "<image bytes>" if isinstance(source, bytes | bytearray) else str(source)
            for source in sources
        ]
        return self.predict_images(torch.stack(images), top_k=top_k, sources=labels)

    def predict_files(
        self,
        paths: Sequence[Path],
        *,
        top_k: int = TOP_K,
        strict: frozenset[Path] | set[Path] = frozenset(),
        chunk: int = CHUNK,
    ) -> FilePredictions:
        """Top-k classes of many image files, decoded on threads and predicted in batches.

        Args:
            paths: the files, in the order wanted (see :func:`image_files`).
            top_k: classes listed per image.
            strict: files that must be images: one that is not raises instead of being
                skipped (the files named on the command line, as opposed to the files
                found in a folder).
            chunk: files decoded and predicted per step.

        Raises:
            DataError: a file in ``strict`` is not a readable image.
        """
        self._check_top_k(top_k)
        result = FilePredictions()
        for start in range(0, len(paths), chunk):
            part = paths[start : start + chunk]
            decoded = map_threads(self.preprocessing.load, part)
            images, sources = [], []
            for path, outcome in zip(part, decoded, strict=True):
                if isinstance(outcome, DataError):
                    if path in strict:
                        raise outcome
                    reason = str(outcome).removeprefix(f"{path}: ")
                    result.skipped.append(Skipped(str(path), reason))
                    log.info("skipping %s: %s", path, reason)
                    continue
                images.append(torch.tensor(outcome))  # a copy: decoded arrays may be read-only
                sources.append(str(path))
            if images:
                result.predictions.extend(
                    self.predict_images(torch.stack(images), top_k=top_k, sources=sources)
                )
        return result

    def explain(self, image: torch.Tensor, *, target: int | None = None) -> GradCam:
        """Grad-CAM of one uint8 image ``(C, H, W)`` at the last convolution layer.

        Args:
            image: a decoded image (:meth:`load`).
            target: the class to explain (default: the predicted class).

        Raises:
            ModelError: the model has no convolution layer (see :attr:`explainable`).
        """
        with self._lock:
            return grad_cam(
                self.model,
                image[None],
                preprocessing=self.preprocessing,
                targets=target,
                device=self.device,
            )

    def _check_top_k(self, top_k: int) -> int:
        if top_k < 1:
            raise ConfigError(f"top-k must be at least 1, got {top_k}")
        return min(top_k, len(self.classes))


def image_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], frozenset[Path]]:
    """The files to predict: each file named, and every non-hidden file under each folder.

    Returns:
        All files in order (folders expanded in place, sorted), and the set of files that
        were named directly (see :meth:`Predictor.predict_files`'s ``strict``).

    Raises:
        DataError: a path does not exist, or a folder holds no file.
    """
    files: list[Path] = []
    named: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = list_files(path)
            if not found:
                raise DataError(f"{path}: the folder holds no files to predict")
            files.extend(found)
        elif path.is_file():
            files.append(path)
            named.add(path)
        else:
            raise DataError(f"{path}: no such file or folder; pass image files or folders of them")
    return files, frozenset(named)


def save_predictions(path: str | os.PathLike[str], predictions: Sequence[Prediction]) -> Path:
    """Write predictions as CSV or JSON, chosen by the file's suffix; atomically.

    CSV columns: ``file``, ``predicted``, ``probability``, then ``class_2``,
    ``probability_2`` ... up to the k listed. JSON: a list of :meth:`Prediction.to_dict`.

    Raises:
        ConfigError: the suffix is neither ``.csv`` nor ``.json``.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ConfigError(
            f"{target}: cannot tell the output format; name a .csv or .json file (--out)"
        )
    if target.parent and not target.parent.is_dir():
        raise ConfigError(f"{target.parent}: no such folder for the output file (--out)")
    with atomic_open(target, "w") as handle:
        if suffix == ".json":
            json.dump([p.to_dict() for p in predictions], handle, indent=1)
            handle.write("\n")
            return target
        k = max((len(p.top) for p in predictions), default=1)
        header = ["file", "predicted", "probability"]
        for rank in range(2, k + 1):
            header += [f"class_{rank}", f"probability_{rank}"]
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for prediction in predictions:
            row = [prediction.source]
            for score in prediction.top:
                row += [score.name, f"{score.probability:.6g}"]
            writer.writerow(row)
    return target
