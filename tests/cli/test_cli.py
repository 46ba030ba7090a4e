"""The command line, run as a user runs it (a subprocess) or through its entry point."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cnnkit import __version__


def cnnkit(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "cnnkit", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"cnnkit {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def test_version() -> None:
    assert cnnkit("--version").stdout.strip() == f"cnnkit {__version__}"


def test_help_describes_every_command() -> None:
    text = cnnkit("--help").stdout
    for command in (
        "train",
        "evaluate",
        "report",
        "compare",
        "filters",
        "featuremaps",
        "gradcam",
        "predict",
        "export",
        "serve",
        "models",
        "summary",
        "conv",
        "datasets",
        "data",
    ):
        assert re.search(rf"^  {command}\s+\S", text, re.M), command


def test_import_does_not_load_torch() -> None:
    code = "import sys, cnnkit; print('torch' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_errors_are_one_clear_line_and_exit_code_1(tmp_path) -> None:
    result = cnnkit("evaluate", str(tmp_path), check=False)
    assert result.returncode == 1
    assert "not a cnnkit run directory" in result.stderr and "Traceback" not in result.stderr


def test_data_info_prints_the_inventory() -> None:
    text = cnnkit("data", "info", "mnist").stdout
    assert "55,000" in text and "5,000" in text and "10,000" in text and "uint8" in text


def test_train_then_evaluate_print_the_same_accuracy(tiny_mnist_dir, tmp_path) -> None:
    trained = cnnkit(
        "train",
        "--data-dir",
        str(tiny_mnist_dir),
        "--val-size",
        "200",
        "--epochs",
        "1",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "cli",
        "--device",
        "cpu",
    ).stdout
    assert "Epoch 1/1" in trained and f"run saved to {tmp_path / 'cli'}" in trained.replace(
        "\n", ""
    )
    assert (tmp_path / "cli" / "report.html").is_file()  # cnnkit train writes the report
    accuracy = re.search(r"test accuracy (\d+\.\d+)%", trained).group(1)
    evaluated = cnnkit("evaluate", str(tmp_path / "cli"), "--device", "cpu").stdout
    assert f"test accuracy {accuracy}%" in evaluated


@pytest.mark.parametrize("args", [["train", "--model", "nope"], ["data", "info", "nope"]])
def test_unknown_names_fail_with_suggestions(args) -> None:
    result = cnnkit(*args, check=False)
    assert result.returncode == 1 and "error:" in result.stderr
