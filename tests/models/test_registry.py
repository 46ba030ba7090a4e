from __future__ import annotations

import pytest
import torch

from cnnkit.errors import ModelError
from cnnkit.models.registry import build_model, list_models, register_model


def test_lenet_has_the_textbook_parameter_count() -> None:
    model = build_model("lenet", input_shape=(1, 28, 28), num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == 3_255_914
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lenet_adapts_to_input_shape_and_class_count() -> None:
    model = build_model("lenet", input_shape=(3, 32, 32), num_classes=7)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 7)


@pytest.mark.parametrize("init", ["keras", "normal", "torch"])
def test_init_schemes(init: str) -> None:
    torch.manual_seed(0)
    model = build_model("lenet", init=init)
    bias = model.head.bias.detach()
    if init == "keras":
        assert torch.count_nonzero(bias) == 0
    if init == "normal":
        weight = model.features.layers["dense"].linear.weight.detach()
        assert 0.08 < float(weight.std()) < 0.12 and 0.3 < float(bias.std()) < 2.0


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelError, match="Did you mean 'lenet'"):
        build_model("lenat")


def test_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match="takes no option dropout; its options are: init"):
        build_model("lenet", dropout=0.5)


def test_bad_init_scheme() -> None:
    with pytest.raises(ModelError, match="unknown init scheme 'glorot'"):
        build_model("lenet", init="glorot")


def test_duplicate_registration_raises() -> None:
    assert "lenet" in [e.name for e in list_models()]
    with pytest.raises(ModelError, match="already registered"):
        register_model("lenet", description="again")(lambda **kw: None)


def test_head_can_be_replaced() -> None:
    model = build_model("lenet")
    model.reset_classifier(3)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 3)
    assert model.forward_features(torch.zeros(1, 1, 28, 28)).shape == (1, 1024)
