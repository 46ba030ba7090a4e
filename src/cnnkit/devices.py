"""Choosing the compute device. Probed only when asked, never at import."""

from __future__ import annotations

import torch

from cnnkit.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given.

    Raises:
        ConfigError: the device is unknown or not present on this machine.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but no CUDA GPU is available; use --device cpu"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"device type {device.type!r} is not supported; use auto, cpu or cuda[:N]"
        )
    return device
