"""Numeric precision for training: fp32, or bf16/fp16 autocast chosen per device.

``auto`` picks bf16 where the hardware computes it natively (CPUs with AVX512-BF16 or AMX,
CUDA GPUs that report bf16 support), fp16 on older CUDA GPUs, and fp32 otherwise. Weights,
gradients and optimizer state stay fp32 in every mode; only the arithmetic of matmuls and
convolutions runs in the reduced type. fp16 also scales the loss so small gradients survive.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from cnnkit.devices import has_conv2d
from cnnkit.errors import ConfigError, did_you_mean

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A resolved precision for one device.

    Attributes:
        name: ``fp32``, ``bf16`` or ``fp16``.
        device_type: ``cpu`` or ``cuda``.
    """

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for fp32."""
        return _DTYPES.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which matmuls and convolutions run in :attr:`dtype`."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (a disabled, pass-through scaler otherwise)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); probed when called."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def resolve_precision(
    name: str, device: torch.device, model: torch.nn.Module | None = None
) -> Precision:
    """Turn ``auto``/``fp32``/``bf16``/``fp16`` into the precision used on ``device``.

    With ``model`` given, ``auto`` on a CPU keeps fp32 for a model without 2-D convolutions:
    there bf16's casts cost more than its matmuls save (an MLP 784-512-256-10 at batch 32:
    2.40 ms per step in bf16, 1.93 ms in fp32; LeNet: 62.5 ms in bf16, 115.7 ms in fp32).

    Raises:
        ConfigError: unknown name, or a reduced precision the device cannot run.
    """
    if name not in PRECISIONS:
        raise ConfigError(
            f"unknown precision {name!r}.{did_you_mean(name, PRECISIONS)} Choose one of "
            f"{', '.join(PRECISIONS)}"
        )
    device_type = device.type
    if name == "auto":
        if device_type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            pays = model is None or has_conv2d(model)
            name = "bf16" if pays and cpu_has_native_bf16() else "fp32"
    elif name == "bf16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{device} does not support bf16; use --precision fp16 or fp32")
    elif name == "fp16" and device_type == "cpu":
        raise ConfigError("fp16 training is for CUDA GPUs; on a CPU use --precision bf16 or fp32")
    return Precision(name=name, device_type=device_type)
