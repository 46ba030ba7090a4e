"""Exporting a trained run to ONNX and ``torch.export``, each checked against the PyTorch model.

``cnnkit export RUN`` writes into ``RUN/export/`` (or a folder of your choice):

- ``model.onnx`` — the model as an ONNX graph: input ``input``, float32 ``(batch, C, H, W)``
  already normalised, with a dynamic batch axis named ``batch``; output ``logits``
  ``(batch, K)`` (apply softmax for probabilities). The opset is recorded in the file and in
  ``export.json``. Runs in onnxruntime.
- ``model.pt2`` — the same model as a ``torch.export`` program
  (``torch.export.load("model.pt2").module()``), also with a dynamic batch axis; loading it
  needs no cnnkit and no model code.
- ``model.int8.onnx`` (with ``int8=True``, ``cnnkit export --int8``) — the ONNX graph
  statically quantised to int8 (:mod:`cnnkit.quantize`), calibrated on images of the run's
  training split; kept only when its top-1 accuracy on the whole check split is within
  :data:`cnnkit.quantize.MAX_DROP` points of the float32 file's.
- ``export.json`` — the run's metadata (class names in output order, the input spec with
  its fit rule, the normalisation ``(pixel / 255 - mean) / std``) and the parity figures.
  The same metadata is stored inside each file: ONNX ``metadata_props`` (keys ``cnnkit.*``)
  and the ``.pt2`` file's extra file ``cnnkit.json``.

Every file is checked after it is written: the saved file is loaded back (onnxruntime for
ONNX) and run on real images of the run's data, preprocessed exactly as in training; the
largest absolute difference of the logits and the top-1 agreement with the PyTorch model
are reported. An export whose logits differ by more than the tolerance is not kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from cnnkit.atomic import atomic_folder
from cnnkit.data.dataset import Dataset
from cnnkit.errors import ConfigError, ModelError, RunError
from cnnkit.models.forward import predict_logits
from cnnkit.onnx_runtime import (
    EXPORT_METADATA,
    INPUT_NAME,
    ONNX_FILES,
    OUTPUT_NAME,
    OnnxModel,
    batched,
    require_onnx,
    weights_digest,
)
from cnnkit.quantize import (
    CALIBRATION_IMAGES,
    MAX_DROP,
    Int8Check,
    accuracy_check,
    calibration_sample,
    quantize_onnx,
)
from cnnkit.run import Run

log = logging.getLogger(__name__)

FORMATS = ("onnx", "pt2")
ONNX_FILE = ONNX_FILES["onnx"]
INT8_FILE = ONNX_FILES["onnx-int8"]
PT2_FILE = "model.pt2"
METADATA_FILE = EXPORT_METADATA
METADATA_FORMAT = "cnnkit-export-model/1"
BATCH_AXIS = "batch"
OPSET = 18  # ONNX opset: 18 is what torch's exporter targets natively, onnxruntime >= 1.14 runs it
PARITY_SAMPLES = 1000  # images of the run's data each export is checked on (0 = the whole split)
# Largest |logit difference| accepted. Float32 graphs computed by another engine differ in
# summation order: LeNet's logits (magnitude ~10-30) differ by ~1e-5 between torch and
# onnxruntime; 1e-3 leaves room for deeper nets and still flags any real mismatch.
TOLERANCE = 1e-3


@dataclass(frozen=True)
class Parity:
    """How an exported file's outputs compare with the PyTorch model's on real images.

    Attributes:
        format: ``onnx`` or ``pt2``.
        file: the exported file's name.
        split: the split of the run's data the images came from.
        samples: how many images were compared.
        max_abs_diff: the largest absolute difference between the logits.
        top1_agree: images on which both give the same class.
        tolerance: the largest ``max_abs_diff`` accepted.
    """

    format: str
    file: str
    split: str
    samples: int
    max_abs_diff: float
    top1_agree: int
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    @property
    def agreement(self) -> float:
        """Top-1 agreement as a fraction of the images compared."""
        return self.top1_agree / self.samples if self.samples else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agreement": self.agreement, "passed": self.passed}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote: the folder, each file, and their parity checks."""

    folder: Path
    files: dict[str, Path]
    parity: dict[str, Parity]
    metadata: dict[str, Any]
    int8: Int8Check | None = None


