"""Fixtures for the training tests: small real-MNIST splits and a tiny fast model."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data.preprocess import Preprocessing
from cnnkit.models.registry import build_model


@pytest.fixture(scope="session")
def mini(mnist_parts):
    """(train 640 samples, val 200 samples, preprocessing) from real MNIST."""
    train = mnist_parts["train"].subset(range(640))
    val = mnist_parts["test"].subset(range(200))
    return train, val, Preprocessing.from_dataset(train)


@pytest.fixture
def tiny_model():
    """A fresh, seeded ``fastnet_tiny`` (BatchNorm included, so buffers matter too)."""

    def make(seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        return build_model("fastnet_tiny")

    return make


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Bit-identical parameters and buffers."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
