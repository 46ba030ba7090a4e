"""`cnnkit features`, `cnnkit transfer` and `cnnkit finetune` through the CLI entry point.

In-process (``cnnkit.cli.main.main`` with ``sys.argv`` set), so torch is imported once: the
subprocess round trip is covered by tests/cli.
"""

from __future__ import annotations

import json
import sys

import pytest

from cnnkit.cli.main import main
from tests.transfer.conftest import write_lenet_run

pytestmark = pytest.mark.usefixtures("single_thread")  # small ops: see conftest


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``cnnkit ARGS``; returns (exit code, stdout, stderr with lines joined)."""
    monkeypatch.setenv("COLUMNS", "200")  # read at each print (out.width = 200 outlives the test)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["cnnkit", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, " ".join(captured.err.split())

    return run


def test_features_are_computed_once_then_reused(cli, tiny_mnist_dir, tmp_path) -> None:
    run = write_lenet_run(tmp_path / "runs")
    args = (
        "features", "--backbone", f"run:{run}", "--data", "mnist", "--data-dir",
        str(tiny_mnist_dir), "--train-per-class", "5", "--test-size", "20",
        "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    code, first, _ = cli(*args)
    assert code == 0
    assert "train: (50, 1024) features, computed" in first
    assert "test: (20, 1024) features, computed" in first
    assert cli(*args)[1].count("reused from cache") == 2


def test_transfer_prints_one_comparison_table(cli, tiny_mnist_dir, tmp_path) -> None:
    run = write_lenet_run(tmp_path / "runs")
    saved = tmp_path / "table.json"
    code, text, errors = cli(
        "transfer", "--backbones", f"run:{run}", "--head", "logreg,rf", "--data", "mnist",
        "--data-dir", str(tiny_mnist_dir), "--train-per-class", "5", "--test-size", "30",
        "--cache-dir", str(tmp_path / "cache"), "--baseline", "lenet", "--baseline-epochs", "1",
        "--runs", str(run), "--save", str(saved),
    )  # fmt: skip
    assert code == 0, errors
    assert "features + logreg" in text and "features + rf" in text and "from scratch" in text
    rows = json.loads(saved.read_text())["rows"]
    assert [r["method"] for r in rows] == [
        "from scratch, 1 epochs",
        "features + logreg",
        "features + rf",
        "saved run",
    ]
    assert all(r["test_size"] == 30 and 0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert rows[1]["train_size"] == 50 and rows[1]["features"] == 1024


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("transfer", "--head", "lgreg"), "unknown head 'lgreg'. Did you mean 'logreg'?"),
        (
            ("features", "--backbone", "efficientnet_lite", "--data", "mnist", "--test-size", "10"),
            "unknown backbone 'efficientnet_lite'. Did you mean 'efficientnet_lite0'?",
        ),
        (
            ("transfer", "--backbones", "run:/no/such/run", "--data", "mnist"),
            "/no/such/run: no such run directory",
        ),
        (("finetune", "--freeze", "some"), "--freeze 'some' is not understood"),
    ],
)
def test_bad_inputs_are_one_clear_error(cli, args, message) -> None:
    code, _, errors = cli(*args)
    assert code == 1
    assert message in errors and "Traceback" not in errors
