"""The names ``cnnkit summary`` prints are the names every command takes; wide tables keep
their important cells whole at 80 columns."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from cnnkit.models.probes import layer_path
from cnnkit.run import Run
from tests.cli.test_usage import in_process


@pytest.fixture(scope="module")
def digit(trained, mnist_parts, tmp_path_factory):
    path = tmp_path_factory.mktemp("digit") / "seven.png"
    Image.fromarray(mnist_parts["test"].images[0, 0].numpy()).save(path)
    return path


def test_layer_path_takes_a_layers_own_name() -> None:
    paths = ["features", "features.layers.conv2d", "features.layers.conv2d_1", "head.dense"]
    assert layer_path("conv2d_1", paths) == "features.layers.conv2d_1"
    assert layer_path("features.layers.conv2d", paths) == "features.layers.conv2d"
    assert layer_path("conv2d_9", paths) is None
    assert layer_path("layers.conv2d", paths) == "features.layers.conv2d"
    assert layer_path("conv", ["a.conv", "b.conv"]) is None  # ambiguous: never a guess


def test_summary_names_work_in_filters_featuremaps_and_gradcam(
    trained, digit, tmp_path, capsys
) -> None:
    _, shown, _ = in_process(["summary", "lenet"], capsys)
    assert "conv2d_1" in shown
    code, out, err = in_process(
        ["filters", str(trained.path), "--layer", "conv2d_1", "--out", str(tmp_path / "f.png")],
        capsys,
    )
    assert code == 0, err
    assert "64 filters of shape (32, 4, 4)" in out and (tmp_path / "f.png").is_file()
    code, out, err = in_process(
        ["featuremaps", str(trained.path), str(digit), "--layer", "conv2d_1",
         "--out", str(tmp_path / "m.png"), "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 0 and "64 maps of 14x14" in out, err
    code, out, err = in_process(
        ["gradcam", str(trained.path), str(digit), "--layer", "conv2d_1",
         "--out", str(tmp_path / "g.png"), "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 0 and "conv2d_1" in out and (tmp_path / "g.png").is_file(), err


def test_an_unknown_layer_lists_the_names_summary_shows(trained, capsys) -> None:
    code, _, err = in_process(["filters", str(trained.path), "--layer", "conv2d_2"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "no layer 'conv2d_2'. Did you mean 'conv2d_1'?" in err
    assert "Its convolution layers: conv2d, conv2d_1 " in err


def test_freeze_until_takes_the_summary_name(tmp_path) -> None:
    from cnnkit.transfer.backbones import load_backbone
    from cnnkit.transfer.finetune import freeze, parse_freeze
    from tests.transfer.conftest import write_lenet_run

    run = write_lenet_run(tmp_path)
    model = load_backbone(f"run:{run}").classifier_for((1, 28, 28), 10)
    frozen = freeze(model, parse_freeze("until:conv2d_1"))
    assert any(".conv2d_1." in name for name in frozen.parameters)
    assert any(".conv2d." in name for name in frozen.parameters)
    assert not any("dense" in name for name in frozen.parameters)


def test_summary_at_80_columns_keeps_every_number(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, text, _ = in_process(["summary", "lenet"], capsys)
    assert code == 0 and "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    for number in ("3,212,288", "32,832", "10,250", "6,422,528", "3,211,264", "11x11"):
        assert number in text, number


def test_compare_at_80_columns_keeps_whole_run_names(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    names = ["lenet-mnist-20261130-054711", "lenet-mnist-20261130-054722", "lenet-mnist-b"]
    for name in names:
        Run(shutil.copytree(trained.path, tmp_path / name)).update_card(name=name)
    code, text, err = in_process(["compare", *(str(tmp_path / n) for n in names)], capsys)
    assert code == 0, err
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    # the ends that tell the runs apart are there (folded onto a second line, not cut)
    for end in ("054711", "054722", "lenet-mnist-b"):
        assert end in text, text
