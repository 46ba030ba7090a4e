"""Looking inside: conv layers found generically, Grad-CAM, feature maps, filters, image files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ConfigError, ModelError
from cnnkit.evaluate.featuremaps import feature_maps
from cnnkit.evaluate.gradcam import grad_cam
from cnnkit.models.probes import conv_layers, find_layer
from cnnkit.models.registry import build_model, list_models
from cnnkit.train.filters import (
    FilterRecorder,
    filter_weights,
    parse_epochs,
    recorded_filters,
)
from cnnkit.train.loop import fit

IDENTITY_PRE = Preprocessing((1, 12, 12), (0.0,), (1 / 255,))  # uint8 values as floats


def small_cnn(channels: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )


class CalledOutOfOrder(nn.Module):
    """Registers ``late`` before ``early`` but runs ``early`` first (as functional models may)."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Conv2d(4, 4, 3, padding=1)
        self.early = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.late(self.early(x))).mean(dim=(2, 3)))


def test_find_layer_finds_the_last_convolution_and_what_completes_it() -> None:
    model = small_cnn()
    example = torch.zeros(1, 1, 12, 12)
    assert [name for name, _ in conv_layers(model)] == ["0", "4"]
    last = find_layer(model, example=example)
    assert (last.name, last.read_from, last.label) == ("4", "5", "4 (+ReLU)")
    first = find_layer(model, "0", example=example)
    assert (first.read_from, first.label) == ("2", "0 (+BatchNorm2d + ReLU)")
    assert find_layer(model, "6", example=example).read_from == "6"  # not a conv: as asked
    assert find_layer(CalledOutOfOrder(), example=example).name == "late"
    assert find_layer(CalledOutOfOrder()).name == "early"  # without a pass: registration order


def test_find_layer_errors_name_the_choices() -> None:
    with pytest.raises(ModelError, match=r"no layer 'features\.9'.*layers: 0, 4.*--layer"):
        find_layer(small_cnn(), "features.9")
    with pytest.raises(ModelError, match="Sequential has no Conv1d/Conv2d/Conv3d layer"):
        find_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def spot_model() -> nn.Sequential:
    """Logit 0 = mean brightness seen by an identity 1x1 conv; logit 1 = minus that."""
    conv = nn.Conv2d(1, 1, 1)
    head = nn.Linear(1, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        head.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)


def test_grad_cam_points_at_the_evidence(caplog) -> None:
    images = torch.zeros(2, 1, 12, 12, dtype=torch.uint8)
    images[0, 0, 1:4, 2:5] = 200  # a bright patch top-left
    images[1, 0, 8:11, 7:10] = 200  # and bottom-right
    model = spot_model().train()
    cam = grad_cam(model, images, preprocessing=IDENTITY_PRE, targets=0)
    assert cam.heatmaps.shape == (2, 12, 12) and cam.layer == "0 (+ReLU)"
    assert model.training and all(p.grad is None for p in model.parameters())
    for k, (rows, cols) in enumerate([(slice(1, 4), slice(2, 5)), (slice(8, 11), slice(7, 10))]):
        heat = cam.heatmaps[k]
        assert float(heat.max()) == pytest.approx(1.0)
        assert float(heat[rows, cols].mean()) > 0.9
        outside = heat.clone()
        outside[rows, cols] = 0
        assert float(outside.max()) < 0.5
    with caplog.at_level(logging.INFO, logger="cnnkit.evaluate.gradcam"):
        against = grad_cam(model, images, preprocessing=IDENTITY_PRE, targets=1)
    assert float(against.heatmaps.max()) == 0.0 and "no positive evidence" in caplog.text


def test_grad_cam_rejects_bad_targets() -> None:
    images = torch.zeros(2, 1, 12, 12, dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"target class 5 is out of range.*\(0\.\.1\)"):
        grad_cam(spot_model(), images, preprocessing=IDENTITY_PRE, targets=5)
    with pytest.raises(ConfigError, match="3 target classes given for 2 images"):
        grad_cam(spot_model(), images, preprocessing=IDENTITY_PRE, targets=[0, 1, 0])


