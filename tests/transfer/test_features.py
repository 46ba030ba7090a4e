"""Embeddings: batched, in order, cached by backbone and data, recomputed when either changes."""

from __future__ import annotations

import logging

import pytest
import torch

from cnnkit.data.dataset import Dataset
from cnnkit.run import Run
from cnnkit.transfer import features as features_module
from cnnkit.transfer.backbones import input_statistics_problem, load_backbone
from cnnkit.transfer.features import cached_embed, embed

pytestmark = pytest.mark.usefixtures("single_thread")  # small ops: see conftest


@pytest.fixture
def digits(mnist_parts) -> Dataset:
    return mnist_parts["test"].subset(range(40))


def test_embed_is_batched_in_order_and_reports_progress(lenet_run, digits) -> None:
    backbone = load_backbone(f"run:{lenet_run}")
    seen = []
    whole = embed(backbone, digits, batch_size=16, progress=lambda d, n: seen.append((d, n)))
    assert whole.shape == (40, 1024) and whole.dtype == torch.float32
    assert seen == [(16, 40), (32, 40), (40, 40)]
    alone = embed(backbone, digits.subset([7]))
    assert torch.allclose(whole[7], alone[0], atol=1e-5)


def test_features_are_cached_and_reused(lenet_run, digits, tmp_path, monkeypatch) -> None:
    backbone = load_backbone(f"run:{lenet_run}")
    first = cached_embed(backbone, digits, cache_dir=tmp_path)
    assert not first.reused and first.path.is_file()

    def no_recompute(*args, **kwargs):
        raise AssertionError("features were recomputed although cached")

    monkeypatch.setattr(features_module, "embed", no_recompute)
    again = cached_embed(load_backbone(f"run:{lenet_run}"), digits, cache_dir=tmp_path)
    assert again.reused and again.path == first.path
    assert torch.equal(again.features, first.features) and torch.equal(again.labels, digits.labels)


def test_changed_data_invalidates_the_cache(lenet_run, digits, tmp_path) -> None:
    backbone = load_backbone(f"run:{lenet_run}")
    first = cached_embed(backbone, digits, cache_dir=tmp_path)
    images = digits.images.clone()
    images[0, 0, 14, 14] ^= 0xFF  # one pixel
    changed = Dataset(images, digits.labels, digits.classes, digits.source)
    second = cached_embed(backbone, changed, cache_dir=tmp_path)
    assert not second.reused and second.path != first.path
    relabelled = Dataset(digits.images, digits.labels.roll(1), digits.classes, digits.source)
    assert not cached_embed(backbone, relabelled, cache_dir=tmp_path).reused


def test_changed_backbone_weights_invalidate_the_cache(lenet_run, digits, tmp_path) -> None:
    first = cached_embed(load_backbone(f"run:{lenet_run}"), digits, cache_dir=tmp_path)
    run = Run.open(lenet_run)  # "retrain" the run: change one weight and save again
    model = run.load_model()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1.0
    run.save_weights(model)
    second = cached_embed(load_backbone(f"run:{lenet_run}"), digits, cache_dir=tmp_path)
    assert not second.reused and second.path != first.path
    assert not torch.equal(second.features, first.features)


def test_changed_input_size_invalidates_the_cache(lite0, digits, tmp_path) -> None:
    small = digits.subset(range(4))
    a = cached_embed(lite0, small, cache_dir=tmp_path, input_size=32)
    b = cached_embed(lite0, small, cache_dir=tmp_path, input_size=48)
    assert not a.reused and not b.reused and a.path != b.path
    assert cached_embed(lite0, small, cache_dir=tmp_path, input_size=32).reused


def test_a_damaged_cache_file_is_recomputed(lenet_run, digits, tmp_path, caplog) -> None:
    backbone = load_backbone(f"run:{lenet_run}")
    first = cached_embed(backbone, digits, cache_dir=tmp_path)
    first.path.write_bytes(b"not a safetensors file")
    with caplog.at_level(logging.WARNING):
        again = cached_embed(backbone, digits, cache_dir=tmp_path)
    assert not again.reused and torch.equal(again.features, first.features)
    assert "unreadable" in caplog.text


def test_input_statistics_that_do_not_match_are_reported(lite0, digits, caplog) -> None:
    adapter = lite0.adapter_for(digits.image_shape, input_size=32)
    good = adapter(digits.images.float() / 255)
    assert input_statistics_problem(good) is None
    unscaled = adapter(digits.images.float())  # the classic slip: 0..255 pixels
    assert "expected mean within" in str(input_statistics_problem(unscaled))
    twice = (good - 0.5) / 0.5  # normalised a second time
    assert input_statistics_problem(twice) is not None
    with caplog.at_level(logging.WARNING):
        embed(lite0, Dataset(digits.images // 16, digits.labels, digits.classes), input_size=32)
    assert "do not match what its weights expect" in caplog.text
