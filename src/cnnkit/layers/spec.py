"""Model specs: one format for models written in Python, YAML and JSON.

A spec is a mapping with a list of layers in Keras vocabulary::

    name: my_net                 # optional
    init: keras                  # optional: keras (default) | normal | torch
    layers:
      - Input: {shape: [1, 28, 28]}      # optional: the data's shape is used when absent
      - Conv2D: {filters: 32, kernel_size: 4, padding: same, activation: relu}
      - MaxPooling2D: 2                  # one positional argument
      - Conv2D: [64, 4]                  # positional arguments
      - Flatten                          # no arguments
      - Dense: {units: 1024, activation: relu}
      - Dense: {units: num_classes}      # the head: the data's class count

Each layer takes the previous layer's output unless it lists ``inputs`` (layer names), which
is how graphs are written (``Add: {inputs: [shortcut, conv2d_1]}``); the last layer is the
output. ``Model.get_config()`` returns this format, so Python, YAML and JSON models
round-trip to the same layers and parameters (the model writes its own spec: ``get_config``;
this module reads specs and files).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.atomic import atomic_open
from cnnkit.errors import ModelError, did_you_mean
from cnnkit.layers import LAYERS, Input, Layer, Model, Sequential, SymbolicTensor
from cnnkit.layers.base import InputLayer
from cnnkit.layers.init import initialize
from cnnkit.layers.model import assign_names

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SPEC_KEYS = ("name", "init", "input_shape", "layers")
NUM_CLASSES = "num_classes"  # placeholder a spec may use for the data's class count


# -- files ----------------------------------------------------------------------------------


def is_spec_path(model: str) -> bool:
    """Whether ``model`` names a spec file rather than a registered model."""
    return model.lower().endswith(SPEC_SUFFIXES) or os.sep in model


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a spec from a ``.yaml``/``.yml`` or ``.json`` file.

    Raises:
        ModelError: the file is missing, unreadable, or not a mapping.
    """
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"{file}: no such model spec file; pass a registry name (`cnnkit models`) "
            "or a .yaml/.json spec"
        ) from None
    except OSError as exc:
        raise ModelError(f"{file}: cannot read the model spec ({exc})") from exc
    try:
        spec = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ModelError(f"{file}: not valid {file.suffix.lstrip('.').upper()} ({exc})") from exc
    if not isinstance(spec, dict):
        raise ModelError(f"{file}: a model spec is a mapping with a 'layers' list")
    return spec


