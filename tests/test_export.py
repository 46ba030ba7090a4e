"""Export: ONNX and torch.export files that give the PyTorch model's logits, with metadata."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from cnnkit.errors import ConfigError, ModelError, RunError
from cnnkit.export import (
    METADATA_FILE,
    OnnxModel,
    compare,
    export_run,
    load_pt2_metadata,
    onnx_metadata,
)
from cnnkit.models.forward import predict_logits
from tests.hostile.conftest import cli

# The tolerance these tests hold the exports to: float32 engines differ in summation order
# only, so LeNet's logits (magnitude ~10) agree to ~1e-5; cnnkit's default accepts 1e-3.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """Both formats, checked on the whole 300-image test split of the tiny run."""
    return export_run(trained, out=tmp_path_factory.mktemp("export") / "export", samples=0)


def test_exports_match_the_model_on_every_test_image(exported) -> None:
    assert set(exported.parity) == {"onnx", "pt2"}
    for parity in exported.parity.values():
        assert parity.split == "test" and parity.samples == 300
        assert parity.max_abs_diff < TOLERANCE, parity
        assert parity.top1_agree == 300 and parity.passed
    recorded = json.loads((exported.folder / METADATA_FILE).read_text())
    assert recorded["parity"]["onnx"]["max_abs_diff"] == exported.parity["onnx"].max_abs_diff
    assert sorted(p.name for p in exported.folder.iterdir()) == [
        "export.json",
        "model.onnx",
        "model.pt2",
    ]


def test_onnx_has_a_dynamic_batch_axis_and_records_its_opset(exported, trained) -> None:
    model = onnx.load(str(exported.files["onnx"]))
    (first,) = model.graph.input
    dims = first.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == exported.metadata["onnx"]["opset"] == 18
    session = onnxruntime.InferenceSession(str(exported.files["onnx"]))
    images = trained.load_data("test").images[:7]
    pre = trained.preprocessing
    for batch in (1, 7):
        (logits,) = session.run(["logits"], {"input": pre(images[:batch]).numpy()})
        assert logits.shape == (batch, 10)


def test_metadata_travels_inside_each_file(exported, trained) -> None:
    props = onnx_metadata(exported.files["onnx"])
    assert json.loads(props["cnnkit.classes"]) == list(trained.classes)
    assert json.loads(props["cnnkit.preprocessing"])["mean"] == list(trained.preprocessing.mean)
    spec = json.loads(props["cnnkit.input"])
    assert spec["shape"] == ["batch", 1, 28, 28] and spec["fit"] == "pad"
    stored = load_pt2_metadata(exported.files["pt2"])
    assert stored["classes"] == list(trained.classes) and stored["run"] == "tiny"


def test_onnx_model_applies_its_stored_preprocessing(exported, trained) -> None:
    """uint8 images in, the PyTorch model's logits out, with nothing but the ONNX file."""
    images = trained.load_data("test").images[:50]
    reference = predict_logits(trained.load_model(), images, preprocessing=trained.preprocessing)
    runner = OnnxModel(exported.files["onnx"])
    assert runner.classes == trained.classes
    assert torch.allclose(runner.logits(images), reference, atol=TOLERANCE)


def test_pt2_loads_without_cnnkit_code(exported, trained) -> None:
    program = torch.export.load(exported.files["pt2"]).module()
    images = trained.load_data("test").images[:3]
    inputs = trained.preprocessing(images)
    expected = predict_logits(trained.load_model(), images, preprocessing=trained.preprocessing)
    assert torch.allclose(program(inputs), expected, atol=TOLERANCE)


def test_a_mismatching_export_is_not_kept(trained, tmp_path, monkeypatch) -> None:
    import cnnkit.export

    original = cnnkit.export.compare

    def off_by_a_bit(format, file, reference, logits, **options):
        return original(format, file, reference, logits + torch.linspace(0, 0.01, 10), **options)

    monkeypatch.setattr(cnnkit.export, "compare", off_by_a_bit)
    target = tmp_path / "export"
    with pytest.raises(ModelError, match=r"pt2 export differs .* 0\.01 > tolerance 0\.001"):
        export_run(trained, out=target, formats=["pt2"], samples=20)
    assert not target.exists() and list(tmp_path.iterdir()) == []  # no staging left either


def test_export_replaces_an_earlier_one(trained, tmp_path) -> None:
    target = tmp_path / "export"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    result = export_run(trained, out=target, formats=["pt2"], samples=10)
    assert sorted(p.name for p in target.iterdir()) == ["export.json", "model.pt2"]
    assert result.parity["pt2"].samples == 10 and list(tmp_path.iterdir()) == [target]


