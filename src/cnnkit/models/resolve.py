"""A model from whatever names it, and the run card's record to build it again.

:func:`resolve_model` turns a registry name, a spec file, a spec mapping or a
:class:`~cnnkit.layers.Model` into the module to train plus its ``model`` record;
:func:`rebuild_model` makes the same model from that record alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.errors import ModelError
from cnnkit.layers import Model, Sequential
from cnnkit.layers.init import initialize
from cnnkit.layers.spec import check_classifier, is_spec_path, load_spec, model_from_spec
from cnnkit.models.registry import build_model, get_model_entry


def describe_model(model: str | Mapping[str, Any] | nn.Module) -> str:
    """A short label: the registry name, the spec's name or file stem."""
    if isinstance(model, str):
        return Path(model).stem if is_spec_path(model) else model
    if isinstance(model, Mapping):
        return str(model.get("name") or "spec")
    return str(getattr(model, "name", None) or type(model).__name__.lower())


def resolve_model(
    model: str | Mapping[str, Any] | nn.Module,
    *,
    input_shape: Sequence[int] | None,
    num_classes: int | None,
    options: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The module to train and the run card's ``model`` record for it.

    Args:
        model: a registry name, a spec file path (``.yaml``/``.yml``/``.json``), a spec
            mapping, or a :class:`~cnnkit.layers.Model` built in Python (used as is).
        input_shape: the data's ``(C, H, W)`` (None: the model's default or the spec's).
        num_classes: the data's class count (None: the model's default or the spec's).
        options: registry model options (e.g. ``init``); spec models take only ``init``.

    Returns:
        ``(module, record)``; ``record`` has ``name``, ``options``, ``input_shape`` and
        ``num_classes``, plus ``spec`` for models built from layers, so
        :func:`rebuild_model` can make the same model from the record alone.
    """
    options = dict(options or {})
    if isinstance(model, str) and not is_spec_path(model):
        entry = get_model_entry(model)
        shape = tuple(input_shape) if input_shape is not None else entry.default_input_shape
        classes = 10 if num_classes is None else num_classes
        module = build_model(model, input_shape=shape, num_classes=classes, **options)
        return module, {
            "name": model,
            "options": options,
            "input_shape": list(shape),
            "num_classes": classes,
        }
    unknown = sorted(set(options) - {"init"})
    if unknown:
        raise ModelError(f"a model built from a spec takes only the option init, not {unknown[0]}")
    label = describe_model(model)
    if isinstance(model, Model):
        built = _use_python_model(model, input_shape, options)
    elif isinstance(model, str | Mapping):
        spec = load_spec(model) if isinstance(model, str) else model
        source = model if isinstance(model, str) else "spec"
        built = model_from_spec(
            spec,
            input_shape=input_shape,
            num_classes=num_classes,
            init=options.get("init"),
            source=source,
        )
    else:
        raise ModelError(
            f"cannot record a {type(model).__name__} in a run directory: pass a registry name, "
            "a spec file or mapping, or a cnnkit.layers.Model (for any other nn.Module, call "
            "cnnkit.fit directly)"
        )
    if built.input_shape is None:
        raise ModelError(
            f"{label}: the model has no input shape; start it with an Input layer or give "
            "the input shape (--input-shape C,H,W)"
        )
    head = check_classifier(built, num_classes, label)
    record: dict[str, Any] = {
        "name": label,
        "options": options,
        "input_shape": list(built.input_shape),
        "num_classes": head.out_features,
        "spec": built.get_config(),
    }
    return built, record


def _use_python_model(
    model: Model, input_shape: Sequence[int] | None, options: Mapping[str, Any]
) -> Model:
    if input_shape is not None:
        if model.input_shape is None and isinstance(model, Sequential):
            model.build(input_shape)
        elif model.input_shape != tuple(input_shape):
            raise ModelError(
                f"the model is built for input {model.input_shape} but the data's images are "
                f"{tuple(input_shape)}"
            )
    if "init" in options:
        initialize(model, options["init"])
    return model


def rebuild_model(record: Mapping[str, Any]) -> nn.Module:
    """The model a run card's ``model`` record describes, freshly initialised.

    Raises:
        KeyError: the record lacks a key.
        ModelError: the record does not describe a buildable model.
    """
    shape = tuple(record["input_shape"])
    classes = int(record["num_classes"])
    if "spec" in record:
        return model_from_spec(
            record["spec"], input_shape=shape, num_classes=classes, source="run record"
        )
    return build_model(
        record["name"], input_shape=shape, num_classes=classes, **record.get("options", {})
    )
