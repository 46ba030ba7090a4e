"""``keras.optimizers``: Keras's optimizers and defaults, built as cnnkit's (fused) torch ones.

Each object holds Keras's hyper-parameters; ``fit`` turns it into the torch optimizer through
:func:`cnnkit.train.optim.make_optimizer` (fused kernels where torch has them) and keeps it
across ``fit`` calls until the next ``compile``. ``learning_rate`` reads and sets the rate while
training too (callbacks may change it). The pre-2.11 spelling ``lr=`` is accepted with a warning.

Where Keras and torch differ: ``weight_decay`` is decoupled (AdamW-style) only in ``AdamW``;
in the others it is torch's L2 penalty added to the gradient.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch

from cnnkit.errors import ConfigError
from cnnkit.keras.unsupported import missing, unsupported
from cnnkit.train.optim import make_optimizer


class Optimizer:
    """Base: ``learning_rate`` plus the torch optimizer it becomes."""

    kind = ""
    default_lr = 0.001
    hyper: tuple[str, ...] = ()  # the attributes besides the rate that get_config records

    def __init__(
        self,
        learning_rate: float | None = None,
        weight_decay: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if "lr" in kwargs:
            warnings.warn(
                "`lr` is deprecated in Keras; use `learning_rate` instead",
                UserWarning,
                stacklevel=3,
            )
            learning_rate = kwargs.pop("lr")
        for key, value in kwargs.items():
            if key in ("clipnorm", "clipvalue", "global_clipnorm") and value is not None:
                raise unsupported(f"{type(self).__name__}({key}=...)", "drop it")
            if key in ("use_ema", "amsgrad", "centered") and value:
                raise unsupported(f"{type(self).__name__}({key}=True)", "drop it")
            if key not in (
                "clipnorm",
                "clipvalue",
                "global_clipnorm",
                "use_ema",
                "amsgrad",
                "centered",
                "ema_momentum",
                "ema_overwrite_frequency",
                "loss_scale_factor",
                "gradient_accumulation_steps",
                "decay",
            ):
                raise ConfigError(f"{type(self).__name__} got an unexpected argument {key!r}")
        rate = self.default_lr if learning_rate is None else learning_rate
        if not isinstance(rate, int | float):
            raise unsupported(
                "a learning-rate schedule object",
                "give a number and use keras.callbacks.LearningRateScheduler or ReduceLROnPlateau",
            )
        if rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {rate}")
        self._learning_rate = float(rate)
        self.weight_decay = float(weight_decay or 0.0)
        self.name = name or self.kind
        self.torch: torch.optim.Optimizer | None = None  # built by fit
        self.lr_scale_of: Any = None  # the engine's state while fit runs

    # -- the rate, live during training ----------------------------------------------------------

    @property
    def learning_rate(self) -> float:
        if self.lr_scale_of is not None:
            return self._learning_rate * float(self.lr_scale_of.lr_scale)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self.lr_scale_of is not None:  # training: scale the engine's base rate
            self.lr_scale_of.lr_scale = float(value) / self._learning_rate
        else:
            self._learning_rate = float(value)
            if self.torch is not None:
                for group in self.torch.param_groups:
                    group["lr"] = group["initial_lr"] = float(value)

    lr = learning_rate

    # -- torch -----------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """Keyword arguments of :func:`make_optimizer` besides the rate."""
        return {}

    def tune(self, optimizer: torch.optim.Optimizer) -> None:
        """Set Keras's defaults that make_optimizer leaves at torch's (epsilon, betas)."""

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        optimizer = make_optimizer(
            self.kind,
            params,
            lr=self._learning_rate,
            weight_decay=self.weight_decay,
            **self.settings(),
        )
        self.tune(optimizer)
        self.torch = optimizer
        return optimizer

    def get_config(self) -> dict[str, Any]:
        return {
            "learning_rate": self._learning_rate,
            "weight_decay": self.weight_decay,
            **{key: getattr(self, key) for key in self.hyper},
        }


class SGD(Optimizer):
    """``SGD(learning_rate=0.01, momentum=0.0, nesterov=False)``."""

    kind, default_lr = "sgd", 0.01
    hyper = ("momentum", "nesterov")

    def __init__(
        self,
        learning_rate: float | None = None,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, weight_decay, **kwargs)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def settings(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)``."""

    kind = "adam"
    hyper = ("beta_1", "beta_2", "epsilon")

    def __init__(
        self,
        learning_rate: float | None = None,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, weight_decay, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def tune(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["betas"], group["eps"] = (self.beta_1, self.beta_2), self.epsilon


class AdamW(Adam):
    """``AdamW(learning_rate=0.001, weight_decay=0.004, ...)``: decoupled weight decay."""

    kind = "adamw"

    def __init__(
        self, learning_rate: float | None = None, weight_decay: float = 0.004, **kwargs: Any
    ) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7)``."""

    kind = "rmsprop"
    hyper = ("rho", "momentum", "epsilon")

    def __init__(
        self,
        learning_rate: float | None = None,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, weight_decay, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)

    def settings(self) -> dict[str, Any]:
        return {"momentum": self.momentum}

    def tune(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["alpha"], group["eps"] = self.rho, self.epsilon


class Adagrad(Optimizer):
    """``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)``."""

    kind = "adagrad"
    hyper = ("epsilon",)

    def __init__(
        self,
        learning_rate: float | None = None,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, weight_decay, **kwargs)
        if initial_accumulator_value != 0.1:
            raise unsupported(
                f"Adagrad(initial_accumulator_value={initial_accumulator_value})", "use 0.1"
            )
        self.epsilon = float(epsilon)

    def tune(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["eps"] = self.epsilon


CLASSES: dict[str, type[Optimizer]] = {
    cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)
}


def get(identifier: str | Optimizer | dict[str, Any]) -> Optimizer:
    """An optimizer from a name (``"adam"``), an object or a saved ``{"class", "config"}``."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return CLASSES[identifier["class"]](**identifier.get("config", {}))
    by_name = {name.lower(): cls for name, cls in CLASSES.items()}
    if isinstance(identifier, str) and identifier.lower() in by_name:
        return by_name[identifier.lower()]()
    raise unsupported(f"optimizer {identifier!r}", f"use one of {', '.join(CLASSES)}")


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    return {"class": type(optimizer).__name__, "config": optimizer.get_config()}


class _Schedules:
    def __getattr__(self, name: str) -> Any:
        raise unsupported(
            f"keras.optimizers.schedules.{name}",
            "give a number as learning_rate and use keras.callbacks.LearningRateScheduler "
            "(or ReduceLROnPlateau)",
        )


schedules = _Schedules()

__getattr__ = missing(
    __name__,
    {
        "Adadelta": "use Adam or RMSprop",
        "Adamax": "use Adam",
        "Nadam": "use Adam, or SGD(momentum=0.9, nesterov=True)",
        "Ftrl": "use Adam",
        "Lion": "use AdamW",
        "Lamb": "use AdamW",
        "LossScaleOptimizer": "cnnkit scales the loss itself when training in fp16",
    },
)
