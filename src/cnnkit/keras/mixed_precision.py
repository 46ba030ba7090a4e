"""``keras.mixed_precision``: the precision ``fit``, ``evaluate`` and ``predict`` compute in.

By default cnnkit.keras makes the engine's choice (``"auto"``, ``resolve_precision`` given
the model): bf16 autocast where the hardware computes it natively (CPUs with AVX512-BF16 or
AMX, CUDA GPUs with bf16), float32 elsewhere, and float32 on a CPU for models without
convolutions (there bf16's casts cost more than they save). Weights, gradients and
optimizer state stay float32 in every mode; only matmuls and convolutions run in bf16.
Keras's own default is float32: ``set_global_policy("float32")`` gives exactly that (slower
on such hardware).
``"mixed_bfloat16"`` asks for bf16 and ``"mixed_float16"`` for fp16 (CUDA GPUs, with loss
scaling).
"""

from __future__ import annotations

from cnnkit.errors import ConfigError
from cnnkit.keras.unsupported import missing

POLICIES = {"auto": "auto", "float32": "fp32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}
_SETTINGS = {"policy": "auto"}


def set_global_policy(policy: str) -> None:
    """``"auto"`` (the default: the engine's choice), ``"float32"`` (Keras's default),
    ``"mixed_bfloat16"`` or ``"mixed_float16"``."""
    name = getattr(policy, "name", policy)
    if name not in POLICIES:
        raise ConfigError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    _SETTINGS["policy"] = name


def global_policy() -> str:
    """The policy's name (``"auto"`` unless a program set another)."""
    return _SETTINGS["policy"]


def precision() -> str:
    """cnnkit's name for the current policy: ``auto``, ``fp32``, ``bf16`` or ``fp16``."""
    return POLICIES[_SETTINGS["policy"]]


__getattr__ = missing(
    __name__,
    {
        "Policy": "pass the policy's name to set_global_policy('mixed_bfloat16')",
        "LossScaleOptimizer": "cnnkit scales the loss itself under mixed_float16",
    },
)
