"""Every registered model, on tiny inputs: builds, trains a step, summarises, round-trips."""

from __future__ import annotations

import functools
import json

import pytest
import torch
import yaml

from cnnkit.errors import ModelError
from cnnkit.layers import Model
from cnnkit.layers.classifier import Classifier
from cnnkit.layers.spec import model_from_spec
from cnnkit.layers.summary import summary
from cnnkit.models.registry import build_model, get_model_entry, list_models

pytestmark = pytest.mark.usefixtures("single_thread")

NAMES = [entry.name for entry in list_models()]
SPEC_MODELS = [
    "lenet",
    "lenet_dropout",
    "minimal",
    "two_conv",
    "vgg1",
    "vgg2",
    "vgg3",
    "vgg4",
    "bn_cnn",
    "video_seq",
    "video_functional",
]


@functools.cache
def tiny_shape(name: str) -> tuple[int, int, int]:
    """The smallest square input (from 4x4 up) the model takes, with its default channels."""
    channels = get_model_entry(name).default_input_shape[0]
    for size in range(4, 33):
        try:
            build_model(name, input_shape=(channels, size, size), num_classes=3)
        except ModelError:
            continue
        return channels, size, size
    raise AssertionError(f"{name} takes no input up to 32x32")


def tiny(name: str) -> Classifier:
    torch.manual_seed(0)
    model = build_model(name, input_shape=tiny_shape(name), num_classes=3)
    assert isinstance(model, Classifier)  # most are cnnkit.layers Models, some plain torch
    return model


def test_the_zoo_has_every_architecture_of_the_source() -> None:
    assert set(SPEC_MODELS) <= set(NAMES)
    assert {"resnet20", "resnet56", "resnet110"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward(name: str) -> None:
    model = tiny(name)
    x = torch.randn(4, *tiny_shape(name))
    logits = model(x)
    assert logits.shape == (4, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_head_interface(name: str) -> None:
    model = tiny(name)
    x = torch.randn(2, *tiny_shape(name))
    model.eval()
    features = model.forward_features(x)
    assert features.shape == (2, model.num_features)
    torch.testing.assert_close(model.head(features), model(x))
    model.reset_classifier(7)
    assert model(x).shape == (2, 7)


@pytest.mark.parametrize("name", NAMES)
def test_summary_totals_follow_the_keras_rule(name: str) -> None:
    model = tiny(name)
    result = summary(model, tiny_shape(name))
    params = sum(p.numel() for p in model.parameters())
    moving = sum(
        b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))
    )
    assert result.trainable_params == params
    assert result.non_trainable_params == moving
    assert result.total_params == params + moving == sum(row.params for row in result.layers)
    assert all(row.output_shape is not None for row in result.layers)
    assert result.layers[-1].output_shape == (3,)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_spec_round_trip_gives_the_same_model(name: str, fmt: str, tmp_path) -> None:
    model = tiny(name)
    if not isinstance(model, Model):  # written in torch (efficientnet_lite0): no spec
        pytest.skip(f"{name} is not built from cnnkit.layers, so it has no spec")
    spec = model.get_config()
    text = yaml.safe_dump(spec) if fmt == "yaml" else json.dumps(spec)
    loaded = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    rebuilt = model_from_spec(loaded, num_classes=3)
    original = model.state_dict()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in original.items()
    }
    rebuilt.load_state_dict(original, strict=True)
    model.eval(), rebuilt.eval()
    x = torch.randn(2, *tiny_shape(name))
    torch.testing.assert_close(rebuilt(x), model(x))
    assert rebuilt.get_config() == spec


@pytest.mark.parametrize("name", ["lenet", "video_functional", "resnet20"])
@pytest.mark.parametrize("init", ["normal", "torch"])
def test_init_option(name: str, init: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_shape=tiny_shape(name), num_classes=3, init=init)
    bias = model.head.bias.detach()
    assert torch.count_nonzero(bias) == bias.numel()  # keras's zero biases were replaced


def test_lenet_dropout_rate_option() -> None:
    model = build_model("lenet_dropout", input_shape=(3, 8, 8), dropout=0.3)
    rates = [layer.rate for layer, _ in model.nodes if layer.kind == "Dropout"]
    assert rates == [0.3, 0.3, 0.3]


def test_resnet_depths() -> None:
    convs = {
        name: sum(
            1
            for layer, _ in build_model(name, input_shape=(3, 8, 8)).nodes
            if layer.kind == "Conv2D" and not layer.name.endswith("_proj")
        )
        for name in ("resnet20", "resnet56", "resnet110")
    }
    # depth = stem conv + 2 convs per block + the dense head (projections are not counted)
    assert convs == {"resnet20": 19, "resnet56": 55, "resnet110": 109}