def test_bad_requests(trained, tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown export format torchscript"):
        export_run(trained, formats=["torchscript"])
    with pytest.raises(ConfigError, match="samples must be 0"):
        export_run(trained, samples=-1)
    with pytest.raises(ConfigError, match="tolerance must be positive"):
        export_run(trained, tolerance=0)
    with pytest.raises(RunError, match="split 'nope' is not available"):
        export_run(trained, split="nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        export_run(trained, out=tmp_path / "file", formats=["pt2"], samples=2)


def test_compare_reports_difference_and_agreement() -> None:
    reference = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    other = reference + torch.tensor([[0.0, 0.5], [0.0, 0.0], [0.0, 3.0]])
    parity = compare("onnx", "m.onnx", reference, other, split="test", tolerance=1.0)
    assert parity.max_abs_diff == 3.0 and parity.top1_agree == 2 and not parity.passed
    assert parity.to_dict()["agreement"] == pytest.approx(2 / 3)
    with pytest.raises(ModelError, match="shape"):
        compare("onnx", "m.onnx", reference, other[:, :1], split="test")


def test_onnx_model_refuses_files_without_cnnkit_metadata(tmp_path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["logits"])],
        "plain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    with pytest.raises(ModelError, match="no cnnkit metadata"):
        OnnxModel(path)
    (tmp_path / "junk.onnx").write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        OnnxModel(tmp_path / "junk.onnx")


def test_cli_prints_the_parity_of_each_file(trained, tmp_path) -> None:
    from typer.testing import CliRunner

    from cnnkit.cli.main import app

    target = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["export", str(trained.path), "-f", "pt2", "--samples", "20", "--out", str(target)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "model.pt2 (torch.export" in result.output
    assert "top-1 agreement 20/20 (100.00%) on test images" in result.output
    assert (target / "model.pt2").is_file() and not (target / "model.onnx").exists()


@pytest.fixture(scope="module")
def quantized(trained, tmp_path_factory):
    """ONNX float32 + int8, the int8 file judged on the whole 300-image test split."""
    out = tmp_path_factory.mktemp("int8") / "export"
    return export_run(trained, out=out, formats=["onnx"], samples=50, int8=True, calibration=64)


def test_int8_export_keeps_the_accuracy_and_says_so(quantized, trained) -> None:
    check = quantized.int8
    assert check is not None and check.split == "test" and check.samples == 300
    assert check.calibration_split == "train" and check.calibration_images == 64
    assert abs(check.drop) <= 0.5 and check.passed
    test = trained.load_data("test")
    runner = OnnxModel(quantized.files["int8"])  # uint8 in, by the metadata stored in the file
    int8_accuracy = float((runner.logits(test.images).argmax(1) == test.labels).float().mean())
    assert int8_accuracy == pytest.approx(check.int8_accuracy)
    recorded = json.loads((quantized.folder / METADATA_FILE).read_text())["int8"]
    assert recorded["file"] == "model.int8.onnx" and recorded["drop_points"] == check.drop
    props = onnx_metadata(quantized.files["int8"])
    assert props["cnnkit.precision"] == "int8"
    assert json.loads(props["cnnkit.classes"]) == list(trained.classes)
    graph = onnx.load(str(quantized.files["int8"])).graph
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)
    assert quantized.files["int8"].stat().st_size < quantized.files["onnx"].stat().st_size / 2


def test_an_int8_export_that_loses_accuracy_is_not_kept(trained, tmp_path, monkeypatch) -> None:
    import cnnkit.export

    original = cnnkit.export.accuracy_check

    def worse(file, fp32, int8, images, labels, **options):  # the int8 file says class 0
        return original(
            file, fp32, lambda x: torch.eye(10)[[0] * len(x)], images, labels, **options
        )

    monkeypatch.setattr(cnnkit.export, "accuracy_check", worse)
    target = tmp_path / "export"
    target.mkdir()
    (target / "model.onnx").write_text("an earlier export")
    with pytest.raises(ModelError, match=r"int8 export loses \d+\.\d\d top-1 points on 300 test"):
        export_run(trained, out=target, formats=["onnx"], samples=10, int8=True, calibration=16)
    assert [p.name for p in target.iterdir()] == ["model.onnx"]  # the earlier export stays
    assert (target / "model.onnx").read_text() == "an earlier export"


def test_a_graph_the_quantiser_cannot_take_is_one_clear_error(
    trained, tmp_path, monkeypatch
) -> None:
    import onnxruntime.quantization

    def refuses(*args, **kwargs):
        raise ValueError("unsupported op type: CustomConv\nmore detail")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", refuses)
    target = tmp_path / "export"
    target.mkdir()
    (target / "model.onnx").write_text("an earlier export")
    with pytest.raises(ModelError) as caught:
        export_run(trained, out=target, formats=["onnx"], samples=10, int8=True, calibration=16)
    assert str(caught.value) == (
        "onnxruntime cannot quantise the model to int8 (ValueError: unsupported op type: "
        "CustomConv); export without --int8"
    )
    assert [p.name for p in target.iterdir()] == ["model.onnx"]  # the earlier export stays
    assert (target / "model.onnx").read_text() == "an earlier export"


def test_int8_requests_checked_first(trained) -> None:
    with pytest.raises(ConfigError, match="int8 export is an ONNX file"):
        export_run(trained, formats=["pt2"], int8=True)
    with pytest.raises(ConfigError, match="calibration needs at least 1 image"):
        export_run(trained, formats=["onnx"], int8=True, calibration=0)
    with pytest.raises(ConfigError, match=r"max drop must be 0 or more points, got -0\.1"):
        export_run(trained, formats=["onnx"], int8=True, max_drop=-0.1)


def test_cli_int8_line_and_usage_error(trained, tmp_path, monkeypatch, capsys) -> None:
    from typer.testing import CliRunner

    from cnnkit.cli.main import app

    target = tmp_path / "out"
    args = ["export", str(trained.path), "-f", "onnx", "--samples", "20", "--out", str(target)]
    result = CliRunner().invoke(app, [*args, "--int8"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "model.int8.onnx (int8, " in result.output
    assert "on 300 test images; calibrated on 512 training images" in result.output
    assert (target / "model.int8.onnx").is_file()
    code, stdout, stderr = cli(
        monkeypatch, capsys, "export", str(trained.path), "-f", "pt2", "--int8"
    )
    assert (
        code == 1
        and stdout == ""
        and stderr.strip().splitlines()
        == ["error: an int8 export is an ONNX file: add --format onnx, or drop --int8"]
    )
