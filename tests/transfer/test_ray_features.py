"""``cnnkit features --ray``: features of a folder computed on a local Ray instance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnkit.errors import ConfigError
from tests.data import imagefiles as f
from tests.transfer.conftest import write_lenet_run


def cnnkit(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp", "CNNKIT_DATA": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *args], capture_output=True, text=True, env=env
    )


@pytest.fixture
def digits(tmp_path, mnist_parts) -> Path:
    """A folder of 60 real MNIST digits as grey PNGs, three classes of 20."""
    root = tmp_path / "digits"
    train = mnist_parts["train"]
    for i in range(60):
        f.write(root / f"c{i % 3}" / f"{i:03d}.png", f.png(train.images[i, 0].numpy()))
    return root


@pytest.mark.slow
def test_ray_features_equal_local_features_and_transfer_reuses_them(digits, tmp_path) -> None:
    pytest.importorskip("ray", reason='Ray is not installed (pip install "cnnkit[ray]")')
    from safetensors.torch import load_file

    run = write_lenet_run(tmp_path / "runs")
    common = ("--backbone", f"run:{run}", "--data", f"folder:{digits}")
    on_ray = cnnkit("features", *common, "--ray", "local", "--cache-dir", str(tmp_path / "ray"),
                    home=tmp_path)  # fmt: skip
    assert on_ray.returncode == 0, on_ray.stderr
    assert "train: (48, 1024) features, computed" in on_ray.stdout
    local = cnnkit("features", *common, "--cache-dir", str(tmp_path / "local"), home=tmp_path)
    assert local.returncode == 0, local.stderr
    ray_files = sorted((tmp_path / "ray").glob("*.safetensors"))
    local_files = sorted((tmp_path / "local").glob("*.safetensors"))
    assert [p.name for p in ray_files] == [p.name for p in local_files] and len(ray_files) == 2
    for ours, theirs in zip(ray_files, local_files, strict=True):
        a, b = load_file(ours), load_file(theirs)
        assert torch.equal(a["labels"], b["labels"])
        torch.testing.assert_close(a["features"], b["features"], rtol=1e-5, atol=1e-5)
    # `cnnkit transfer` reads the file Ray wrote
    table = cnnkit("transfer", "--backbones", f"run:{run}", "--head", "logreg", "--data",
                   f"folder:{digits}", "--cache-dir", str(tmp_path / "ray"),
                   home=tmp_path)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("reused from cache") == 2 and "features + logreg" in table.stdout


def test_ray_needs_a_folder_source(tmp_path) -> None:
    result = cnnkit("features", "--data", "mnist", "--ray", "local", home=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--ray computes features from image files; mnist has none" in result.stderr


def test_ray_missing_is_a_clear_error(monkeypatch) -> None:
    from cnnkit.transfer.ray_features import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ConfigError, match=r'--ray needs Ray: pip install "cnnkit\[ray\]"'):
        require_ray("folder:photos")
