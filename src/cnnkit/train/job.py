"""A training job: data in, trained model out, everything recorded in a run directory.

This is what ``cnnkit train`` runs. It resolves a :class:`TrainConfig`, loads the data,
builds the model, calls :func:`~cnnkit.train.loop.fit`, saves the weights and evaluates
on the test split.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnkit.data.dataset import Splits
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import canonical_source, data_root, load_dataset
from cnnkit.data.split import SPLIT_FILE, split_record, write_split_file
from cnnkit.devices import resolve_device
from cnnkit.errors import RunError
from cnnkit.inference import loss_and_accuracy
from cnnkit.models.spec import describe_model, resolve_model
from cnnkit.run import METRICS, Run, default_run_name, describe_environment
from cnnkit.train.callbacks import Callback, HistoryWriter, Logs
from cnnkit.train.loop import fit


@dataclass
class TrainConfig:
    """Everything a training job needs; defaults reproduce the textbook LeNet on MNIST.

    Attributes:
        data: data source name (``cnnkit datasets``).
        data_dir: read the source's files from this folder only.
        val_size: validation samples held out of train (count or fraction; None = source
            default, 0 = none).
        test_size: test samples held out of train for sources without a test part (a
            folder without test/): count or fraction; None = source default (0.2).
        group_by: regular expression naming each sample's group in its id (file path);
            a group is never divided between train, validation and test.
        split_file: reuse the split of this split file or run directory (its
            ``split.json``) instead of making one.
        model: registry name (``cnnkit models``), a model spec file (``.yaml``/``.json``), a
            spec mapping, or a ``cnnkit.layers.Model`` built in Python (trained in place).
        model_options: extra options for the model builder (e.g. ``{"init": "normal"}``).
        epochs: passes over the training split.
        batch_size: samples per optimizer step.
        optimizer: ``adam`` or ``sgd``.
        lr: learning rate.
        seed: seeds the split, the initial weights and the shuffling.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        runs_dir: parent folder of run directories.
        name: run directory name (default ``<model>-<data>-<time>``).
        record_filters: epochs after which to save the first convolution's filters into
            ``<run>/filters/`` (0 = before training; see ``cnnkit.evaluate.filters``).
    """

    data: str = "mnist"
    data_dir: str | None = None
    val_size: int | float | None = None
    test_size: int | float | None = None
    group_by: str | None = None
    split_file: str | None = None
    model: str | Mapping[str, Any] | nn.Module = "lenet"
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    runs_dir: str = "runs"
    name: str | None = None
    record_filters: list[int] = field(default_factory=list)


@dataclass
class TrainResult:
    """What a finished job produced."""

    run: Run
    history: list[Logs]
    metrics: dict[str, dict[str, float]]


def create_run(runs_dir: str, name: str | None, *, model: str, data: str) -> Run:
    """A new run directory: ``runs_dir/name``, or a free ``<model>-<data>-<time>[-N]``."""
    if name:
        return Run.create(runs_dir, name)
    base = default_run_name(model, data)
    for attempt in range(1, 100):
        try:
            return Run.create(runs_dir, base if attempt == 1 else f"{base}-{attempt}")
        except RunError:
            continue
    raise RunError(f"could not find a free run name under {runs_dir}")


def data_record(source: str, data_dir: str | None, splits: Splits, *, seed: int) -> dict[str, Any]:
    """The run card's ``data`` section; the split file it names is written beside it."""
    return {
        "source": source,
        "data_dir": data_dir,
        "split_file": SPLIT_FILE,
        "classes": list(splits.train.classes),
        "split_seed": seed,
        "sizes": {name: len(ds) for name, ds in splits.items()},
        "fingerprints": {name: ds.fingerprint() for name, ds in splits.items()},
        "origin": {name: ds.source for name, ds in splits.items()},
    }


def _recorders(config: TrainConfig, run: Run) -> list[Callback]:
    """Callbacks that save material for the report (filters at chosen epochs) into the run."""
    if not config.record_filters:
        return []
    from cnnkit.evaluate.filters import FilterRecorder

    return [FilterRecorder(run.path, config.record_filters)]


def run_training(config: TrainConfig, *, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Run one training job and return its run directory, history and final metrics."""
    started = time.time()
    device = resolve_device(config.device)
    splits = load_dataset(
        config.data,
        data_dir=config.data_dir,
        val_size=config.val_size,
        test_size=config.test_size,
        seed=config.seed,
        group_by=config.group_by,
        split_file=config.split_file,
    )
    preprocessing = Preprocessing.from_dataset(splits.train)
    torch.manual_seed(config.seed)  # the initial weights are a function of the seed
    model, model_record = resolve_model(  # a registry name, a spec or a layers.Model
        config.model,
        input_shape=splits.train.image_shape,
        num_classes=splits.train.num_classes,
        options=config.model_options,
    )
    label = describe_model(config.model)
    run = create_run(config.runs_dir, config.name, model=label, data=config.data)
    # the exact parts, so evaluation and later runs (--split-file RUN) read the same samples
    source = canonical_source(config.data)
    write_split_file(
        run.path / SPLIT_FILE,
        split_record(
            splits,
            source=source,
            root=data_root(config.data, config.data_dir),
            seed=config.seed,
            val_size=config.val_size,
            test_size=config.test_size,
            group_by=config.group_by,
            from_split_file=config.split_file,
        ),
    )
    run.update_card(
        name=run.path.name,
        status="training",
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        config=dataclasses.asdict(
            config if isinstance(config.model, str) else dataclasses.replace(config, model=label)
        ),
        model={**model_record, "parameters": sum(p.numel() for p in model.parameters())},
        data=data_record(source, config.data_dir, splits, seed=config.seed),
        preprocessing=preprocessing.to_dict(),
        environment=describe_environment(device),
    )
    history = fit(
        model,
        train=splits.train,
        val=splits.val,
        preprocessing=preprocessing,
        optimizer=config.optimizer,
        lr=config.lr,
        epochs=config.epochs,
        batch_size=config.batch_size,
        callbacks=[HistoryWriter(run.path), *_recorders(config, run), *callbacks],
        device=device,
        seed=config.seed,
    )
    run.save_weights(model)
    metrics = {
        name: loss_and_accuracy(model, ds, preprocessing=preprocessing, device=device)
        for name, ds in splits.items()
        if name != "train"
    }
    run.write_json(METRICS, metrics)
    run.update_card(
        status="finished",
        train_seconds=round(sum(row["time"] for row in history), 2),
        total_seconds=round(time.time() - started, 2),
    )
    return TrainResult(run=run, history=history, metrics=metrics)
