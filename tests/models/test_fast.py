"""The fast nets: head interface, input sizes, test-time flip."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import ModelError
from cnnkit.layers.classifier import Classifier
from cnnkit.models.registry import build_model

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py


@pytest.mark.parametrize("name", ["fastnet_tiny", "fastnet", "fastnet_cifar"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_fast_nets_share_the_classifier_head_interface(name: str, shape) -> None:
    model = build_model(name, input_shape=shape, num_classes=7).eval()
    assert isinstance(model, Classifier)
    x = torch.rand(2, *shape)
    assert model(x).shape == (2, 7)
    assert model.forward_features(x).shape == (2, model.num_features)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)


def test_test_time_flip_averages_over_the_mirror_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    model = build_model("fastnet", input_shape=(1, 28, 28), tta_flip=True).eval()
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(model(x), model(x.flip(3)), atol=1e-6)  # flip-invariant in eval
    plain = build_model("fastnet", input_shape=(1, 28, 28))
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain.eval()(x), plain(x.flip(3)), atol=1e-6)


def test_test_time_shifts_average_over_the_diagonal_moves_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    model = build_model("fastnet", input_shape=(1, 28, 28), width=4, tta_shift=2).eval()
    plain = build_model("fastnet", input_shape=(1, 28, 28), width=4).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.rand(3, 1, 28, 28)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    moved = [padded[:, :, dy : dy + 28, dx : dx + 28] for dy in (0, 4) for dx in (0, 4)]
    assert torch.equal(moved[0][:, :, 2:, 2:], x[:, :, :-2, :-2])  # (+2, +2): right and down
    assert torch.equal(moved[3][:, :, :-2, :-2], x[:, :, 2:, 2:])  # (-2, -2): left and up
    expected = torch.stack([plain(view) for view in [x, *moved]]).mean(0)
    assert torch.allclose(model(x), expected, atol=1e-5)
    assert not torch.allclose(model(x), plain(x), atol=1e-4)
    model.train(), plain.train()
    assert torch.allclose(model(x), plain(x), atol=1e-5)  # training sees the image only


def test_shifts_and_flip_combine_and_negative_shifts_are_rejected() -> None:
    torch.manual_seed(0)
    model = build_model("fastnet", input_shape=(1, 28, 28), width=4, tta_shift=1, tta_flip=True)
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(model.eval()(x), model(x.flip(3)), atol=1e-5)  # still flip-invariant
    with pytest.raises(ModelError, match="tta_shift must be >= 0 pixels, got -1"):
        build_model("fastnet", tta_shift=-1)


def test_too_small_inputs_and_bad_widths_are_rejected() -> None:
    with pytest.raises(
        ModelError, match="fastnet_tiny pools 3 times and needs images of at least 8x8"
    ):
        build_model("fastnet_tiny", input_shape=(1, 6, 6))
    with pytest.raises(ModelError, match="width must be >= 1"):
        build_model("fastnet", width=0)


def test_test_time_shifts_can_repeat_the_border_instead_of_zeros() -> None:
    torch.manual_seed(0)
    model = build_model("fastnet", input_shape=(1, 28, 28), width=4, tta_shift=1, tta_pad="edge")
    plain = build_model("fastnet", input_shape=(1, 28, 28), width=4).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.rand(2, 1, 28, 28) - 1  # all negative: a zero border would be brighter
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    moved = [padded[:, :, dy : dy + 28, dx : dx + 28] for dy in (0, 2) for dx in (0, 2)]
    assert torch.equal(moved[0][:, :, 0, 1:], x[:, :, 0, :-1])  # the top row repeated
    expected = torch.stack([plain(view) for view in [x, *moved]]).mean(0)
    assert torch.allclose(model.eval()(x), expected, atol=1e-5)
    zeros = build_model("fastnet", input_shape=(1, 28, 28), width=4, tta_shift=1).eval()
    zeros.load_state_dict(model.state_dict())
    assert not torch.allclose(zeros(x), expected, atol=1e-4)
    with pytest.raises(ModelError, match="tta_pad must be zeros or edge, got 'reflect'"):
        build_model("fastnet", tta_shift=1, tta_pad="reflect")
