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


def prefers_channels_last(model: torch.nn.Module, device: torch.device, reduced: bool) -> bool:
    """Whether ``model`` should run channels-last on ``device``: when it has 2-D convolutions
    and runs on a CPU (oneDNN), or in reduced precision (``reduced``) on a GPU — measured
    faster there, and not for fp32 convolutions on a GPU."""
    return has_conv2d(model) and (device.type == "cpu" or reduced)


def has_conv2d(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds a 2-D convolution."""
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
