"""Splits of different image shapes are refused when the data is read, before training."""

from __future__ import annotations

import numpy as np

from tests.conftest import write_idx
from tests.hostile.conftest import cli


def test_train_and_test_images_of_different_sizes_fail_before_training(
    tmp_path, monkeypatch, capsys
) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "mnist"
    data.mkdir()
    for prefix, count, side in (("train", 300, 32), ("t10k", 100, 28)):
        write_idx(
            data / f"{prefix}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (count, side, side), np.uint8),
        )
        write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(count) % 10).astype(np.uint8))
    expected = "the test images are 28x28 with 1 channel(s) but the train images are 32x32"
    source = ("--data-dir", str(data), "--val-size", "100")
    code, _, err = cli(monkeypatch, capsys, "data", "check", "mnist", *source, "--strict")
    assert code == 1 and expected in " ".join(err.split()) and "Traceback" not in err
    runs = tmp_path / "runs"
    code, _, err = cli(monkeypatch, capsys, "train", *source, "--runs-dir", str(runs))
    assert code == 1 and expected in " ".join(err.split())
    assert not runs.exists() or not any(runs.iterdir())  # no run folder was made
