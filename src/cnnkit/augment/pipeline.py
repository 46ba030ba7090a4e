"""A pipeline: transforms applied in order, each to each image with its own probability.

The same :class:`Pipeline` object serves ``cnnkit augment`` (files) and ``cnnkit train
--augment`` (batches on the training device), so what a preview shows is what training
applies. It keeps its batch in float32 between steps and rounds once at the end, so uint8
in gives uint8 out, identical whichever path ran it.

Every random choice is drawn by :meth:`Pipeline.sample` from an explicit
:class:`torch.Generator`; :meth:`Pipeline.records` turns one image's draws into plain JSON
values (only the steps that acted on it) and :meth:`Pipeline.params_from_records` turns such
records back into parameters, so an image can be regenerated exactly from a manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cnnkit.augment.mixing import Mixing, MixTransform
from cnnkit.augment.transforms import Params, Transform, check_batch, from_working, to_working
from cnnkit.errors import ConfigError


class Pipeline:
    """Transforms in order; optionally one label-mixing transform (mixup/cutmix) last.

    Args:
        transforms: the steps, e.g. ``[Rotate(p=0.9, max_left=25, max_right=25), FlipLR()]``.

    Raises:
        ConfigError: a mixing transform that is not the last step, or more than one.
    """

    def __init__(self, transforms: Sequence[Transform] = ()) -> None:
        steps = tuple(transforms)
        for position, step in enumerate(steps):
            if not isinstance(step, Transform):
                raise ConfigError(f"augmentation step {position + 1} is not a transform: {step!r}")
            if isinstance(step, MixTransform) and position != len(steps) - 1:
                raise ConfigError(
                    f"{step.name} mixes images and labels of the whole batch: put it last "
                    "(and use at most one of mixup and cutmix)"
                )
        self.steps = steps
        last = steps[-1] if steps else None
        self.mixing: MixTransform | None = last if isinstance(last, MixTransform) else None
        self.per_image = steps[:-1] if self.mixing is not None else steps

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(self.describe())})"

    def describe(self) -> list[str]:
        """One spec string per step (what :func:`cnnkit.augment.spec.parse_augment` reads)."""
        return [step.describe() for step in self.steps]

    # -- per-image transforms ----------------------------------------------------------

    def sample(
        self, n: int, shape: tuple[int, int, int], generator: torch.Generator
    ) -> list[Params]:
        """Draw every per-image step's parameters for ``n`` images of shape ``(C, H, W)``."""
        return [step.sample(n, shape, generator) for step in self.per_image]

    def apply(self, images: torch.Tensor, params: Sequence[Params]) -> torch.Tensor:
        """Apply the per-image steps with ``params``: ``(N, C, H, W)`` -> same shape, dtype."""
        check_batch(images)
        if not any(bool(p["apply"].any()) for p in params):
            return images
        x = to_working(images)
        for step, step_params in zip(self.per_image, params, strict=True):
            x = step.apply_working(x, step_params)
        return from_working(x, images.dtype)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sample and apply the per-image steps (mixing, which needs labels, is left out)."""
        check_batch(images)
        c, h, w = images.shape[1:]
        return self.apply(images, self.sample(len(images), (c, h, w), generator))

    # -- training batches --------------------------------------------------------------

    def augment_batch(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, Mixing | None]:
        """Augment one training batch: every step, mixing included.

        Args:
            images: ``(N, C, H, W)`` uint8 (or float 0..255) on the training device.
            labels: ``(N,)`` class indices on the same device.
            generator: the CPU generator every draw comes from.

        Returns:
            The augmented batch (same shape and dtype) and, when mixup/cutmix is a step, the
            :class:`Mixing` that gives the soft targets (``mixing.targets(num_classes)``).
        """
        images = self(images, generator)
        if self.mixing is None:
            return images, None
        c, h, w = images.shape[1:]
        params = self.mixing.sample(len(images), (c, h, w), generator)
        mixed, mixing = self.mixing.mix(to_working(images), labels, params)
        return from_working(mixed, images.dtype), mixing

    # -- records -----------------------------------------------------------------------

    def records(self, params: Sequence[Params], index: int) -> list[dict[str, Any]]:
        """The steps that acted on image ``index``, with their drawn parameters as JSON
        values: ``[{"step": 0, "op": "rotate", "angle": -12.5}, ...]``."""
        found = []
        for position, (step, step_params) in enumerate(zip(self.per_image, params, strict=True)):
            if not bool(step_params["apply"][index]):
                continue
            record: dict[str, Any] = {"step": position, "op": step.name}
            for key, value in step_params.items():
                if key != "apply":
                    record[key] = value[index].tolist()
            found.append(record)
        return found

    def params_from_records(
        self, records: Sequence[Sequence[dict[str, Any]]], shape: tuple[int, int, int]
    ) -> list[Params]:
        """Parameters for ``len(records)`` images from their :meth:`records`, exactly.

        Raises:
            ConfigError: a record names a step this pipeline does not have.
        """
        n = len(records)
        template = torch.Generator().manual_seed(0)  # only for the parameters' shapes/dtypes
        params = [step.sample(n, shape, template) for step in self.per_image]
        for p in params:
            p["apply"] = torch.zeros(n, dtype=torch.bool)
        for i, image_records in enumerate(records):
            for record in image_records:
                position = record.get("step")
                if not isinstance(position, int) or not 0 <= position < len(self.per_image):
                    raise ConfigError(f"record {record} names no step of {self.describe()}")
                step = self.per_image[position]
                if record.get("op") != step.name:
                    raise ConfigError(
                        f"record {record} is for {record.get('op')!r} but step {position} is "
                        f"{step.name!r}; the manifest belongs to another pipeline"
                    )
                target = params[position]
                target["apply"][i] = True
                for key, value in target.items():
                    if key == "apply":
                        continue
                    if key not in record:
                        raise ConfigError(f"record {record} lacks the parameter {key!r}")
                    target[key][i] = torch.tensor(record[key], dtype=value.dtype)
        return params

    def captions(self, records: Sequence[dict[str, Any]]) -> list[str]:
        """Short words per applied step, for a preview grid."""
        return [self.per_image[r["step"]].caption(r) for r in records]
