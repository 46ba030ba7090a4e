"""Prediction engines: onnxruntime runs a run's current export, never a stale one."""

from __future__ import annotations

import shutil

import pytest
import torch

from cnnkit.errors import ConfigError, RunError
from cnnkit.export import export_run
from cnnkit.predict import Predictor
from cnnkit.run import Run
from tests.hostile.conftest import cli


@pytest.fixture(scope="module")
def exported_run(trained, tmp_path_factory) -> Run:
    """A copy of the tiny run with `cnnkit export --int8` written into RUN/export."""
    folder = tmp_path_factory.mktemp("engines") / "tiny"
    shutil.copytree(trained.path, folder)
    run = Run.open(folder)
    export_run(run, formats=["onnx"], samples=20, int8=True, calibration=64)
    return run


def test_auto_takes_torch_without_an_export(trained) -> None:
    assert Predictor(trained, device="cpu").engine == "torch"


def test_auto_takes_the_current_onnx_export_and_predicts_the_same(exported_run) -> None:
    images = exported_run.load_data("test").images
    onnx = Predictor(exported_run, device="cpu")
    torch_engine = Predictor(exported_run, device="cpu", engine="torch")
    assert onnx.engine == "onnx" and torch_engine.engine == "torch"
    assert "model" not in vars(onnx)  # the PyTorch model is not loaded for ONNX predictions
    expected, got = torch_engine.logits(images), onnx.logits(images)
    assert torch.allclose(got, expected, atol=1e-4)
    assert [p.best.index for p in onnx.predict_images(images)] == expected.argmax(1).tolist()
    assert onnx.explain(images[0]).heatmaps.shape == (1, 28, 28)  # Grad-CAM: the torch model


def test_int8_engine_agrees_with_float32_on_almost_every_image(exported_run) -> None:
    images = exported_run.load_data("test").images
    int8 = Predictor(exported_run, device="cpu", engine="onnx-int8")
    reference = Predictor(exported_run, device="cpu", engine="torch").logits(images).argmax(1)
    agree = float((int8.logits(images).argmax(1) == reference).float().mean())
    assert int8.engine == "onnx-int8" and agree >= 0.97


def test_a_stale_export_is_never_used(exported_run, tmp_path) -> None:
    folder = tmp_path / "retrained"
    shutil.copytree(exported_run.path, folder)
    run = Run.open(folder)
    model = run.load_model()
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    run.save_weights(model)  # the weights changed after the export
    assert Predictor(run, device="cpu").engine == "torch"
    with pytest.raises(RunError, match=r"model.onnx: missing or older than the run's weights"):
        Predictor(run, device="cpu", engine="onnx")


def test_bad_engines(trained) -> None:
    with pytest.raises(ConfigError, match="unknown engine 'tpu'; choose one of auto, torch"):
        Predictor(trained, device="cpu", engine="tpu")
    with pytest.raises(RunError, match=r"cnnkit export .* --int8` first, or use --engine torch"):
        Predictor(trained, device="cpu", engine="onnx-int8")


def test_cli_predict_with_each_engine(exported_run, monkeypatch, capsys) -> None:
    image = exported_run.path / "seven.png"
    from PIL import Image

    Image.fromarray(exported_run.load_data("test").images[0, 0].numpy()).save(image)
    outputs = []
    for engine in ("torch", "onnx", "onnx-int8"):
        code, stdout, stderr = cli(
            monkeypatch,
            capsys,
            "predict",
            str(exported_run.path),
            str(image),
            "-k",
            "1",
            "--engine",
            engine,
        )
        assert code == 0, stderr
        outputs.append(stdout.split()[-2])  # the predicted class
    assert len(set(outputs)) == 1
    code, stdout, stderr = cli(
        monkeypatch, capsys, "predict", str(exported_run.path), str(image), "--engine", "tpu"
    )
    assert code == 1 and stderr.strip().startswith("error: unknown engine 'tpu'")


def test_without_onnxruntime_auto_falls_back_and_onnx_says_how_to_get_it(
    exported_run, monkeypatch, capsys
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    assert Predictor(exported_run, device="cpu").engine == "torch"
    image = exported_run.path / "digit.png"
    from PIL import Image

    Image.fromarray(exported_run.load_data("test").images[0, 0].numpy()).save(image)
    code, _, stderr = cli(
        monkeypatch, capsys, "predict", str(exported_run.path), str(image), "--engine", "onnx"
    )
    assert code == 1 and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert stderr.strip() == (
        "error: running an ONNX file needs the export extra (onnxruntime is missing): "
        "pip install 'cnnkit[export]'"
    )
    code, _, stderr = cli(monkeypatch, capsys, "predict", str(exported_run.path), str(image))
    assert code == 0, stderr  # auto: the PyTorch model
