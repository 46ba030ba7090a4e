"""``cnnkit summary``, ``cnnkit conv`` and ``cnnkit train --model spec.yaml``."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from cnnkit.cli.main import app
from tests.cli.test_cli import cnnkit

pytestmark = pytest.mark.usefixtures("single_thread")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exit_code != 0:
        raise AssertionError(f"cnnkit {' '.join(args)} failed: {result.output}{result.exception!r}")
    return result.output


def test_summary_of_lenet_prints_the_textbook_total() -> None:
    text = invoke("summary", "lenet", "--input-shape", "1,28,28")
    assert "Total params: 3,255,914" in text
    assert re.search(r"conv2d \(Conv2D\)\s+│ \(None, 32, 28, 28\)\s+│\s+544 │ 4·4·1·32 \+ 32", text)
    assert "Non-trainable params: 0" in text


def test_summary_json_and_nhwc_layout() -> None:
    data = json.loads(invoke("summary", "bn_cnn", "--json", "--layout", "nhwc"))
    assert {"total_params", "trainable_params", "non_trainable_params", "layers"} <= set(data)
    assert data["non_trainable_params"] == 384
    assert data["layers"][0]["output_shape"] == [12, 12, 64]


def test_summary_of_a_spec_file_with_options(tmp_path) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text("layers:\n  - Conv2D: [8, 3]\n  - Flatten\n  - Dense: {units: num_classes}\n")
    data = json.loads(
        invoke(
            "summary",
            str(spec),
            "-i",
            "3,10,10",
            "--num-classes",
            "4",
            "--json",
            "-o",
            "init=normal",
        )
    )
    assert data["total_params"] == 3 * 3 * 3 * 8 + 8 + 8 * 8 * 8 * 4 + 4
    text = invoke("summary", "lenet_dropout", "-o", "dropout=0.5")
    assert "dropout_2 (Dropout)" in text


def test_summary_errors_are_one_line() -> None:
    result = cnnkit("summary", "lenat", check=False)
    assert result.returncode == 1 and "Did you mean 'lenet'" in result.stderr
    assert "Traceback" not in result.stderr


def test_conv_shows_each_window() -> None:
    text = invoke(
        "conv", "--input", "1 2 3; 4 5 6; 7 8 9", "--kernel", "1 0; 0 -1", "--max-steps", "4"
    )
    assert "step 1: window at input (0, 0) -> output[0,0]: sum of the products = -4" in text
    assert "step 4:" in text and "floor((3 - 2)/1) + 1 = 2" in text
    pooled = invoke("conv", "--op", "max", "--size", "4", "-k", "2", "-s", "2", "--max-steps", "0")
    assert "4 more windows" in pooled and "Max pooling" in pooled


def test_train_a_yaml_graph_model_then_evaluate_it(tiny_mnist_dir, tmp_path) -> None:
    spec = tmp_path / "my_net.yaml"
    spec.write_text(
        "layers:\n"
        "  - Conv2D: {filters: 8, kernel_size: 3, strides: 2, padding: same, name: a}\n"
        "  - BatchNormalization\n"
        "  - Conv2D: {filters: 8, kernel_size: 1, strides: 2, inputs: [input], name: b}\n"
        "  - Add: {inputs: [batch_normalization, b]}\n"
        "  - Flatten\n"
        "  - Dense: {units: num_classes}\n"
    )
    args = ["--data-dir", str(tiny_mnist_dir), "--val-size", "200", "--epochs", "1"]
    args += ["--runs-dir", str(tmp_path), "--name", "yaml", "--device", "cpu"]
    trained = invoke("train", "--model", str(spec), *args)
    accuracy = re.search(r"test accuracy (\d+\.\d+)%", trained).group(1)
    evaluated = invoke("evaluate", str(tmp_path / "yaml"), "--device", "cpu")
    assert f"test accuracy {accuracy}%" in evaluated
