"""Learned convolution filters: reading them, and recording them while a model trains.

:class:`FilterRecorder` is a training callback that saves the first convolution's weights at
chosen epochs into ``<run>/filters/epoch-NNN.npy`` (epoch 0 = the initial weights), so the
report can show the filters forming.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from torch import nn

from cnnkit.atomic import atomic_open
from cnnkit.errors import ConfigError, ModelError
from cnnkit.models.probes import conv_layers, conv_module, find_layer
from cnnkit.run_files import FILTERS_DIR
from cnnkit.train.callbacks import Callback, Logs

_RECORD = re.compile(r"epoch-(\d+)\.npy")


def filter_weights(model: nn.Module, layer: str | None = None) -> tuple[str, np.ndarray]:
    """A convolution's weights, float32 ``(out_channels, in_channels, *kernel)``.

    Args:
        model: any model with a convolution layer.
        layer: a module name; default the first convolution.

    Raises:
        ModelError: no convolution, no such layer, or the layer has no weight tensor.
    """
    if layer is None:
        convs = conv_layers(model)
        if not convs:
            find_layer(model)  # raises the "no convolution" error
        name, module = convs[0]
    else:
        choice = find_layer(model, layer)
        name, module = choice.name, conv_module(choice.module) or choice.module
    weight = getattr(module, "weight", None)
    if weight is None or weight.ndim < 3:
        raise ModelError(f"layer {name!r} has no convolution weights; choose a conv layer")
    return name, weight.detach().float().cpu().numpy()


def parse_epochs(text: str, epochs: int) -> list[int]:
    """``"0,1,5"`` -> ``[0, 1, 5]``; ``"all"`` -> every epoch from 0 to ``epochs``.

    Raises:
        ConfigError: not a comma-separated list of integers in ``0..epochs``.
    """
    if text.strip().lower() == "all":
        return list(range(epochs + 1))
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(
            f"--record-filters {text!r}: give epochs as comma-separated numbers (0,1,5) or 'all'"
        ) from None
    bad = [e for e in chosen if not 0 <= e <= epochs]
    if bad or not chosen:
        raise ConfigError(
            f"--record-filters {text!r}: epochs must lie in 0..{epochs} (0 = before training)"
        )
    return chosen


class FilterRecorder(Callback):
    """Saves the first convolution's weights at chosen epochs (Keras-style callback).

    Args:
        directory: the run directory; files go to ``directory/filters/epoch-NNN.npy``.
        epochs: epochs after which to record, counted from 1; 0 records the initial weights.
    """

    def __init__(self, directory: str | os.PathLike[str], epochs: Iterable[int]) -> None:
        self.folder = Path(directory) / FILTERS_DIR
        self.epochs = frozenset(int(e) for e in epochs)

    def on_train_begin(self) -> None:
        filter_weights(self.state.model)  # a model without convolution fails now, not later
        if 0 in self.epochs:
            self._save(0)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if epoch + 1 in self.epochs:
            self._save(epoch + 1)

    def _save(self, epoch: int) -> None:
        _, weights = filter_weights(self.state.model)
        with atomic_open(self.folder / f"epoch-{epoch:03d}.npy", "wb") as handle:
            np.save(handle, weights)


def recorded_filters(directory: str | os.PathLike[str]) -> list[tuple[int, np.ndarray]]:
    """The filters a :class:`FilterRecorder` saved in a run directory, by epoch."""
    folder = Path(directory) / FILTERS_DIR
    records = []
    for file in sorted(folder.glob("epoch-*.npy")) if folder.is_dir() else []:
        match = _RECORD.fullmatch(file.name)
        if match:
            records.append((int(match.group(1)), np.load(file, allow_pickle=False)))
    return sorted(records, key=lambda record: record[0])