def export_metadata(run: Run) -> dict[str, Any]:
    """What travels with an export: classes, input spec, normalisation, model and origin."""
    from cnnkit import __version__

    card = run.card
    pre = card.preprocessing  # the run's input contract
    model = card.model
    classes = list(card.classes)
    return {
        "format": METADATA_FORMAT,
        "run": card.name,
        "model": {
            "name": model.name,
            "parameters": model.parameters,
            "input_shape": list(model.input_shape),
            "num_classes": model.num_classes,
        },
        "data": card.data.source,
        "classes": classes,
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "layout": "NCHW",
            "shape": [BATCH_AXIS, *pre.input_shape],
            **pre.describe_input(),
        },
        "preprocessing": {
            **pre.to_dict(),
            "formula": "input = (pixel / 255 - mean[channel]) / std[channel]",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [BATCH_AXIS, len(classes)],
            "meaning": "logits; softmax gives the class probabilities, in the order of classes",
        },
        "cnnkit": __version__,
        "torch": torch.__version__,
        "weights_sha256": weights_digest(run.files.weights),
    }


def export_run(
    run: Run | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = FORMATS,
    opset: int = OPSET,
    split: str | None = None,
    samples: int = PARITY_SAMPLES,
    data_dir: str | None = None,
    tolerance: float = TOLERANCE,
    int8: bool = False,
    calibration: int = CALIBRATION_IMAGES,
    max_drop: float = MAX_DROP,
) -> ExportResult:
    """Export a run's model and check each file against the PyTorch model.

    Args:
        run: a run directory written by ``cnnkit train``.
        out: the folder to write (default ``RUN/export``); it is replaced as a whole, and
            only once every check passed.
        formats: ``onnx`` and/or ``pt2``.
        opset: the ONNX opset to target.
        split: the split of the run's data to check on (default: test, else val).
        samples: how many images of the split to check on; 0 means all of them.
        data_dir: read the run's data from this folder instead of the recorded one.
        tolerance: the largest absolute logit difference accepted.
        int8: also write ``model.int8.onnx``, statically quantised (needs ``onnx``).
        calibration: training images that calibrate the int8 ranges.
        max_drop: top-1 points the int8 file may lose against the float32 one, measured on
            the whole check split.

    Raises:
        ConfigError: an unknown format, bad numbers, or the ``export`` extra is missing.
        RunError: the run or its data cannot be read.
        ModelError: the model cannot be exported, an export differs from the model by
            more than ``tolerance``, or the int8 file loses more than ``max_drop`` points
            (nothing is written then).
    """
    run = run if isinstance(run, Run) else Run.open(run)
    chosen = _check_formats(formats)
    if int8 and "onnx" not in chosen:
        raise ConfigError("an int8 export is an ONNX file: add --format onnx, or drop --int8")
    if calibration < 1:
        raise ConfigError(f"calibration needs at least 1 image, got {calibration}")
    if not max_drop >= 0:
        raise ConfigError(f"max drop must be 0 or more points, got {max_drop}")
    if samples < 0:
        raise ConfigError(f"samples must be 0 (the whole split) or positive, got {samples}")
    if not tolerance > 0:
        raise ConfigError(f"tolerance must be positive, got {tolerance}")
    if "onnx" in chosen:
        require_onnx()
    split = split or run.card.data.default_split()
    dataset = run.load_data(split, data_dir=data_dir)
    images = dataset.images if samples == 0 else dataset.images[:samples]
    if len(images) == 0:
        raise RunError(f"the {split} split of {run.path} has no images to check the export on")
    model = run.load_model("cpu")
    pre = run.preprocessing
    reference = predict_logits(model, images, preprocessing=pre)
    metadata = export_metadata(run)
    target = Path(out) if out is not None else run.files.export

    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} exists and is not a folder; choose another --out")
    with atomic_folder(target, replace=True) as staging:
        program = _torch_export(model, pre(images[:2]))
        files: dict[str, Path] = {}
        parity: dict[str, Parity] = {}
        checks: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}  # uint8 -> logits
        if "pt2" in chosen:
            path = staging / PT2_FILE
            _save_pt2(program, path, metadata)
            loaded = torch.export.load(path).module()
            checks["pt2"] = lambda x: batched(lambda b: loaded(pre(b)), x)
            files["pt2"] = path
        if "onnx" in chosen:
            path = staging / ONNX_FILE
            metadata["onnx"] = {
                "file": ONNX_FILE,
                "opset": _save_onnx(program, path, metadata, opset),
            }
            session = OnnxModel(path)
            checks["onnx"] = session.logits  # uint8 in: normalised by the file's own metadata
            files["onnx"] = path
        if "pt2" in files:
            metadata["pt2"] = {"file": PT2_FILE, "load": "torch.export.load(file).module()"}
        for name, logits_of in checks.items():
            logits = logits_of(images)
            parity[name] = compare(
                name, files[name].name, reference, logits, split=split, tolerance=tolerance
            )
        metadata["parity"] = {name: p.to_dict() for name, p in parity.items()}
        failed = [p for p in parity.values() if not p.passed]
        if failed:
            worst = max(failed, key=lambda p: p.max_abs_diff)
            raise ModelError(
                f"the {worst.format} export differs from the PyTorch model: largest logit "
                f"difference {worst.max_abs_diff:.3g} > tolerance {worst.tolerance:g} on "
                f"{worst.samples} {split} images (top-1 agreement {worst.top1_agree}/"
                f"{worst.samples}); nothing was written. Try another --opset, or pass a larger "
                "--tolerance if the difference is acceptable"
            )
        check = None
        if int8:
            check = _int8_export(run, staging, dataset, split, data_dir, calibration, max_drop)
            files["int8"] = staging / INT8_FILE
            metadata["int8"] = check.to_dict()
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", "utf-8")
    files = {name: target / path.name for name, path in files.items()}
    files["metadata"] = target / METADATA_FILE
    log.info("exported %s to %s", run.path, target)
    return ExportResult(target, files, parity, metadata, check)


