"""summary() on any nn.Module: rows, how parameters were counted, receptive fields, totals."""

from __future__ import annotations

import json

import pytest
from torch import nn

from cnnkit.errors import ModelError
from cnnkit.layers.summary import summary
from cnnkit.models.registry import build_model

pytestmark = pytest.mark.usefixtures("single_thread")


def test_lenet_reads_like_kerass_summary() -> None:
    result = summary(build_model("lenet"), (1, 28, 28))
    assert result.total_params == 3_255_914 and result.non_trainable_params == 0
    rows = {row.name: row for row in result.layers}
    assert [row.type for row in result.layers] == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert rows["conv2d"].counted_as == "4·4·1·32 + 32" and rows["conv2d"].params == 544
    assert rows["conv2d"].output_shape == (32, 28, 28)
    assert rows["dense"].counted_as == "3136·1024 + 1024"
    assert result.layers[-1].name == "dense_1"  # the head, named as Keras names it
    assert rows["conv2d"].mult_adds == 28 * 28 * 32 * 4 * 4 * 1
    assert rows["conv2d"].activation_bytes == 32 * 28 * 28 * 4
    # receptive fields: 4, then +1 for the 2x2 pool, +3*2 for the next conv, +1*2 for its pool
    assert [
        rows[n].receptive_field for n in ("conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1")
    ] == [
        (4, 4),
        (5, 5),
        (11, 11),
        (13, 13),
    ]
    assert rows["dense"].receptive_field == "all"
    text = str(result)
    assert "Total params: 3,255,914" in text and "conv2d (Conv2D)" in text
    assert "(None, 32, 28, 28)" in text


def test_layouts_and_json() -> None:
    result = summary(build_model("bn_cnn"), (3, 32, 32), layout="nhwc")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["total_params"] == data["trainable_params"] + data["non_trainable_params"]
    assert data["non_trainable_params"] == 2 * 64 + 2 * 128  # BatchNorm's moving mean and variance
    first = data["layers"][0]
    assert first["output_shape"] == [12, 12, 64] and first["receptive_field"] == [9, 9]
    assert "(None, 12, 12, 64)" in str(result)
    bn = next(row for row in data["layers"] if row["type"] == "BatchNormalization")
    assert bn["params"] == 256 and bn["trainable_params"] == 128


def test_any_torch_module_with_frozen_and_shared_parts() -> None:
    shared = nn.ReLU()
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(8),
        shared,
        nn.Conv2d(8, 8, 3, dilation=2, padding=2),
        shared,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    model[0].weight.requires_grad_(False)
    result = summary(model, (3, 16, 16))
    assert result.trainable_params == 16 + (8 * 8 * 9 + 8) + 36
    assert result.non_trainable_params == 3 * 8 * 9 + 16  # frozen conv + moving statistics
    rows = {row.name: row for row in result.layers}
    assert rows["0"].counted_as == "3·3·3·8"
    assert rows["3"].receptive_field == (3 + 4 * 2, 3 + 4 * 2)  # dilated 5x5 at jump 2
    assert rows["5"].receptive_field == "all"
    assert rows["2"].output_shape == (8, 8, 8)  # first call of the shared ReLU
    assert model.training  # the mode is restored


def test_errors() -> None:
    with pytest.raises(ModelError, match="layout must be one of nchw, nhwc"):
        summary(build_model("minimal"), (1, 28, 28), layout="chwn")
    with pytest.raises(ModelError, match=r"built for input \(1, 28, 28\), not \(3, 28, 28\)"):
        summary(build_model("minimal"), (3, 28, 28))
    with pytest.raises(ModelError, match="cannot take input"):
        summary(nn.Linear(3, 2), (4,))
    with pytest.raises(ModelError, match="needs the input shape"):
        summary(nn.Linear(3, 2))
