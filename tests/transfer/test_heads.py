"""Classic heads on features: each learns, wrong names fail clearly."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import ConfigError
from cnnkit.transfer.heads import HEADS, fit_head, parse_heads, score_head


@pytest.fixture(scope="module")
def blobs():
    """Three Gaussian clusters in 16 dimensions, 60 train and 60 test points each."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=generator) * 3
    labels = torch.arange(3).repeat_interleave(120)
    points = centres[labels] + torch.randn(360, 16, generator=generator)
    train = torch.arange(360) % 2 == 0
    return points[train], labels[train], points[~train], labels[~train]


@pytest.mark.parametrize("name", list(HEADS))
def test_each_head_learns_separable_features(name, blobs) -> None:
    x, y, x_test, y_test = blobs
    scores = score_head(fit_head(name, x, y, seed=0), x_test, y_test)
    assert scores["accuracy"] > 0.95 and scores["balanced_accuracy"] > 0.95


def test_head_lists_are_parsed() -> None:
    assert parse_heads("logreg, svm,rf") == ["logreg", "svm", "rf"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lgreg", "unknown head 'lgreg'. Did you mean 'logreg'?"),
        ("logreg,knn", "unknown head 'knn'"),
        (" , ", "no head named"),
    ],
)
def test_wrong_head_names_are_refused(text, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_heads(text)