def _int8_export(
    run: Run,
    staging: Path,
    dataset: Dataset,
    split: str,
    data_dir: str | None,
    calibration: int,
    max_drop: float,
) -> Int8Check:
    """Quantise the staged ONNX file and check its accuracy on the whole check split."""
    train = run.load_data("train", data_dir=data_dir)
    if len(train) == 0:
        raise RunError(f"{run.path} has no training images to calibrate an int8 export on")
    chosen = calibration_sample(calibration, len(train))
    quantize_onnx(
        staging / ONNX_FILE,
        staging / INT8_FILE,
        run.preprocessing(train.images[chosen]),
        input_name=INPUT_NAME,
        metadata=onnx_metadata(staging / ONNX_FILE),
    )
    check = accuracy_check(
        INT8_FILE,
        OnnxModel(staging / ONNX_FILE).logits,
        OnnxModel(staging / INT8_FILE).logits,
        dataset.images,
        dataset.labels,
        split=split,
        calibration_images=len(chosen),
        max_drop=max_drop,
    )
    if not check.passed:
        raise ModelError(
            f"the int8 export loses {check.drop:.2f} top-1 points on {check.samples:,} {split} "
            f"images ({check.int8_accuracy * 100:.2f}% against float32's "
            f"{check.fp32_accuracy * 100:.2f}%; at most {max_drop:g} accepted); nothing was "
            "written. Export without --int8, or try more --calibration images"
        )
    return check


