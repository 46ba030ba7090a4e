"""Shared by the evaluation tests: one small trained run and its report, made once."""

from __future__ import annotations

import pytest

from cnnkit.evaluate.report import write_report
from cnnkit.run import Run
from cnnkit.train.job import TrainConfig, run_training


@pytest.fixture(scope="package")
def trained(tiny_mnist_dir, tmp_path_factory) -> Run:
    """LeNet trained one epoch on 1,000 real MNIST digits, filters recorded at epochs 0 and 1."""
    config = TrainConfig(
        data_dir=str(tiny_mnist_dir),
        val_size=200,
        epochs=1,
        runs_dir=str(tmp_path_factory.mktemp("runs")),
        name="tiny",
        device="cpu",
        record_filters=[0, 1],
    )
    return run_training(config).run


@pytest.fixture(scope="package")
def report(trained):
    return write_report(trained, device="cpu")
