"""``keras.mixed_precision``: the precision ``fit`` trains in.

As in Keras, models train in float32 unless a program asks for mixed precision:
``set_global_policy("mixed_bfloat16")`` (or ``"mixed_float16"`` on a GPU) makes ``fit`` run
matmuls and convolutions in that type through cnnkit's autocast, weights staying float32. (cnnkit's
own ``cnnkit train`` picks bf16 by itself where the hardware runs it natively; a Keras program
does not, because plain-SGD listings measurably learn slower when their tiny updates pass
through bf16.)
"""

from __future__ import annotations

from cnnkit.errors import ConfigError
from cnnkit.keras.unsupported import missing

POLICIES = {"float32": "fp32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}
_SETTINGS = {"policy": "float32"}


def set_global_policy(policy: str) -> None:
    """``"float32"`` (the default), ``"mixed_bfloat16"`` or ``"mixed_float16"``."""
    name = getattr(policy, "name", policy)
    if name not in POLICIES:
        raise ConfigError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    _SETTINGS["policy"] = name


def global_policy() -> str:
    return _SETTINGS["policy"]


def precision() -> str:
    """cnnkit's name for the current policy's precision: ``fp32``, ``bf16`` or ``fp16``."""
    return POLICIES[_SETTINGS["policy"]]


__getattr__ = missing(
    __name__,
    {
        "Policy": "pass the policy's name to set_global_policy('mixed_bfloat16')",
        "LossScaleOptimizer": "cnnkit scales the loss itself under mixed_float16",
    },
)