def save_spec(model: Model | Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a model's spec (or a spec mapping) as YAML or JSON, by the file's suffix."""
    import yaml

    file = Path(path)
    spec = model.get_config() if isinstance(model, Model) else dict(model)
    if file.suffix.lower() not in SPEC_SUFFIXES:
        raise ModelError(f"{file}: a spec file ends in {', '.join(SPEC_SUFFIXES)}")
    with atomic_open(file, "w") as handle:
        if file.suffix.lower() == ".json":
            json.dump(spec, handle, indent=2)
            handle.write("\n")
        else:
            yaml.safe_dump(spec, handle, sort_keys=False, default_flow_style=None)
    return file


# -- model <-> spec -------------------------------------------------------------------------


def model_from_spec(
    spec: Mapping[str, Any],
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    init: str | None = None,
    source: str = "spec",
) -> Model:
    """Build the model a spec describes.

    Args:
        spec: the mapping (see the module docstring).
        input_shape: the data's ``(C, H, W)``; must agree with the spec's Input when both
            are given.
        num_classes: the data's class count: replaces ``num_classes`` placeholders and must
            match the head's units.
        init: ``keras`` / ``normal`` / ``torch``; overrides the spec's ``init``.
        source: the file or origin, named in error messages.

    Raises:
        ModelError: an unknown layer or argument, a shape a layer cannot take, or a spec that
            disagrees with the data (each message names the layer and the shapes).
    """
    _check_keys(spec, source)
    entries = spec.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ModelError(f"{source}: 'layers' must be a non-empty list of layers")
    parsed = [_parse_entry(i, entry, source, num_classes) for i, entry in enumerate(entries)]
    shape, input_name = _input_shape(spec, parsed, input_shape, source)
    parsed = [p for p in parsed if p[1] not in ("Input", "InputLayer")]
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise ModelError(f"{source}: 'name' must be a string, got {name!r}")
    try:
        if not any("inputs" in kwargs for _, _, _, kwargs in parsed):
            layers = [
                _make_layer(i, kind, args, kwargs, source) for i, kind, args, kwargs in parsed
            ]
            model: Model = Sequential(layers, input_shape=shape, name=name)
        else:
            model = _functional(parsed, shape, input_name, name, source)
    except ModelError as exc:
        message = str(exc)
        raise ModelError(
            message if message.startswith(source) else f"{source}: {message}"
        ) from None
    scheme = init if init is not None else spec.get("init", "keras")
    if scheme != "keras":
        initialize(model, scheme)
    if num_classes is not None:
        check_classifier(model, num_classes, source)
    return model


def check_classifier(model: nn.Module, num_classes: int | None, source: str = "model") -> nn.Linear:
    """The model's linear Dense head; fails unless there is one (with ``num_classes``
    outputs)."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        output = model.output_layer if isinstance(model, Model) else None
        what = f"{output.describe()}" if output is not None else "its output"
        raise ModelError(
            f"{source}: {what} is not a Dense layer without activation; cnnkit trains "
            f"classifiers on logits, so end the model with Dense({num_classes or 'classes'}) "
            "and no activation (softmax is applied when predicting)"
        )
    if num_classes is not None and head.out_features != num_classes:
        raise ModelError(
            f"{source}: the output layer has {head.out_features} units but the data has "
            f"{num_classes} classes; write units: {NUM_CLASSES} to follow the data"
        )
    return head


def _check_keys(spec: Mapping[str, Any], source: str) -> None:
    if not isinstance(spec, Mapping):
        raise ModelError(f"{source}: a model spec is a mapping with a 'layers' list")
    for key in spec:
        if key not in SPEC_KEYS:
            raise ModelError(
                f"{source}: unknown key {key!r}.{did_you_mean(key, SPEC_KEYS)} "
                f"A spec has {', '.join(SPEC_KEYS)}"
            )


Parsed = tuple[int, str, list[Any], dict[str, Any]]


def _parse_entry(index: int, entry: Any, source: str, num_classes: int | None) -> Parsed:
    """``"Flatten"``, ``{"Dropout": 0.5}``, ``{"Conv2D": [32, 3]}`` or ``{"Dense": {...}}``."""
    if isinstance(entry, str):
        kind, value = entry, None
    elif isinstance(entry, Mapping) and len(entry) == 1:
        ((kind, value),) = entry.items()
    else:
        raise ModelError(
            f"{source}: layer {index + 1} must be a layer name or a one-key mapping such as "
            f"{{Conv2D: {{filters: 32, kernel_size: 3}}}}, got {entry!r}"
        )
    if kind not in LAYERS and kind != "Input":
        hint = did_you_mean(kind, [*LAYERS, "Input"], n=3)
        raise ModelError(
            f"{source}: layer {index + 1}: unknown layer type {kind!r}.{hint} "
            f"Known: {', '.join(sorted(LAYERS))}"
        )
    args: list[Any]
    kwargs: dict[str, Any]
    if value is None:
        args, kwargs = [], {}
    elif isinstance(value, Mapping):
        args, kwargs = [], dict(value)
    elif isinstance(value, list) and kind not in ("Input", "InputLayer", "Reshape"):
        args, kwargs = list(value), {}
    else:
        args, kwargs = [value], {}
    for key, item in list(kwargs.items()):
        if item == NUM_CLASSES:
            if num_classes is None:
                raise ModelError(
                    f"{source}: layer {index + 1} ({kind}) uses {NUM_CLASSES!r}; "
                    "give the class count (--num-classes)"
                )
            kwargs[key] = num_classes
    args = [num_classes if a == NUM_CLASSES and num_classes is not None else a for a in args]
    return index, kind, args, kwargs


