"""``model.save_run(path)``: a fitted ``cnnkit.keras`` model as a cnnkit run folder.

The folder is what ``cnnkit train`` writes (run card, weights, history, metrics), so
``cnnkit evaluate / predict / report / export / serve`` work on it. Two things are recorded so
that those commands feed the model exactly what ``fit`` fed it:

- **the input scale**: the arrays given to ``fit`` were pixels times ``scale`` plus
  ``offset`` (``x / 255`` is ``scale=1/255``; raw uint8 or 0..255 floats ``scale=1``). It is
  read from the arrays ``fit`` saw (uint8, or floats within 0..1 or 0..255) or given; the run's
  normalisation ``(x / 255 - mean) / std`` is set to reproduce it exactly.
- **the model**: the registered model ``keras`` (left out of ``cnnkit models``) whose option
  ``config`` is the model's Keras description (:func:`cnnkit.keras.saving.model_config`).
  The run loader rebuilds it (:func:`cnnkit.keras.models.keras_model`) behind
  :class:`RunModel`: images ``(N, C, H, W)`` are laid out as the model's input was
  (channels last, or flat vectors in Keras's ``H, W, C`` order), and the outputs are
  logits as every cnnkit model's (a single sigmoid unit ``z`` becomes the two
  logits ``(0, z)``, whose softmax is exactly ``(1 - sigmoid(z), sigmoid(z))``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.card import DataRecord, Environment, ModelRecord, RunCard, timestamp
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ConfigError
from cnnkit.keras.saving import model_config
from cnnkit.run import Run

NAME = "keras"  # the registered model a run card names


class RunModel(nn.Module):
    """A Keras model behind cnnkit's run contract: normalised images ``(N, C, H, W)`` in,
    logits ``(N, K)`` out."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.user_shape = tuple(model.input_shape[1:])
        self.channels_last = model.data_format == "channels_last"
        outputs = int(model._outputs())
        self.binary = outputs == 1 and model._output_activation == "sigmoid"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.movedim(1, -1) if self.channels_last else images
        x = x.reshape(x.shape[0], *self.user_shape)  # flat vectors: Keras's (H, W, C) order
        if self.channels_last and x.ndim >= 3:
            x = x.movedim(-1, 1)
        logits = self.model.logits(x)
        if self.binary:
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        return logits


def run_image_shape(model: Any, given: Sequence[int] | None) -> tuple[int, int, int]:
    """The run's image ``(C, H, W)``: from ``given`` (written as the model's data format
    writes images), else from the model's input (an image, or a square grey flat vector)."""
    user = tuple(int(n) for n in given) if given is not None else tuple(model.input_shape[1:])
    last = model.data_format == "channels_last"
    if len(user) == 3:
        return (user[2], user[0], user[1]) if last else (user[0], user[1], user[2])
    if len(user) == 2:
        return (1, user[0], user[1])
    side = math.isqrt(user[0]) if len(user) == 1 else 0
    if side * side == user[0] and side > 0:
        return (1, side, side)
    raise ConfigError(
        f"the model takes inputs of shape {model.input_shape}, which is not an image: give "
        "save_run(image_shape=(height, width, channels)) for the pictures its vectors came from"
    )


def input_scale(model: Any, scale: float | None, offset: float) -> tuple[float, float]:
    """``(scale, offset)`` with ``fit``'s inputs = pixels * scale + offset."""
    if scale is not None:
        if not scale > 0:
            raise ConfigError(f"scale must be positive, got {scale}")
        return float(scale), float(offset)
    record = model.last_fit
    dtype, low, high = record.input_range
    if dtype == "uint8" or (low >= 0 and 1 < high <= 255):
        return 1.0, 0.0
    if low >= 0 and high <= 1:
        return 1 / 255, 0.0
    raise ConfigError(
        f"fit was given values from {low:g} to {high:g}, not pixels in 0..1 or 0..255: give "
        "save_run(scale=..., offset=...) with your inputs = pixels * scale + offset"
    )


def save_run(
    model: Any,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    data: str | None = None,
    scale: float | None = None,
    offset: float = 0.0,
    image_shape: Sequence[int] | None = None,
) -> Run:
    """Write the fitted model as a cnnkit run folder ``path`` (a new folder), for
    ``cnnkit evaluate / predict / report / export / serve`` (``model.save_run(path, ...)``).

    Args:
        class_names: the class of each output (default: the dataset's, or "0", "1"...).
        data: the cnnkit data source the model was trained on (``"mnist"``,
            ``"fashion-mnist"``, ``"folder:PATH"``...): ``cnnkit evaluate RUN`` then uses
            its test split; without it, pass ``--data`` to the commands.
        scale, offset: ``fit``'s inputs were pixels (0..255) times ``scale`` plus
            ``offset``; by default read from them (uint8 or 0..255: 1; 0..1: 1/255).
        image_shape: the pictures behind flat input vectors, as ``(height, width,
            channels)`` (default: a square grey picture).

    Returns:
        The :class:`cnnkit.run.Run`.
    """
    record = model.last_fit
    if record is None:
        raise ConfigError("save_run writes a fitted model: call model.fit(...) first")
    wrapped = RunModel(model)
    classes = 2 if wrapped.binary else int(model._outputs())
    names = list(class_names or record.class_names or [str(i) for i in range(classes)])
    if len(names) != classes:
        raise ConfigError(f"class_names names {len(names)} classes; the model has {classes}")
    shape = run_image_shape(model, image_shape)
    if math.prod(shape) != math.prod(wrapped.user_shape):
        raise ConfigError(
            f"image_shape {tuple(image_shape or ())} holds {math.prod(shape)} values; the "
            f"model takes {math.prod(wrapped.user_shape)}"
        )
    factor, shift = input_scale(model, scale, offset)
    std = 1 / (255 * factor)  # (p / 255 - mean) / std == p * factor + shift
    preprocessing = Preprocessing(shape, (-shift * std,) * shape[0], (std,) * shape[0])
    if data is not None:
        from cnnkit.data.sources import load_dataset

        found = load_dataset(data)
        if tuple(found.train.classes) != tuple(names):
            raise ConfigError(
                f"data {data!r} has classes {list(found.train.classes)[:10]}, the model "
                f"{names[:10]}; give the source the model was trained on"
            )
    target = Path(path)
    run = Run.create(target.parent, target.name)
    device = next(model.parameters()).device
    run.write_card(
        RunCard(
            name=run.path.name,
            created=timestamp(record.started),
            config={
                "api": "cnnkit.keras",
                "epochs": len(record.rows),
                "batch_size": record.batch_size,
                "optimizer": type(model.optimizer).__name__,
                "loss": type(model._compiled.loss).__name__,
                "input_scale": factor,
                "input_offset": shift,
            },
            model=ModelRecord(
                name=NAME,
                input_shape=shape,
                num_classes=classes,
                options={"config": model_config(model)},
                parameters=sum(p.numel() for p in model.parameters()),
            ),
            data=DataRecord(source=data or "", classes=tuple(names)),
            preprocessing=preprocessing,
            environment=Environment.describe(device),
        )
    )
    run.save_weights(wrapped)
    run.write_json(run.files.history, record.rows)
    last = record.rows[-1] if record.rows else {}
    split = "val" if "val_loss" in last else "train"
    prefix = "val_" if split == "val" else ""
    metrics = {
        split: {k: float(last[prefix + k]) for k in ("loss", "accuracy") if prefix + k in last}
    }
    run.finish(metrics, history=record.rows, started=record.started, training=record.training)
    return run
