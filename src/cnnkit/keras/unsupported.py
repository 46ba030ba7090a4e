"""What Keras has and ``cnnkit.keras`` does not: one clear error naming the nearest form.

Each public module of ``cnnkit.keras`` ends with ``__getattr__ = missing(__name__, {...})``:
asking it for a Keras name it lacks raises :class:`UnsupportedFeature` (a
:class:`~cnnkit.errors.ConfigError`, and an ``AttributeError`` so ``hasattr`` and
``getattr(..., default)`` still work) saying what to use instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from cnnkit.errors import ConfigError, did_you_mean


class UnsupportedFeature(ConfigError, AttributeError):
    """A Keras feature cnnkit.keras does not offer; the message names the nearest one."""


def unsupported(feature: str, nearest: str) -> UnsupportedFeature:
    """The error for ``feature``: ``"... is not supported by cnnkit.keras; <nearest>"``."""
    return UnsupportedFeature(f"{feature} is not supported by cnnkit.keras; {nearest}")


def missing(module: str, nearest: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__``: known Keras names get their nearest form, others a list."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        public = module.replace("cnnkit.keras", "keras")
        if name in nearest:
            raise unsupported(f"{public}.{name}", nearest[name])
        offered = sorted(n for n in dir(sys.modules[module]) if not n.startswith("_"))
        raise UnsupportedFeature(
            f"{public}.{name} is not part of cnnkit.keras.{did_you_mean(name, offered)} "
            f"It offers: {', '.join(offered)}"
        )

    return __getattr__
