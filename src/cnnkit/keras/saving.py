"""The files of ``cnnkit.keras`` models: cnnkit's safe format under any file name.

``model.save("model.keras")`` writes a zip holding ``model.json`` (the layers with their Keras
arguments, the wiring, the compile settings; format-versioned) and ``model.safetensors`` (the
weights). ``save_weights`` writes the safetensors alone. Nothing is pickled, so loading a file
cannot run code. Keras's own ``.keras``/``.h5`` files (TensorFlow weights) are not readable here:
the error says so. :func:`cnnkit.keras.models.load_model` rebuilds a model from these files.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from cnnkit import layers as base
from cnnkit.atomic import write_path_atomically
from cnnkit.errors import ModelError, RunError
from cnnkit.keras import optimizers
from cnnkit.keras.layers import LAYERS, InputLayer

FORMAT = 1
SPEC, WEIGHTS = "model.json", "model.safetensors"
_HDF5 = b"\x89HDF\r\n\x1a\n"


def model_config(model: Any) -> dict[str, Any]:
    """What ``model.json`` holds: the layers with their Keras arguments, the wiring, the
    input and the compile settings (JSON values only)."""
    source, layout = model._source_layer(), model.data_format
    if not isinstance(source, InputLayer):
        raise ModelError("the model has no keras.Input yet; build it (or fit it) before saving")
    layers = []
    for layer, inputs in model.nodes:
        args = getattr(layer, "keras_args", None)
        if args is None or type(layer).__name__ not in LAYERS:
            raise ModelError(f"{layer.describe()} is not a cnnkit.keras layer and cannot be saved")
        layers.append(
            {
                "class": type(layer).__name__,
                "config": {**args, "name": layer.name},
                "inbound": list(inputs),
            }
        )
    spec: dict[str, Any] = {
        "format": FORMAT,
        "kind": "sequential" if isinstance(model, base.Sequential) else "functional",
        "name": model.name,
        "input": {
            "shape": list(source.keras_input_shape),
            "data_format": layout,
            "name": source.name,
        },
        "layers": layers,
    }
    compiled = model._compiled
    if compiled is not None:
        spec["compile"] = {
            "optimizer": optimizers.serialize(compiled.optimizer),
            "loss": None
            if compiled.loss is None
            else {"class": type(compiled.loss).__name__, "config": compiled.loss.get_config()},
            "metrics": [
                {"class": type(m).__name__, "config": m.get_config()} for m in compiled.metrics
            ],
        }
    return spec


def _state(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def _check_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise RunError(f"{path} exists; pass overwrite=True to replace it")


def save_model(model: Any, filepath: str | os.PathLike[str], *, overwrite: bool = True) -> None:
    path = Path(filepath)
    _check_overwrite(path, overwrite)
    spec = json.dumps(model_config(model), indent=1)
    weights = save_bytes(_state(model))

    def write(tmp: Any) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(SPEC, spec)
            archive.writestr(WEIGHTS, weights)

    write_path_atomically(path, write)


def save_weights(model: Any, filepath: str | os.PathLike[str], *, overwrite: bool = True) -> None:
    path = Path(filepath)
    _check_overwrite(path, overwrite)
    data = save_bytes(_state(model))
    write_path_atomically(path, lambda tmp: Path(tmp).write_bytes(data))


def read_model_file(path: Path) -> tuple[dict[str, Any] | None, bytes]:
    """(spec or None, safetensors bytes) of a file this module wrote."""
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    head = path.read_bytes()[:8]
    if head == _HDF5:
        raise RunError(
            f"{path} is a Keras/TensorFlow HDF5 file; cnnkit.keras reads the files it writes "
            "itself (model.save / save_weights), not TensorFlow weights"
        )
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if SPEC not in names or WEIGHTS not in names:
                raise RunError(
                    f"{path} is a zip without {SPEC} and {WEIGHTS}: not a model cnnkit.keras "
                    "saved (a Keras 3 .keras file holds TensorFlow weights cnnkit cannot read)"
                )
            try:
                spec = json.loads(archive.read(SPEC))
            except json.JSONDecodeError as exc:
                raise RunError(f"{path}: {SPEC} is not valid JSON ({exc})") from exc
            return spec, archive.read(WEIGHTS)
    return None, path.read_bytes()


def _tensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return load_bytes(data)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise RunError(f"{path} is not a weights file cnnkit.keras wrote ({exc})") from exc


def load_weights(model: Any, filepath: str | os.PathLike[str]) -> None:
    path = Path(filepath)
    apply_weights(model, path, read_model_file(path)[1])


def apply_weights(model: Any, path: Path, data: bytes) -> None:
    """Copy the weights in ``data`` into ``model``; they must match it key for key."""
    tensors = _tensors(path, data)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for what, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("other shape", wrong),
            )
            if keys
        )
        raise RunError(f"{path} holds weights of another architecture ({details})")
    with torch.no_grad():
        for key, value in own.items():
            value.copy_(tensors[key])
