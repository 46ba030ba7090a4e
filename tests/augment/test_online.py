"""Online augmentation: the training loop augments training batches, and nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.augment import FlipLR, Mixup, Pipeline, parse_augment
from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.train.batches import epoch_order
from cnnkit.train.loop import fit

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/conftest.py


class Recorder(nn.Module):
    """A linear classifier that keeps every input it is given, by mode."""

    def __init__(self, pixels: int, classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(pixels, classes)
        self.seen: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen["train" if self.training else "eval"].append(x.detach().clone())
        return self.head(x.flatten(1))


def data(n: int, seed: int) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 6, 6), generator=generator, dtype=torch.uint8)
    return Dataset(images=images, labels=torch.arange(n) % 3, classes=("a", "b", "c"))


def train_with(augment: Pipeline | None, **options):
    train, val = data(8, 0), data(5, 1)
    pre = Preprocessing.from_dataset(train)
    model = Recorder(36, 3)
    settings = {"epochs": 1, "batch_size": 8, "precision": "fp32", "channels_last": False}
    fit(model, train=train, val=val, preprocessing=pre, augment=augment, **(settings | options))
    return model, train, val, pre


def test_training_batches_are_augmented_and_validation_is_not() -> None:
    model, train, val, pre = train_with(Pipeline([FlipLR(p=1.0)]))
    order = epoch_order(len(train), seed=0, epoch=0)
    (trained,) = model.seen["train"]
    assert torch.equal(trained, pre(train.images[order].flip(3)))  # mirrored, all of them
    assert not torch.equal(trained, pre(train.images[order]))
    assert torch.equal(torch.cat(model.seen["eval"]), pre(val.images))  # as they are


def test_without_augmentation_the_batches_are_the_data() -> None:
    model, train, _, pre = train_with(None)
    order = epoch_order(len(train), seed=0, epoch=0)
    assert torch.equal(model.seen["train"][0], pre(train.images[order]))


def test_same_seed_same_augmented_batches_each_epoch_its_own() -> None:
    spec = parse_augment("rotate:max=30; distort:magnitude=1")
    first, *_ = train_with(spec, epochs=2)
    second, *_ = train_with(spec, epochs=2)
    assert all(
        torch.equal(a, b) for a, b in zip(first.seen["train"], second.seen["train"], strict=True)
    )
    assert not torch.equal(first.seen["train"][0], first.seen["train"][1])  # epochs differ


def test_mixup_hands_the_loss_soft_targets() -> None:
    targets: list[torch.Tensor] = []

    def loss(logits: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        targets.append(given)
        return nn.functional.cross_entropy(logits, given)

    train_with(Pipeline([FlipLR(), Mixup(alpha=0.4)]), loss=loss)
    soft, validation = targets  # the training batch, then the validation set
    assert soft.shape == (8, 3) and soft.dtype == torch.float32
    assert torch.allclose(soft.sum(1), torch.ones(8)) and bool((soft < 1).any())
    assert validation.shape == (5,) and validation.dtype == torch.int64
    targets.clear()
    train_with(Pipeline([FlipLR()]), loss=loss)
    assert targets[0].dtype == torch.int64  # plain labels when nothing mixes
