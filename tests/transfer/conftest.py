"""Fixtures for transfer learning: the pretrained backbone (loaded once) and a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnkit.card import DataRecord, Environment, ModelRecord, RunCard, timestamp
from cnnkit.data.preprocess import Preprocessing
from cnnkit.models.registry import build_model
from cnnkit.run import Run


@pytest.fixture(scope="session")
def lite0():
    """ImageNet-pretrained EfficientNet-Lite0 (about a second to load)."""
    from cnnkit.transfer.backbones import load_backbone

    return load_backbone("efficientnet_lite0")


def write_lenet_run(folder: Path, *, seed: int = 0) -> Path:
    """A run directory holding an (untrained) LeNet for 1x28x28 MNIST, as `cnnkit train` writes.

    Returns:
        The run directory.
    """
    import torch

    torch.manual_seed(seed)
    model = build_model("lenet", input_shape=(1, 28, 28), num_classes=10)
    run = Run.create(folder, f"lenet-{seed}")
    run.write_card(
        RunCard(
            name=run.path.name,
            created=timestamp(0),
            config={},
            model=ModelRecord.of_model(
                {"name": "lenet", "options": {}, "input_shape": [1, 28, 28], "num_classes": 10},
                model,
            ),
            data=DataRecord(source="mnist", classes=tuple(str(i) for i in range(10))),
            preprocessing=Preprocessing((1, 28, 28), (0.1307,), (0.3081,)),
            environment=Environment.describe(torch.device("cpu")),
            status="finished",
        )
    )
    run.save_weights(model)
    return run.path


@pytest.fixture
def lenet_run(tmp_path) -> Path:
    return write_lenet_run(tmp_path)
