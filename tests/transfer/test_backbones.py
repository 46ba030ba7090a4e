"""Backbones: one interface over pretrained sources, input adaptation, clear errors."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from cnnkit.errors import ModelError, RunError
from cnnkit.models.adapter import InputAdapter, resize_images
from cnnkit.run import Run
from cnnkit.transfer.backbones import load_backbone
from cnnkit.transfer.efficientnet_lite import MEAN, STD

pytestmark = pytest.mark.usefixtures("single_thread")  # small ops: see conftest


def test_pretrained_backbone_carries_its_preprocessing(lite0) -> None:
    assert lite0.input_shape == (3, 224, 224) and lite0.color_order == "RGB"
    assert lite0.mean == MEAN and lite0.std == STD
    assert len(lite0.classes) == 1000 and lite0.classes[281] == "tabby"
    assert lite0.num_features == 1280


def test_grey_images_are_replicated_to_rgb_and_resized(lite0) -> None:
    adapter = lite0.adapter_for((1, 28, 28))
    grey = torch.rand(2, 1, 28, 28)
    out = adapter(grey)
    assert out.shape == (2, 3, 224, 224)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    flat = adapter(torch.full((1, 1, 28, 28), 0.75))  # a flat image stays flat, normalised
    assert torch.allclose(flat, torch.full_like(flat, (0.75 - MEAN[0]) / STD[0]), atol=1e-6)


def test_rgb_to_grey_uses_luminance() -> None:
    adapter = InputAdapter(3, (1, 8, 8), [0.0], [1.0])
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0
    assert torch.allclose(adapter(red), torch.full((1, 1, 8, 8), 0.299))


def test_resize_is_identity_at_the_same_size() -> None:
    images = torch.rand(2, 3, 16, 16)
    assert resize_images(images, (16, 16)) is images
    assert resize_images(images, (32, 24)).shape == (2, 3, 32, 24)


def test_incompatible_channels_are_refused() -> None:
    with pytest.raises(ModelError, match="cannot adapt 2-channel images"):
        InputAdapter(2, (3, 224, 224), MEAN, STD)


def test_unknown_backbone_suggests_the_close_name() -> None:
    with pytest.raises(
        ModelError,
        match=r"unknown backbone 'efficientnet_lite'\. Did you mean 'efficientnet_lite0'",
    ):
        load_backbone("efficientnet_lite")


def test_run_backbone_from_a_run_directory(lenet_run) -> None:
    backbone = load_backbone(f"run:{lenet_run}")
    assert backbone.input_shape == (1, 28, 28) and backbone.color_order == "grey"
    assert backbone.mean == (0.1307,) and backbone.num_features == 1024
    assert backbone.record == {"name": "lenet", "options": {}}
    model = backbone.classifier_for((3, 32, 32), 5)  # RGB CIFAR-sized images, 5 classes
    assert model(torch.rand(4, 3, 32, 32)).shape == (4, 5)
    # the backbone's own head is untouched by classifier_for
    assert backbone.network.head.out_features == 10


def test_missing_run_directory_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(RunError, match="no such run directory"):
        load_backbone(f"run:{tmp_path / 'nope'}")


def test_run_without_a_model_record_is_incompatible(lenet_run) -> None:
    card = Run(lenet_run).read_json("run.json")
    del card["model"]
    Run(lenet_run).write_json("run.json", card)
    with pytest.raises(RunError, match=r"run\.json: model is missing; the run card was changed"):
        load_backbone(f"run:{lenet_run}")


def test_run_with_missing_weights_is_incompatible(lenet_run) -> None:
    (lenet_run / "weights.safetensors").unlink()
    with pytest.raises(RunError, match=r"weights\.safetensors: missing"):
        load_backbone(f"run:{lenet_run}")


def test_torchvision_is_only_used_when_it_imports(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as on a machine without it
    with pytest.raises(ModelError, match="needs the torchvision package, which cannot be imported"):
        load_backbone("torchvision:resnet18")


def test_timm_backbone_through_its_interface(monkeypatch) -> None:
    """A stand-in timm module: the adapter code calls only create_model and the config."""

    def create_model(name: str, pretrained: bool) -> nn.Module:
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1000)
        )
        model.pretrained_cfg = {"input_size": (3, 64, 64), "mean": (0.5,) * 3, "std": (0.25,) * 3}
        model.num_classes = 1000
        return model

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    backbone = load_backbone("timm:tiny")
    assert backbone.input_shape == (3, 64, 64) and backbone.std == (0.25,) * 3
    assert backbone.num_features == 8 and backbone.classes[281] == "tabby"
    assert backbone.network.forward_features(torch.rand(2, 3, 64, 64)).shape == (2, 8)
    with pytest.raises(ModelError, match="cannot be rebuilt from a run card"):
        backbone.model_record((1, 28, 28), 10)


def test_top_k_names_imagenet_classes_and_refuses_float_images(lite0) -> None:
    ranked = lite0.top_k(torch.zeros(2, 1, 40, 40, dtype=torch.uint8), k=3)
    assert len(ranked) == 2 and len(ranked[0]) == 3
    assert all(name in lite0.classes and 0.0 <= p <= 1.0 for name, p in ranked[0])
    assert ranked[0][0][1] >= ranked[0][1][1] >= ranked[0][2][1]
    with pytest.raises(ModelError, match="top_k needs uint8 images"):
        lite0.top_k(torch.zeros(1, 3, 40, 40))


def test_resize_follows_the_data_size_rule() -> None:
    wide = torch.ones(1, 1, 2, 4)
    padded = resize_images(wide, (4, 4), "pad")  # scaled to 2x4 already fits: black bands
    assert padded[0, 0, 0].sum() == 0 and padded[0, 0, 3].sum() == 0
    assert torch.allclose(padded[0, 0, 1:3], torch.ones(2, 4))
    assert torch.allclose(resize_images(wide, (4, 4), "crop"), torch.ones(1, 1, 4, 4))
    with pytest.raises(ModelError, match="unknown fit 'squash'"):
        resize_images(wide, (4, 4), "squash")


@pytest.mark.parametrize("fit", ["pad", "crop", "stretch"])
def test_resize_matches_pillow_on_a_real_photo(fit) -> None:
    """The batch rule and cnnkit.data.images.fit_image (Pillow) give the same picture."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from cnnkit.data.images import fit_image

    photo = data.camera()[::4, ::3]  # 128x171 grey, not square
    ours = resize_images(torch.from_numpy(photo).float()[None, None], (64, 64), fit)[0, 0]
    pillow = np.asarray(fit_image(Image.fromarray(photo), (64, 64), fit), dtype=np.float32)
    assert float((ours - torch.from_numpy(pillow)).abs().mean()) < 2.0  # of 255