@pytest.mark.parametrize("entry", list_models(), ids=lambda e: e.name)
def test_grad_cam_and_feature_maps_work_for_every_registered_model(entry) -> None:
    torch.manual_seed(0)
    shape = entry.default_input_shape
    model = build_model(entry.name, input_shape=shape, num_classes=5)
    images = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    pre = Preprocessing(shape, (0.5,) * shape[0], (0.25,) * shape[0])
    cam = grad_cam(model, images, preprocessing=pre)
    assert cam.heatmaps.shape == (2, *shape[1:])
    assert torch.isfinite(cam.heatmaps).all() and 0 <= cam.heatmaps.min() <= cam.heatmaps.max() <= 1
    assert (
        cam.probabilities.shape == (2, 5)
        and cam.targets.tolist() == cam.probabilities.argmax(1).tolist()
    )
    name, maps = feature_maps(model, images[0], preprocessing=pre)
    assert name == cam.layer and maps.ndim == 3
    _layer, weights = filter_weights(model)
    # an adapted model replicates grey input to its RGB backbone, whose filters are RGB
    assert weights.shape[1] == (3 if entry.name == "adapted" else shape[0])


def test_feature_maps_of_a_chosen_layer_and_of_1d_convolutions() -> None:
    model = small_cnn()
    image = torch.randint(0, 256, (1, 12, 12), dtype=torch.uint8)
    name, maps = feature_maps(model, image, preprocessing=IDENTITY_PRE, layer="0")
    assert name == "0 (+BatchNorm2d + ReLU)" and maps.shape == (4, 12, 12) and maps.min() >= 0
    signal = nn.Sequential(
        nn.Flatten(2), nn.Conv1d(1, 3, 5), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 140, 2)
    )
    name, maps = feature_maps(signal, image, preprocessing=IDENTITY_PRE)
    assert name == "1 (+ReLU)" and maps.shape == (3, 1, 140)


def test_parse_epochs() -> None:
    assert parse_epochs("5,0, 1,1", 10) == [0, 1, 5]
    assert parse_epochs("all", 3) == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="comma-separated numbers"):
        parse_epochs("1;2", 10)
    with pytest.raises(ConfigError, match=r"must lie in 0\.\.3"):
        parse_epochs("0,4", 3)


def test_filter_recorder_saves_the_chosen_epochs(tmp_path) -> None:
    rng = np.random.default_rng(0)
    data = Dataset.from_numpy(
        rng.integers(0, 256, size=(40, 12, 12), dtype=np.uint8), rng.integers(0, 3, 40), "abc"
    )
    torch.manual_seed(0)
    model = small_cnn()
    initial = model[0].weight.detach().clone().numpy()
    fit(
        model,
        train=data,
        preprocessing=IDENTITY_PRE,
        epochs=3,
        batch_size=10,
        lr=0.05,
        callbacks=[FilterRecorder(tmp_path, [0, 2])],
    )
    records = recorded_filters(tmp_path)
    assert [epoch for epoch, _ in records] == [0, 2]
    np.testing.assert_array_equal(records[0][1], initial)
    assert records[1][1].shape == (4, 1, 3, 3) and not np.array_equal(records[1][1], initial)
    assert sorted(p.name for p in (tmp_path / "filters").iterdir()) == [
        "epoch-000.npy",
        "epoch-002.npy",
    ]
    assert recorded_filters(tmp_path / "elsewhere") == []


def test_filter_recorder_refuses_a_model_without_convolution(tmp_path) -> None:
    data = Dataset.from_numpy(np.zeros((4, 12, 12), dtype=np.uint8), [0, 1, 2, 0], "abc")
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(144, 3))
    with pytest.raises(ModelError, match="has no Conv1d/Conv2d/Conv3d layer"):
        fit(
            mlp,
            train=data,
            preprocessing=IDENTITY_PRE,
            epochs=1,
            callbacks=[FilterRecorder(tmp_path, [1])],
        )
