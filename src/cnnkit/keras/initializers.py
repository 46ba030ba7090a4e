"""``keras.initializers``: Keras's starting weights by name or object.

Fans are counted as Keras counts them (a conv kernel: kernel height x width x input channels
in, x filters out); the normal variants of the variance-scaling family are truncated at two
standard deviations, with Keras's correction, as Keras 3 draws them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnnkit.keras.unsupported import missing, unsupported

_TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


class Initializer:
    """Fills a weight tensor in place; ``get_config`` names its arguments."""

    def __call__(self, tensor: torch.Tensor) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}


class VarianceScaling(Initializer):
    def __init__(
        self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal"
    ) -> None:
        if mode not in ("fan_in", "fan_out", "fan_avg") or distribution not in (
            "truncated_normal",
            "untruncated_normal",
            "uniform",
        ):
            raise unsupported(
                f"VarianceScaling(mode={mode!r}, distribution={distribution!r})",
                "mode is fan_in/fan_out/fan_avg; distribution truncated_normal/"
                "untruncated_normal/uniform",
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, tensor: torch.Tensor) -> None:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(tensor)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        with torch.no_grad():
            if self.distribution == "uniform":
                limit = math.sqrt(3.0 * variance)
                tensor.uniform_(-limit, limit)
            elif self.distribution == "untruncated_normal":
                tensor.normal_(0.0, math.sqrt(variance))
            else:
                std = math.sqrt(variance) / _TRUNCATED_STD
                nn.init.trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std)

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


class _Preset(VarianceScaling):
    """A named member of the family: its scale, mode and distribution are fixed, so its
    config is empty (``serialize`` then ``get`` makes it again)."""

    preset: tuple[float, str, str]

    def __init__(self, seed: None = None) -> None:
        super().__init__(*self.preset)

    def get_config(self) -> dict[str, Any]:
        return {}


class GlorotUniform(_Preset):
    preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    preset = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_Preset):
    preset = (2.0, "fan_in", "truncated_normal")


class HeUniform(_Preset):
    preset = (2.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    preset = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    preset = (1.0, "fan_in", "uniform")


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: None = None) -> None:
        self.mean, self.stddev = mean, stddev

    def __call__(self, tensor: torch.Tensor) -> None:
        with torch.no_grad():
            tensor.normal_(self.mean, self.stddev)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    def __call__(self, tensor: torch.Tensor) -> None:
        low, high = self.mean - 2 * self.stddev, self.mean + 2 * self.stddev
        nn.init.trunc_normal_(tensor, self.mean, self.stddev, low, high)


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: None = None) -> None:
        self.minval, self.maxval = minval, maxval

    def __call__(self, tensor: torch.Tensor) -> None:
        with torch.no_grad():
            tensor.uniform_(self.minval, self.maxval)

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval}


class Constant(Initializer):
    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)

    def __call__(self, tensor: torch.Tensor) -> None:
        with torch.no_grad():
            tensor.fill_(self.value)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class _Fixed(Constant):
    """A constant with its value in its name: nothing to configure."""

    fixed: float

    def __init__(self) -> None:
        super().__init__(self.fixed)

    def get_config(self) -> dict[str, Any]:
        return {}


class Zeros(_Fixed):
    fixed = 0.0


class Ones(_Fixed):
    fixed = 1.0


BY_NAME: dict[str, type[Initializer]] = {
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
    "lecun_normal": LecunNormal,
    "lecun_uniform": LecunUniform,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
}
_NAMES = {cls: name for name, cls in BY_NAME.items()}


def get(identifier: str | Initializer | dict[str, Any]) -> Initializer:
    """An initializer from a name (``"he_normal"``), an object or a saved ``{"class", ...}``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return BY_NAME[identifier["class"]](**identifier.get("config", {}))
    if isinstance(identifier, str) and identifier.lower() in BY_NAME:
        return BY_NAME[identifier.lower()]()
    raise unsupported(f"initializer {identifier!r}", f"choose one of {', '.join(BY_NAME)}")


def serialize(initializer: Initializer) -> dict[str, Any]:
    """``{"class": name, "config": {...}}``: what a saved model records."""
    return {"class": _NAMES[type(initializer)], "config": initializer.get_config()}


__getattr__ = missing(
    __name__,
    {
        "Orthogonal": "use 'glorot_uniform' (the default) or 'he_normal'",
        "Identity": "use 'glorot_uniform' (the default)",
    },
)