def _input_shape(
    spec: Mapping[str, Any],
    parsed: list[Parsed],
    data_shape: Sequence[int] | None,
    source: str,
) -> tuple[tuple[int, ...] | None, str]:
    """The input shape from the spec and/or the data, which must agree."""
    declared, name = spec.get("input_shape"), "input"
    inputs = [p for p in parsed if p[1] in ("Input", "InputLayer")]
    if inputs:
        index, kind, args, kwargs = inputs[0]
        if index != 0 or len(inputs) > 1:
            raise ModelError(f"{source}: Input may only be the first layer, once")
        layer = _make_layer(index, kind, args, kwargs, source)
        if not isinstance(layer, InputLayer):  # only InputLayer passes the kind filter above
            raise ModelError(f"{source}: layer {index + 1} is not an Input")
        if declared is not None and tuple(declared) != layer.shape:
            raise ModelError(
                f"{source}: input_shape {tuple(declared)} and Input {layer.shape} disagree"
            )
        declared, name = layer.shape, layer.name or "input"
    spec_shape = None if declared is None else tuple(declared)
    data = None if data_shape is None else tuple(int(n) for n in data_shape)
    if spec_shape is not None and data is not None and spec_shape != data:
        raise ModelError(
            f"{source}: the spec's input shape is {spec_shape} but the data's images are "
            f"{data}; remove the Input layer to follow the data, or use data of that shape"
        )
    return (data if data is not None else spec_shape), name


def _make_layer(
    index: int, kind: str, args: list[Any], kwargs: dict[str, Any], source: str
) -> Layer:
    cls = LAYERS["InputLayer" if kind == "Input" else kind]
    kwargs = {k: v for k, v in kwargs.items() if k != "inputs"}
    parameters = inspect.signature(cls).parameters
    where = f"{source}: layer {index + 1} ({kind})"
    unknown = [k for k in kwargs if k not in parameters]
    if unknown:
        raise ModelError(
            f"{where}: unknown argument {unknown[0]!r}.{did_you_mean(unknown[0], parameters)} "
            f"{kind} takes {', '.join(parameters)}"
        )
    try:
        inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as exc:
        raise ModelError(f"{where}: {exc}; {kind} takes {', '.join(parameters)}") from None
    try:
        return cls(*args, **kwargs)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None


def _functional(
    parsed: list[Parsed],
    shape: tuple[int, ...] | None,
    input_name: str,
    name: str | None,
    source: str,
) -> Model:
    if shape is None:
        raise ModelError(
            f"{source}: a graph spec (layers with 'inputs') needs an input shape: start it "
            "with Input: {shape: [C, H, W]} or give --input-shape"
        )
    source_tensor = Input(shape, name=input_name)
    layers = [
        _make_layer(index, kind, args, kwargs, source) for index, kind, args, kwargs in parsed
    ]
    assign_names([source_tensor.layer, *layers])  # so that `inputs` may use default names
    tensors: dict[str, SymbolicTensor] = {input_name: source_tensor}
    previous = source_tensor
    for layer, (index, kind, _, kwargs) in zip(layers, parsed, strict=True):
        wanted = kwargs.get("inputs")
        if wanted is None:
            inputs = [previous]
        else:
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            missing = [n for n in names if n not in tensors]
            if missing:
                raise ModelError(
                    f"{source}: layer {index + 1} ({kind}) takes inputs {missing[0]!r}, which no "
                    f"earlier layer is named; earlier layers: {', '.join(tensors)}"
                )
            inputs = [tensors[n] for n in names]
        previous = layer(inputs)
        tensors[str(layer.name)] = previous
    return Model(source_tensor, previous, name=name)
