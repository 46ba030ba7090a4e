"""The model registry: named architectures built for an input shape and a class count.

Zoo modules register their builders with :func:`register_model`; the registry imports
the zoo modules listed in :data:`ZOO_MODULES` explicitly on first use (no star-import
side effects). Registering a name twice raises.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from cnnkit.errors import ModelError, unknown_name

ZOO_MODULES = (
    "cnnkit.models.zoo.lenet",
    "cnnkit.models.zoo.textbook",
    "cnnkit.models.zoo.resnet",
    "cnnkit.models.zoo.efficientnet_lite",
    "cnnkit.models.adapter",
    "cnnkit.models.zoo.fast",
    "cnnkit.keras.models",
)

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture."""

    name: str
    builder: Builder
    description: str
    default_input_shape: tuple[int, int, int]
    listed: bool = True  # False: rebuilt from run cards only, not offered by `cnnkit models`


_REGISTRY: dict[str, ModelEntry] = {}
_zoo_loaded = False


def register_model(
    name: str,
    *,
    description: str,
    default_input_shape: tuple[int, int, int] = (1, 28, 28),
    listed: bool = True,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(input_shape=..., num_classes=..., **kwargs)``;
    ``listed=False`` for a model only run cards name (left out of :func:`list_models`).

    Raises:
        ModelError: ``name`` is already registered.
    """

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ModelError(
                f"model {name!r} is already registered (by {_REGISTRY[name].builder.__module__})"
            )
        _REGISTRY[name] = ModelEntry(name, builder, description, default_input_shape, listed)
        return builder

    return decorate


def _load_zoo() -> None:
    global _zoo_loaded
    if not _zoo_loaded:
        _zoo_loaded = True
        for module in ZOO_MODULES:
            importlib.import_module(module)


def list_models() -> list[ModelEntry]:
    """Every listed registered model, sorted by name."""
    _load_zoo()
    return [_REGISTRY[name] for name in sorted(_REGISTRY) if _REGISTRY[name].listed]


def get_model_entry(name: str) -> ModelEntry:
    """The entry for ``name``; unknown names fail with "did you mean"."""
    _load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name(ModelError, "model", name, _REGISTRY, "models", n=3) from None


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int = 10,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``name``.

    Args:
        name: registry name (``cnnkit models`` lists them).
        input_shape: ``(C, H, W)``; the model's default when omitted.
        num_classes: size of the classifier output.
        **kwargs: model-specific options (e.g. ``init="normal"``, ``dropout=0.2``).

    Raises:
        ModelError: unknown name or an option the model does not take.
    """
    entry = get_model_entry(name)
    shape = tuple(input_shape) if input_shape is not None else entry.default_input_shape
    accepted = inspect.signature(entry.builder).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        options = sorted(set(accepted) - {"input_shape", "num_classes"})
        raise ModelError(
            f"model {name!r} takes no option {', '.join(unknown)}; "
            f"its options are: {', '.join(options) or 'none'}"
        )
    if num_classes < 1:
        raise ModelError(f"num_classes must be at least 1, got {num_classes}")
    return entry.builder(input_shape=shape, num_classes=num_classes, **kwargs)
