"""Evaluating a run directory: rebuild the model from the run alone and measure it again."""

from __future__ import annotations

import os

from cnnkit.devices import resolve_device
from cnnkit.inference import loss_and_accuracy
from cnnkit.run import Run


def evaluate_run(
    run_path: str | os.PathLike[str],
    *,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "auto",
) -> dict[str, float]:
    """Loss and accuracy of the run's saved model on one split of the run's data.

    Args:
        run_path: a run directory written by ``cnnkit train``.
        split: ``test`` (default), ``val`` or ``train``.
        data_dir: read the data source from this folder instead of the recorded one.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
    """
    run = Run.open(run_path)
    dataset = run.load_data(split, data_dir=data_dir)
    torch_device = resolve_device(device)
    model = run.load_model(torch_device)
    return loss_and_accuracy(model, dataset, preprocessing=run.preprocessing, device=torch_device)
