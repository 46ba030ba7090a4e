"""Damaged run folders through the real commands: one clear error naming the file and the
field, exit code 1, no traceback, and nothing in the run changed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.hostile.conftest import cli, edit_card, snapshot

TAMPERED = [
    ({"preprocessing__input_shape": "1,28,28"}, "preprocessing.input_shape must be [channels"),
    ({"model__input_shape": "1,28,28"}, "model.input_shape must be [channels"),
    ({"model__num_classes": "ten"}, 'model.num_classes must be a whole number, not "ten"'),
    ({"model__num_classes": True}, "model.num_classes must be a whole number, not true"),
    ({"data__classes": 7}, "data.classes must be a list, not 7"),
    ({"data__classes": ["a", "b", "c"]}, "data.classes names 3 classes but model.num_classes"),
    ({"data__classes": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}, "data.classes[0] must be a string"),
    ({"model__options": [1, 2]}, "model.options must be a JSON object, not [1, 2]"),
    ({"data": [1, 2]}, "data must be a JSON object, not [1, 2]"),
    ({"model": "lenet"}, 'model must be a JSON object, not "lenet"'),
    ({"preprocessing__std": [0]}, "preprocessing.std[0] is 0"),
    ({"preprocessing__mean": [0.1, 0.2]}, "preprocessing.mean has 2 values for 1 channel(s)"),
    ({"preprocessing__mean": ["x"]}, "preprocessing.mean[0] must be a number"),
    ({"data__split_file": "../../etc/passwd"}, "data.split_file must name a file inside"),
    (
        {"model__input_shape": [1, 30000, 30000], "preprocessing__input_shape": [1, 30000, 30000]},
        "model.input_shape[1] (height) is 30000, out of range 1..4096",
    ),
    (
        {"model__input_shape": [1, 32, 32], "preprocessing__input_shape": [1, 32, 32]},
        "dense.linear.weight has shape [1024, 3136] but",  # weights made for 28x28
    ),
    ({"model__num_classes": 7, "data__classes": list("abcdefg")}, "needs [7"),
    ({"model__name": "resnet_not_there"}, "model record cannot be built"),
]


CASES = [("predict", changes, message) for changes, message in TAMPERED] + [
    (command, *TAMPERED[i]) for command in ("evaluate", "export") for i in (0, 2, 5, 8, 15)
]


@pytest.mark.parametrize(("command", "changes", "message"), CASES)
def test_a_tampered_run_card_is_one_clear_error(
    run_copy, digit_png, monkeypatch, capsys, changes, message, command
) -> None:
    edit_card(run_copy, **changes)
    before = snapshot(run_copy)
    args = {
        "predict": ["predict", str(run_copy), str(digit_png), "--json"],
        "evaluate": ["evaluate", str(run_copy), "--out", str(run_copy.parent / "eval")],
        "export": ["export", str(run_copy), "--out", str(run_copy.parent / "export")],
    }[command]
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 1, (out, err)
    assert "error:" in err and "Traceback" not in err + out
    assert message in " ".join(err.split()), err
    assert "run.json" in err or "weights.safetensors" in err
    assert out == ""
    assert snapshot(run_copy) == before


@pytest.mark.slow
def test_serve_refuses_a_card_whose_classes_do_not_fit_before_listening(run_copy) -> None:
    edit_card(run_copy, data__classes=["a", "b", "c"])
    result = subprocess.run(
        [sys.executable, "-m", "cnnkit", "serve", str(run_copy), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "300", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert result.returncode == 1
    assert "data.classes names 3 classes but model.num_classes is 10" in result.stderr
    assert "Traceback" not in result.stderr and "http://" not in result.stdout


CONV = "features.layers.conv2d.conv.weight"


def _rewrite_weights(run, change) -> None:
    state = load_file(run / "weights.safetensors")
    change(state)
    save_file(state, run / "weights.safetensors")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s[CONV].view(-1).__setitem__(3, float("nan")),
            f"{CONV} holds NaN or infinite values",
        ),
        (lambda s: s["head.bias"].fill_(float("inf")), "head.bias holds NaN or infinite"),
        (
            lambda s: s.update({k: v.to(torch.int32) for k, v in s.items()}),
            "is I32 but the model",
        ),
        (lambda s: s.pop("head.bias"), "lacks ['head.bias']"),
        (lambda s: s.update(extra=torch.zeros(1)), "has unexpected ['extra']"),
    ],
)
def test_bad_weights_are_never_served(run_copy, digit_png, monkeypatch, capsys, change, message):
    _rewrite_weights(run_copy, change)
    before = snapshot(run_copy)
    code, out, err = cli(monkeypatch, capsys, "predict", str(run_copy), str(digit_png), "--json")
    assert code == 1 and out == "" and "Traceback" not in err
    assert "weights.safetensors" in err and message in " ".join(err.split())
    assert snapshot(run_copy) == before


def test_predict_json_is_valid_json_from_a_good_run(run_copy, digit_png, monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "predict", str(run_copy), str(digit_png), "--json")
    assert code == 0
    answer = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert 0.0 <= answer[0]["probability"] <= 1.0


@pytest.mark.slow
def test_a_huge_declared_input_is_refused_without_allocating(run_copy, digit_png) -> None:
    def predict_peak_rss() -> tuple[int, str]:
        script = (
            "import resource, sys\n"
            "from cnnkit.cli.main import main\n"
            f"sys.argv = ['cnnkit', 'predict', {str(run_copy)!r}, {str(digit_png)!r}]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        peak_kb, code = done.stdout.split()
        assert code == "1", done.stderr
        return int(peak_kb), " ".join(done.stderr.split())

    edit_card(run_copy, model__input_shape=[1, 30000, 30000])
    peak_kb, err = predict_peak_rss()
    assert "model.input_shape[1] (height) is 30000, out of range 1..4096" in err
    assert peak_kb < 1_000_000
    # the largest allowed input: the model (70 G parameters) is refused from the weights'
    # header before it is built for real
    edit_card(
        run_copy, model__input_shape=[1, 4096, 4096], preprocessing__input_shape=[1, 4096, 4096]
    )
    peak_kb, err = predict_peak_rss()
    assert "dense.linear.weight has shape [1024, 3136] but" in err
    assert peak_kb < 1_000_000