def compare(
    format: str,
    file: str,
    reference: torch.Tensor,
    logits: torch.Tensor,
    *,
    split: str,
    tolerance: float = TOLERANCE,
) -> Parity:
    """The parity of ``logits`` (an export's) with ``reference`` (the PyTorch model's)."""
    reference = torch.as_tensor(reference, dtype=torch.float32)
    logits = torch.as_tensor(logits, dtype=torch.float32)
    if logits.shape != reference.shape:
        raise ModelError(
            f"the {format} export gives logits of shape {tuple(logits.shape)}, the model "
            f"{tuple(reference.shape)}"
        )
    return Parity(
        format=format,
        file=file,
        split=split,
        samples=int(reference.shape[0]),
        max_abs_diff=float((logits - reference).abs().max()) if logits.numel() else 0.0,
        top1_agree=int((logits.argmax(1) == reference.argmax(1)).sum()),
        tolerance=tolerance,
    )


# -- internals ---------------------------------------------------------------------------


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.lower() for f in formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ConfigError(
            f"unknown export format {', '.join(unknown) or '(none)'}; choose from "
            f"{', '.join(FORMATS)}"
        )
    return chosen


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence torch's exporter chatter (missing-torchvision notes, internal deprecations)."""
    names = ("torch.onnx", "torch.export", "torch._export", "torch.fx", "onnxscript")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _torch_export(model: torch.nn.Module, example: torch.Tensor) -> Any:
    """``torch.export`` of ``model`` with a dynamic batch axis, traced on ``example``."""
    batch = torch.export.Dim(BATCH_AXIS, min=1, max=1 << 20)
    if len(example) < 2:  # a batch of one would fix the batch size at 1
        example = example.expand(2, *example.shape[1:]).clone()
    try:
        with _quiet_exporter():
            return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # torch.export raises many types for unsupported code
        raise ModelError(
            f"torch.export cannot trace {type(model).__name__} with a dynamic batch axis "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc


def _save_pt2(program: Any, path: Path, metadata: dict[str, Any]) -> None:
    torch.export.save(program, path, extra_files={"cnnkit.json": json.dumps(metadata)})


def _save_onnx(program: Any, path: Path, metadata: dict[str, Any], opset: int) -> int:
    """Write ``program`` as ONNX with cnnkit's metadata; returns the opset in the file."""
    import onnx

    try:
        with _quiet_exporter():
            exported = torch.onnx.export(
                program,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        raise ModelError(
            f"the ONNX exporter failed for opset {opset} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); try another --opset"
        ) from exc
    if exported is None:
        raise ModelError("the ONNX exporter returned nothing; try another --opset")
    proto = exported.model_proto
    _name_batch_axis(proto)
    props = {
        "cnnkit.format": metadata["format"],
        "cnnkit.run": metadata["run"],
        "cnnkit.classes": json.dumps(metadata["classes"]),
        "cnnkit.input": json.dumps(metadata["input"]),
        "cnnkit.preprocessing": json.dumps(metadata["preprocessing"]),
        "cnnkit.output": json.dumps(metadata["output"]),
        "cnnkit.model": json.dumps(metadata["model"]),
        "cnnkit.version": metadata["cnnkit"],
    }
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = (
        f"cnnkit run {metadata['run']}: {metadata['model'].get('name')} classifying "
        f"{len(metadata['classes'])} classes; see metadata_props cnnkit.*"
    )
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ModelError(f"the exported ONNX graph is invalid ({exc})") from exc
    onnx.save(proto, path)
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)


def _name_batch_axis(proto: Any) -> None:
    """Call the symbolic batch dimension ``batch`` everywhere (the exporter names it s0...)."""
    first = proto.graph.input[0].type.tensor_type.shape.dim[0]
    symbol = first.dim_param
    if not symbol or symbol == BATCH_AXIS:
        return
    graph = proto.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == symbol:
                dim.dim_param = BATCH_AXIS


def load_pt2_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The cnnkit metadata stored in an exported ``.pt2`` file."""
    extra = {"cnnkit.json": ""}
    torch.export.load(path, extra_files=extra)
    try:
        found: dict[str, Any] = json.loads(extra["cnnkit.json"])
    except ValueError as exc:
        raise ModelError(f"{path}: no cnnkit metadata in the file ({exc})") from exc
    return found


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``cnnkit.*`` metadata_props of an ONNX file."""
    require_onnx()
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props if p.key.startswith("cnnkit.")}
