"""Learning-rate schedules: a factor on the base learning rate for every optimizer step.

A schedule is a pure function of the step number, so it needs no state of its own to save
or restore: the loop sets ``lr = base_lr * schedule.factor(step) * plateau_scale`` before
each step (``plateau_scale`` is what :class:`~cnnkit.train.callbacks.ReduceLROnPlateau`
lowers). Names:

- ``constant``: the base learning rate throughout;
- ``step``: multiply by ``gamma`` every ``every`` epochs (defaults 0.1 and a third of training);
- ``cosine``: half a cosine from 1 down to ``final`` over the run;
- ``onecycle``: linear ramp up to the base rate over the first ``peak`` fraction of training
  (default 0.25), then linear down to ``final`` (the triangular schedule fast recipes use).

Any schedule can start with a linear warm-up of ``warmup`` epochs (``cosine:warmup=1``).
Written as ``name`` or ``name:key=value,key=value`` on the command line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from cnnkit.errors import ConfigError, did_you_mean

SCHEDULES = ("constant", "step", "cosine", "onecycle")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule (see the module docstring for the names).

    Attributes:
        name: ``constant``, ``step``, ``cosine`` or ``onecycle``.
        warmup: epochs of linear warm-up from almost 0 to the base rate (may be fractional).
        every: ``step``: epochs between decays (None = a third of the run).
        gamma: ``step``: factor per decay.
        final: ``cosine``/``onecycle``: factor reached at the last step.
        peak: ``onecycle``: fraction of the run spent ramping up.
    """

    name: str = "constant"
    warmup: float = 0.0
    every: int | None = None
    gamma: float = 0.1
    final: float = 0.0
    peak: float = 0.25

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.name!r}.{did_you_mean(self.name, SCHEDULES)} "
                f"Choose one of {', '.join(SCHEDULES)}"
            )
        if self.warmup < 0 or (self.every is not None and self.every < 1):
            raise ConfigError(
                f"schedule {self.name}: warmup must be >= 0 and every >= 1 epoch, "
                f"got warmup={self.warmup}, every={self.every}"
            )
        if not 0 < self.peak < 1 or not 0 <= self.final <= 1 or not 0 < self.gamma <= 1:
            raise ConfigError(
                f"schedule {self.name}: need 0 < peak < 1, 0 <= final <= 1 and 0 < gamma <= 1, "
                f"got peak={self.peak}, final={self.final}, gamma={self.gamma}"
            )

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``"cosine"``, ``"step:every=5,gamma=0.5"``, ``"onecycle:peak=0.2,final=0.05"``."""
        name, _, options = text.partition(":")
        known = {f.name: f.type for f in fields(cls)} if options else {}
        values: dict[str, Any] = {}
        for pair in filter(None, options.split(",")):
            key, sep, value = pair.partition("=")
            key = key.strip()
            if not sep or key not in known or key == "name":
                raise ConfigError(
                    f"schedule option {pair!r} in {text!r} must be key=value with key one of "
                    "warmup, every, gamma, final, peak"
                )
            try:
                values[key] = int(value) if key == "every" else float(value)
            except ValueError:
                raise ConfigError(f"schedule option {pair!r} needs a number") from None
        return cls(name=name.strip(), **values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def factor(self, step: int, *, steps_per_epoch: int, total_steps: int) -> float:
        """The multiplier on the base learning rate for optimizer step ``step`` (from 0)."""
        warm = round(self.warmup * steps_per_epoch)
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))  # 0..1 after warm-up
        if self.name == "step":
            every = self.every or max(1, math.ceil(total_steps / steps_per_epoch / 3))
            return float(self.gamma ** ((step // steps_per_epoch) // every))
        if self.name == "cosine":
            return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * progress))
        if self.name == "onecycle":
            if progress < self.peak:
                return (progress + 1 / max(1, total_steps)) / self.peak
            return self.final + (1 - self.final) * (1 - progress) / (1 - self.peak)
        return 1.0
